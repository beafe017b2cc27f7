"""`canarywatch demo`: the whole detect → page → switch-off loop on one machine.

Starts the reference relay with a reproduced leak, canary cameras pushing to it,
viewers on good and poor networks (snapshots, MJPEG, event thumbnails, authorization
probes), a local PagerDuty Events v2 receiver (unless a routing key is given), and the
standalone pipeline pointed at all of it. It is `canarywatch run` with a built-in
integration: the configuration below is exactly what a user would write.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from canarywatch.delivery import summary_line
from canarywatch.httpclient import client_session
from canarywatch.incidents.pagerduty import EVENTS_URL
from canarywatch.incidents.receiver import EventsReceiver
from canarywatch.markers import Keyring
from canarywatch.relay import Fault, RelayConfig, run_relay
from canarywatch.standalone import Pipeline, StandaloneConfig

__all__ = ["DEMO_TENANTS", "DemoOptions", "demo_config", "run_demo"]

DEMO_TENANTS = ("acme-7", "bravo-2", "charlie-3")
ADMIN_TOKEN = "demo-admin-" + "x" * 8


@dataclass(frozen=True)
class DemoOptions:
    fault: Fault = Fault.XIAOMI_2019
    duration: float = 30.0
    out: Path = Path("canarywatch-demo")
    routing_key: str | None = None
    metrics_port: int = 0
    fps: float = 2.0
    #: ``relay``: hubs fetch snapshots, MJPEG, events and probes from the relay; ``hub``:
    #: smart displays on a poor network, through the Google smart-home fulfillment
    #: (SYNC, GetCameraStream) to the HLS ladder it hands out.
    via: str = "relay"


def demo_config(
    relay_url: str,
    *,
    tokens: dict[str, str],
    fps: float,
    metrics_port: int,
    pd_url: str | None,
    routing_key: str,
    via: str = "relay",
) -> dict[str, Any]:
    """The standalone configuration the demo runs (same shape as `canarywatch run --config`)."""
    device = relay_url + "/v3/devices/{tenant}/{camera}"
    bearer = {"Authorization": "Bearer {token}"}
    pagerduty: dict[str, Any] = {"routingKey": routing_key}
    if pd_url is not None:
        pagerduty["url"] = pd_url
    viewers = {
        "snapshot": {"url": device + "/live.jpg", "headers": bearer},
        "mjpeg": {"url": device + "/stream.mjpg", "headers": bearer},
        "events": {"url": relay_url + "/v3/events", "headers": bearer},
        # the viewer's own token, other tenants' cameras: must be refused
        "authzProbe": {"url": device + "/live.jpg", "headers": bearer},
        # a smart display: the tenant's OAuth token, the vendor's fulfillment URL
        "hub": {"url": relay_url + "/v3/smarthome/fulfillment", "headers": bearer},
        "pollInterval": 0.25,
    }
    if via == "hub":
        transports, profiles, freshness = ["hub"], ["poor"], 15
    else:
        transports, profiles, freshness = ["snapshot", "mjpeg", "events", "authz"], ["good", "poor"], 10
    return {
        "integration": {
            "name": "reference-relay",
            "camera": {"push": {"method": "PUT", "url": device + "/frame", "headers": bearer}},
            "viewer": viewers,
            "killSwitch": {
                "webhook": {
                    "method": "POST",
                    "url": relay_url + "/v3/admin/kill",
                    "headers": {"Authorization": f"Bearer {ADMIN_TOKEN}"},
                    "body": '{"actor": "canarywatch", "reason": "{reason}"}',
                    "resume": {
                        "method": "POST",
                        "url": relay_url + "/v3/admin/resume",
                        "headers": {"Authorization": f"Bearer {ADMIN_TOKEN}"},
                    },
                }
            },
            "policy": {
                "mode": "enforce",
                # A cache that keeps serving old frames is how both incidents began; the
                # demo treats *sustained* staleness (20 frames in a row of one stream, beyond
                # what a stall on a poor link explains) as an incident too.
                "verdicts": {
                    "stale": {
                        "incident": True,
                        "page": True,
                        "kill": True,
                        "warn": False,
                        "confirmation": {"frames": 20, "ofLast": 20},
                    }
                },
            },
            "pagerduty": pagerduty,
        },
        "probe": {
            "name": "demo",
            "tenants": [{"id": t, "token": tokens[t]} for t in DEMO_TENANTS],
            "camerasPerTenant": 2,
            "fps": fps,
            "frameSize": {"width": 320, "height": 180},
            "networkProfiles": profiles,
            "transports": transports,
            # HLS shows a frame a segment or two after it was taken
            "freshnessSeconds": freshness,
        },
        "metrics": {"port": metrics_port},
    }


class _Progress:
    """One status line per second on the terminal, and every event as it happens."""

    def __init__(self, write: Callable[[str], None]) -> None:
        self.write = write
        self.started = time.monotonic()

    def event(self, message: str) -> None:
        self.write(f"[{time.monotonic() - self.started:6.1f}s] {message}")


async def run_demo(options: DemoOptions, *, write: Callable[[str], None] = print) -> int:
    """Run the demo; 0 when the outcome is the expected one (leak caught, or none raised)."""
    progress = _Progress(write)
    tokens = {t: f"tok-{t}-{secrets.token_hex(4)}" for t in DEMO_TENANTS}
    relay_config = RelayConfig(
        tenants=tokens,
        admin_token=ADMIN_TOKEN,
        fault=options.fault,
        event_every_frames=4,
        wyze_window_seconds=30,
    )
    keyring = Keyring.generate(DEMO_TENANTS)
    options.out.mkdir(parents=True, exist_ok=True)
    # Each demo is a new world (a new relay, new keys): what a previous demo left in the
    # folder (open incidents, an engaged kill switch, pages) belongs to a relay that is gone.
    for state in ("incidents.jsonl", "killswitch.json", "pagerduty-outbox.jsonl"):
        (options.out / state).unlink(missing_ok=True)
    receiver: EventsReceiver | None = None
    if options.routing_key is None:
        receiver = EventsReceiver(record_path=options.out / "pagerduty-events.jsonl")
        await receiver.start()
        pd_url = receiver.url
        routing_key = "demo" + "0" * 28
    else:
        pd_url, routing_key = EVENTS_URL, options.routing_key
    relay = await run_relay(relay_config)
    try:
        config = StandaloneConfig.from_mapping(
            demo_config(
                relay.base_url,
                tokens=tokens,
                fps=options.fps,
                metrics_port=options.metrics_port,
                pd_url=pd_url,
                routing_key=routing_key,
                via=options.via,
            )
        )
        pipeline = Pipeline(config, keyring=keyring, out_dir=options.out, on_event=progress.event)
        progress.event(
            f"reference relay on {relay.base_url}, fault {options.fault.value}; "
            f"{len(DEMO_TENANTS)} tenants x 2 cameras at {options.fps:g} fps; "
            + (
                "smart displays on a poor network, through the Google smart-home fulfillment "
                "(SYNC, GetCameraStream) to the HLS stream it hands out"
                if options.via == "hub"
                else "viewers on good and poor networks"
            )
        )
        progress.event(
            "PagerDuty: " + (f"local Events v2 receiver {pd_url}" if receiver else "the real Events API v2")
        )
        trigger = asyncio.create_task(_fault_trigger(options.fault, relay.base_url, progress))
        status = asyncio.create_task(_status_lines(pipeline, progress))
        try:
            result = await pipeline.run(duration=options.duration, linger_after_shutdown=2.0)
        finally:
            for task in (trigger, status):
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
    finally:
        await relay.stop()
        if receiver is not None:
            await receiver.stop()
    summary = result.summary
    summary["fault"] = options.fault.value
    if receiver is not None:
        summary["pagerduty_receiver"] = {"events": len(receiver.events), "url": pd_url}
    (options.out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    return _conclude(options, summary, progress)


def _conclude(options: DemoOptions, summary: dict[str, Any], progress: _Progress) -> int:
    incidents = summary["incident_records"]
    progress.event(
        f"done: {summary['frames']} frames {summary['verdicts']}; {len(incidents)} incident(s); "
        f"integration {summary['state']}; evidence and summary in {options.out}/"
    )
    progress.event(summary_line(summary["delivery"]))
    if options.fault is Fault.NONE:
        if incidents:
            progress.event("UNEXPECTED: incidents were raised with no fault")
            return 1
        return 0
    caught = [i for i in incidents if i["paged_at"] is not None and i["shutdown"]["done"]]
    if not caught:
        progress.event(f"UNEXPECTED: the {options.fault.value} leak was not detected, paged and switched off")
        return 1
    first = caught[0]
    progress.event(
        f"caught {options.fault.value} on the {first['path']} path: {first['verdict']} detected in "
        f"{first['detection_seconds'] * 1000:.0f} ms, switched off "
        f"{first['shutdown']['seconds']:.2f} s later (the incidents it reproduces took days)"
    )
    return 0


async def _fault_trigger(fault: Fault, relay_url: str, progress: _Progress) -> None:
    """wyze-2024 needs what set it off: an outage and the recovery after it."""
    if fault is not Fault.WYZE_2024:
        return
    await asyncio.sleep(4.0)
    async with client_session() as session:
        progress.event("simulating a relay outage (3 s); the thumbnail cache is rebuilt on recovery")
        async with session.post(
            relay_url + "/v3/admin/outage",
            json={"seconds": 3},
            headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
        ) as resp:
            await resp.read()


async def _status_lines(pipeline: Pipeline, progress: _Progress) -> None:
    last = 0
    while True:
        await asyncio.sleep(2.0)
        monitor = pipeline.monitor
        if monitor is None:
            continue
        total = sum(monitor.verdicts.values())
        counts = ", ".join(f"{k} {v}" for k, v in sorted(monitor.verdicts.items()))
        progress.event(
            f"{total - last:4d} frames in 2 s ({counts}); incidents {len(monitor.incidents)}; "
            f"integration {'SUSPENDED' if monitor.suspended else 'active'}"
            + (f"; metrics {pipeline.metrics_url}" if last == 0 and pipeline.metrics_url else "")
        )
        last = total


def main_demo(
    fault: str, duration: float, out: str, routing_key: str | None, metrics_port: int, via: str = "relay"
) -> int:
    options = DemoOptions(
        via=via,
        fault=Fault.parse(fault, field_name="--fault"),
        duration=duration,
        out=Path(out),
        routing_key=routing_key,
        metrics_port=metrics_port,
    )
    return asyncio.run(run_demo(options, write=lambda line: print(line, file=sys.stdout, flush=True)))
