"""The `canarywatch` command.

Exit codes: 0 ok, 2 bad usage or configuration (the message names the field),
1 runtime failure.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import json
import logging
import os
import signal
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from canarywatch.files import FolderInUse, exclusive_folder

# Light modules only: each command imports what it runs, so `canarywatch camera` does
# not load the decoder, `viewer` not the renderer, and a bad `run --config` exits 2
# before OpenCV, numpy or aiohttp are loaded (tests/unit/test_import_weight.py).
from canarywatch.markers.keyring import Keyring, KeyringError
from canarywatch.markers.payload import MAX_CAMERA, MAX_SEQ

if TYPE_CHECKING:
    from canarywatch.standalone import Pipeline

__all__ = ["UsageError", "main"]


class UsageError(Exception):
    """Bad arguments or configuration: exit code 2, message names the problem."""


def _load_keyring(path: str) -> Keyring:
    from canarywatch.userfiles import BoundedInputError, decode_utf8, read_capped

    try:
        # A keyring of the CRD's 16 tenants is about 2 KiB.
        text = decode_utf8(read_capped(path, 1024 * 1024))
    except OSError as e:
        raise UsageError(f"--keyring: cannot read {path}: {e.strerror}") from e
    except BoundedInputError as e:
        raise UsageError(f"--keyring: {path} {e}") from None
    try:
        return Keyring.from_json(text)
    except KeyringError as e:
        raise UsageError(f"--keyring {path}: {e}") from e


def _int_in(name: str, lo: int, hi: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{name} must be an integer, got {text!r}") from None
        if not lo <= value <= hi:
            raise argparse.ArgumentTypeError(f"{name} must be in {lo}..{hi}, got {value}")
        return value

    return parse


# -- keys ---------------------------------------------------------------------------------


def cmd_keys_generate(args: argparse.Namespace) -> int:
    tenants = [t.strip() for t in args.tenants.split(",") if t.strip()]
    try:
        keyring = Keyring.generate(tenants)
    except KeyringError as e:
        raise UsageError(f"--tenants: {e}") from e
    out = Path(args.out)
    if out.exists() and not args.force:
        raise UsageError(f"--out: {out} exists (use --force to overwrite)")
    out.parent.mkdir(parents=True, exist_ok=True)
    # keys are secrets: create the file private before writing them
    out.touch(mode=0o600, exist_ok=True)
    out.chmod(0o600)
    out.write_text(keyring.to_json(), encoding="utf-8")
    print(f"wrote keyring for {len(keyring)} tenants to {out}", file=sys.stderr)
    return 0


# -- frame ---------------------------------------------------------------------------------


def cmd_frame_render(args: argparse.Namespace) -> int:
    from canarywatch.markers.render import FrameSpec, encode_image, render_frame

    keyring = _load_keyring(args.keyring)
    if args.tenant not in keyring:
        raise UsageError(f"--tenant: {args.tenant!r} is not in the keyring ({', '.join(keyring)})")
    suffix = Path(args.out).suffix.lower()
    fmt = {".png": "png", ".jpg": "jpeg", ".jpeg": "jpeg"}.get(suffix)
    if fmt is None:
        raise UsageError(f"--out: extension must be .png, .jpg or .jpeg, got {suffix or 'none'!r}")
    spec = FrameSpec(
        tenant=args.tenant,
        camera=args.camera,
        seq=args.seq,
        time=time.time() if args.time is None else args.time,
        width=args.width,
        height=args.height,
    )
    try:
        frame = render_frame(spec, keyring.key(args.tenant))
    except ValueError as e:
        raise UsageError(str(e)) from e
    Path(args.out).write_bytes(encode_image(frame, fmt, quality=args.quality))
    return 0


def cmd_frame_decode(args: argparse.Namespace) -> int:
    from canarywatch.markers.decode import Decoder
    from canarywatch.markers.images import ImageLimits
    from canarywatch.verdicts import ViewerIdentity, judge

    keyring = _load_keyring(args.keyring)
    if args.tenant is not None and args.tenant not in keyring:
        raise UsageError(f"--tenant: {args.tenant!r} is not in the keyring")
    if args.camera is not None and args.tenant is None:
        raise UsageError("--camera needs --tenant")
    limits = ImageLimits() if args.max_bytes is None else ImageLimits(max_bytes=args.max_bytes)
    decoder = Decoder(keyring, limits=limits)
    viewer = ViewerIdentity(args.tenant, args.camera)
    for name in args.files:
        try:
            data = Path(name).read_bytes()
        except OSError as e:
            raise UsageError(f"{name}: cannot read: {e.strerror}") from e
        obs = decoder.decode(data)
        verdict = judge(obs, viewer, now=time.time(), max_age=args.max_age)
        payload = obs.payload if obs.tenant is not None else None
        record = {
            "file": name,
            "verdict": verdict.verdict.value,
            "tenant": obs.tenant,
            "camera": payload.camera if payload else None,
            "seq": payload.seq if payload else None,
            "time": payload.time if payload else None,
            "reason": verdict.reason or obs.reason or None,
            "confidence": obs.confidence,
            "age": round(verdict.age, 3) if verdict.age is not None else None,
        }
        print(json.dumps(record), flush=True)
    return 0


# -- long-running services ------------------------------------------------------------------


async def _until_signalled() -> None:
    """Wait for SIGINT/SIGTERM (what a pod or a terminal sends) without a traceback."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()


def cmd_relay(args: argparse.Namespace) -> int:
    from canarywatch.relay import Fault, RelayConfigError, load_relay_config, run_relay

    try:
        config = load_relay_config(args.config)
        if args.fault is not None:
            config = dataclasses.replace(config, fault=Fault.parse(args.fault, field_name="--fault"))
    except RelayConfigError as e:
        raise UsageError(f"--config {args.config}: {e}") from e

    async def serve() -> None:
        handle = await run_relay(config, args.host, args.port)
        print(f"relay listening on {handle.base_url} (fault: {config.fault})", file=sys.stderr, flush=True)
        try:
            await _until_signalled()
        finally:
            await handle.stop()

    asyncio.run(serve())
    return 0


def cmd_pd_receiver(args: argparse.Namespace) -> int:
    from canarywatch.incidents import receiver
    from canarywatch.incidents.receiver import serve

    # Its log is where a demo's pages are read (`kubectl logs`): one line per event.
    logging.getLogger(receiver.__name__).setLevel(logging.INFO)

    def ready(receiver: object) -> None:
        print(f"PagerDuty Events v2 receiver on {getattr(receiver, 'url', '?')}", file=sys.stderr, flush=True)

    async def run() -> None:
        task = asyncio.ensure_future(
            serve(host=args.host, port=args.port, record_path=args.record, on_ready=ready)
        )
        try:
            await _until_signalled()
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    asyncio.run(run())
    return 0


# -- demo and standalone monitor -------------------------------------------------------------


def cmd_demo(args: argparse.Namespace) -> int:
    from canarywatch.demo import main_demo
    from canarywatch.relay import RelayConfigError

    routing_key = args.routing_key or os.environ.get("CANARYWATCH_PAGERDUTY_ROUTING_KEY") or None
    try:
        with _out_folder(args.out):
            return main_demo(args.fault, args.duration, args.out, routing_key, args.metrics_port, args.via)
    except RelayConfigError as e:
        raise UsageError(str(e)) from e


def _standalone_pipeline(args: argparse.Namespace) -> Pipeline:
    """The `Pipeline` of ``--config`` writing to ``--out``; UsageError naming the field.

    The pipeline's modules (OpenCV, numpy, aiohttp: about a second of CPU) are imported
    once the file is valid, so a bad one is reported at once."""
    from canarywatch.standalone.config import load_config
    from canarywatch.standalone.fields import ConfigError
    from canarywatch.viewer.http import AdapterConfigError

    try:
        config = load_config(args.config)
        keyring = (
            _load_keyring(config.probe.keyring)
            if config.probe.keyring
            else Keyring.generate(t.id for t in config.probe.tenants)
        )
        missing = [t.id for t in config.probe.tenants if t.id not in keyring]
        if missing:
            raise UsageError(
                f"probe.keyring: tenants {', '.join(missing)} have no key in {config.probe.keyring}"
            )
        for tenant in config.probe.tenants:
            tenant.token.resolve()  # fail now, naming the field, not inside a viewer
        from canarywatch.standalone.pipeline import Pipeline

        return Pipeline(
            config,
            keyring=keyring,
            out_dir=Path(args.out) if args.out else None,
            on_event=lambda line: print(line, flush=True),
        )
    except (ConfigError, AdapterConfigError) as e:
        raise UsageError(f"--config {args.config}: {e}") from e


def _unfinished(problems: list[str]) -> int:
    """Exit 1 naming each problem on stderr (the next run or resume finishes them), or 0."""
    for problem in problems:
        print(f"canarywatch: unfinished: {problem}", file=sys.stderr, flush=True)
    return 1 if problems else 0


@contextlib.contextmanager
def _out_folder(out: str | None) -> Iterator[None]:
    """``--out`` held by this process alone (a run and a resume must not interleave)."""
    if not out:
        yield
        return
    try:
        with exclusive_folder(Path(out)):
            yield
    except FolderInUse as e:
        raise UsageError(f"--out: {e}; wait for it to finish or stop it first") from None


def cmd_run(args: argparse.Namespace) -> int:
    from canarywatch.delivery import summary_line

    with _out_folder(args.out):
        pipeline = _standalone_pipeline(args)
        result = asyncio.run(pipeline.run(duration=args.duration, linger_after_shutdown=None))
    summary = result.summary
    print(
        f"{summary['frames']} frames {summary['verdicts']}; {len(summary['incidents'])} incident(s); "
        f"integration {summary['state']}",
        flush=True,
    )
    print(summary_line(summary["delivery"]), flush=True)
    # exit 1: a page or a kill switch did not complete; the next run with the same
    # --out finishes it (outbox, kill-switch state, incident intent)
    return _unfinished(summary["unfinished"])


def cmd_resume(args: argparse.Namespace) -> int:
    from canarywatch.standalone.pipeline import ResumeRefused

    if not Path(args.out).is_dir():
        raise UsageError(f"--out: {args.out} is not a folder a `canarywatch run` wrote")
    with _out_folder(args.out):
        pipeline = _standalone_pipeline(args)
        try:
            unfinished = asyncio.run(pipeline.resume(args.incident))
        except ResumeRefused as e:
            raise UsageError(str(e)) from None
    return _unfinished(unfinished)


# -- Kubernetes: operator and the agents its pods run ----------------------------------------


def cmd_operator(args: argparse.Namespace) -> int:
    from canarywatch.controller.main import run_operator
    from canarywatch.controller.settings import SettingsError

    namespaces = [n for n in args.namespace or [] if n] or None
    try:
        return run_operator(
            namespaces=namespaces,
            liveness_port=args.liveness_port,
            metrics_port=args.metrics_port,
            standalone=True if args.standalone else None,
        )
    except SettingsError as e:  # run_operator reports bad settings itself (exit 2); kept for safety
        raise UsageError(str(e)) from e


def cmd_camera(args: argparse.Namespace) -> int:
    from canarywatch.agents.camera import run_camera_agent

    return run_camera_agent(os.environ)


def cmd_viewer(args: argparse.Namespace) -> int:
    from canarywatch.agents.viewer import run_viewer_agent

    return run_viewer_agent(os.environ)


# -- bench --------------------------------------------------------------------------------


def cmd_bench_codec(args: argparse.Namespace) -> int:
    from canarywatch.bench.codec import run_codec_benchmark

    return run_codec_benchmark(samples=args.samples, timing_rounds=args.rounds)


def cmd_bench_hostile(args: argparse.Namespace) -> int:
    from canarywatch.bench.stalls import run_hostile_benchmark

    return run_hostile_benchmark(rounds=args.rounds)


def cmd_bench_pipeline(args: argparse.Namespace) -> int:
    from canarywatch.bench.pipeline import run_pipeline_benchmark

    streams = tuple(int(n) for n in args.streams.split(","))
    return run_pipeline_benchmark(
        leaks=args.leaks, streams=streams, seconds=args.seconds, soak_seconds=args.soak_seconds
    )


def cmd_bench_video(args: argparse.Namespace) -> int:
    from canarywatch.bench.video import run_video_benchmark

    return run_video_benchmark(
        seconds=args.seconds, marker_frames=args.frames, latency_seconds=args.latency_seconds
    )


def cmd_bench_footprint(args: argparse.Namespace) -> int:
    from canarywatch.bench.footprint import run_footprint_benchmark

    return run_footprint_benchmark(settle_s=args.settle)


def cmd_bench_operator(args: argparse.Namespace) -> int:
    from canarywatch.bench.operator import run_operator_benchmark

    return run_operator_benchmark(incidents=args.incidents, probes=args.probes)


# -- parser --------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="canarywatch", description=__doc__.split("\n")[0] if __doc__ else None
    )
    sub = parser.add_subparsers(dest="command", required=True)

    keys = sub.add_parser("keys", help="manage tenant signing keys").add_subparsers(
        dest="keys_command", required=True
    )
    gen = keys.add_parser("generate", help="generate a keyring for a set of synthetic tenants")
    gen.add_argument("--tenants", required=True, help="comma-separated tenant ids, e.g. acme-7,bravo-2")
    gen.add_argument("--out", required=True, help="keyring JSON file to write (mode 0600)")
    gen.add_argument("--force", action="store_true", help="overwrite an existing file")
    gen.set_defaults(func=cmd_keys_generate)

    frame = sub.add_parser("frame", help="render or decode canary frames").add_subparsers(
        dest="frame_command", required=True
    )
    render = frame.add_parser("render", help="render one signed canary frame")
    render.add_argument("--keyring", required=True)
    render.add_argument("--tenant", required=True)
    render.add_argument("--camera", required=True, type=_int_in("--camera", 0, MAX_CAMERA))
    render.add_argument("--seq", required=True, type=_int_in("--seq", 0, MAX_SEQ))
    render.add_argument("--time", type=float, help="capture time, Unix seconds (default: now)")
    render.add_argument("--width", type=_int_in("--width", 64, 7680), default=1280)
    render.add_argument("--height", type=_int_in("--height", 36, 4320), default=720)
    render.add_argument("--quality", type=_int_in("--quality", 1, 100), default=90, help="JPEG quality")
    render.add_argument("--out", required=True, help="output file, .png or .jpg")
    render.set_defaults(func=cmd_frame_render)

    decode = frame.add_parser("decode", help="decode frames; one JSON object per file on stdout")
    decode.add_argument("--keyring", required=True)
    decode.add_argument("--tenant", help="the viewer's tenant (enables cross_tenant)")
    decode.add_argument(
        "--camera",
        type=_int_in("--camera", 0, MAX_CAMERA),
        help="the viewer's camera (enables misrouted)",
    )
    decode.add_argument("--max-age", type=float, help="freshness bound in seconds (enables stale)")
    decode.add_argument(
        "--max-bytes",
        type=_int_in("--max-bytes", 1, 1 << 30),
        help="largest frame decoded, in bytes (default: the decoder's limit, 8 MiB)",
    )
    decode.add_argument("files", nargs="+", metavar="FILE")
    decode.set_defaults(func=cmd_frame_decode)

    bench = sub.add_parser("bench", help="benchmarks that print figures").add_subparsers(
        dest="bench_command", required=True
    )
    codec = bench.add_parser("codec", help="codec cost ratios vs cv2.imdecode and the robustness table")
    codec.add_argument(
        "--samples",
        type=_int_in("--samples", 10, 100000),
        default=400,
        help="frames per degradation",
    )
    codec.add_argument(
        "--rounds", type=_int_in("--rounds", 5, 10000), default=60, help="timing rounds per decoder"
    )
    codec.set_defaults(func=cmd_bench_codec)
    hostile = bench.add_parser(
        "hostile", help="a hostile frame's decode, and a concurrent leak's latency, before/after the bounds"
    )
    hostile.add_argument("--rounds", type=_int_in("--rounds", 1, 1000), default=5)
    hostile.set_defaults(func=cmd_bench_hostile)
    pipe = bench.add_parser("pipeline", help="time to detect/switch off, viewer throughput, no-fault soak")
    pipe.add_argument("--leaks", type=_int_in("--leaks", 1, 1000), default=20)
    pipe.add_argument("--streams", default="100,500", help="viewer stream counts for the throughput table")
    pipe.add_argument("--seconds", type=float, default=10.0, help="seconds per throughput measurement")
    pipe.add_argument("--soak-seconds", type=float, default=60.0, help="length of the no-fault soak")
    pipe.set_defaults(func=cmd_bench_pipeline)
    video = bench.add_parser(
        "video",
        help="CPU per watched stream vs ffmpeg -f null; marker decode rate at 150 kbit/s; "
        "capture → verdict latency per path",
    )
    video.add_argument("--seconds", type=_int_in("--seconds", 4, 600), default=30, help="video length")
    video.add_argument("--frames", type=_int_in("--frames", 30, 10000), default=400, help="marker frames")
    video.add_argument(
        "--latency-seconds",
        type=_int_in("--latency-seconds", 4, 600),
        default=20,
        help="how long each path is watched for capture → verdict latency",
    )
    video.set_defaults(func=cmd_bench_video)
    op = bench.add_parser("operator", help="LeakIncident -> scaled to zero p50/p99; cold start of N probes")
    op.add_argument("--incidents", type=_int_in("--incidents", 1, 1000), default=30)
    op.add_argument("--probes", type=_int_in("--probes", 1, 5000), default=1000)
    op.set_defaults(func=cmd_bench_operator)
    footprint = bench.add_parser(
        "footprint", help="idle and peak RSS of a probe's camera and viewer pods; their import cost"
    )
    footprint.add_argument(
        "--settle", type=float, default=5.0, help="seconds to wait after every viewer judged frames"
    )
    footprint.set_defaults(func=cmd_bench_footprint)
    demo = sub.add_parser("demo", help="run the embedded end-to-end demo against the reference relay")
    demo.add_argument(
        "--fault", default="xiaomi-2019", help="none, xiaomi-2019, wyze-2024, stale-cache, idor"
    )
    demo.add_argument("--duration", type=float, default=30.0, help="maximum seconds to run")
    demo.add_argument(
        "--out", default="canarywatch-demo", help="folder for incidents.jsonl, summary.json, evidence"
    )
    demo.add_argument(
        "--routing-key", help="page the real PagerDuty with this routing key (default: a local receiver)"
    )
    demo.add_argument("--metrics-port", type=_int_in("--metrics-port", 0, 65535), default=9464)
    demo.add_argument(
        "--via",
        choices=("relay", "hub"),
        default="relay",
        help="relay: snapshot, MJPEG, events, authz viewers on good and poor networks; hub: smart "
        "displays on a poor network through the Google smart-home fulfillment to its HLS stream",
    )
    demo.set_defaults(func=cmd_demo)

    run = sub.add_parser("run", help="standalone monitor for any HTTP camera integration")
    run.add_argument("--config", required=True, help="standalone YAML (integration + probe)")
    run.add_argument(
        "--duration", type=float, help="stop after this many seconds (default: run until stopped)"
    )
    run.add_argument("--out", help="folder for incidents.jsonl, summary.json, evidence, PagerDuty outbox")
    run.set_defaults(func=cmd_run)

    resume = sub.add_parser(
        "resume", help="switch an integration back on after `run` switched it off, and resolve its incidents"
    )
    resume.add_argument("--config", required=True, help="the standalone YAML the run used")
    resume.add_argument("--out", required=True, help="the run's --out folder (kill-switch state, incidents)")
    resume.add_argument(
        "--incident", required=True, help="the incident the kill switch holds for (killswitch.json)"
    )
    resume.set_defaults(func=cmd_resume)

    operator = sub.add_parser(
        "operator", help="run the Kubernetes operator (configured by CANARYWATCH_* env)"
    )
    operator.add_argument(
        "--namespace", action="append", help="namespace to watch (repeatable; default: env)"
    )
    operator.add_argument("--liveness-port", type=_int_in("--liveness-port", 1, 65535))
    operator.add_argument("--metrics-port", type=_int_in("--metrics-port", 1, 65535))
    operator.add_argument(
        "--standalone", action="store_true", help="no leader election (exactly one replica)"
    )
    operator.set_defaults(func=cmd_operator)

    camera = sub.add_parser("camera", help="canary camera agent of a CanaryProbe pod (configured by env)")
    camera.set_defaults(func=cmd_camera)
    viewer = sub.add_parser("viewer", help="hub viewer agent of a CanaryProbe pod (configured by env)")
    viewer.set_defaults(func=cmd_viewer)

    relay = sub.add_parser("relay", help="run the reference relay (the bundled integration under test)")
    relay.add_argument("--config", required=True, help="relay YAML (tenants, admin_token, fault, ...)")
    relay.add_argument("--host", default="127.0.0.1")
    relay.add_argument("--port", type=_int_in("--port", 0, 65535), default=9000)
    relay.add_argument("--fault", help="override the configured fault: none, xiaomi-2019, wyze-2024, ...")
    relay.set_defaults(func=cmd_relay)

    receiver = sub.add_parser("pd-receiver", help="run a local PagerDuty Events v2 receiver")
    receiver.add_argument("--host", default="127.0.0.1")
    receiver.add_argument("--port", type=_int_in("--port", 0, 65535), default=8765)
    receiver.add_argument("--record", help="append accepted events to this JSON-lines file")
    receiver.set_defaults(func=cmd_pd_receiver)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="canarywatch: %(levelname)s %(name)s: %(message)s")
    try:
        result: int = args.func(args)
        return result
    except UsageError as e:
        print(f"canarywatch: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
