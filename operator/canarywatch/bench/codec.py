"""`canarywatch bench codec`: what a verdict costs, and what survives the cloud.

Every figure is a ratio measured in one run on the same frames, because these
machines are noisy: the cost of a verdict (decode + judge) relative to
`cv2.imdecode(..., IMREAD_GRAYSCALE)` of the same JPEG, and the same ratio for two
reference decoders carrying an equivalent payload (a zxing-cpp QR code and OpenCV's
ArUco detector). Single-threaded OpenCV throughout, so "per core" means per core.
"""

from __future__ import annotations

import statistics
import time
from collections import Counter
from collections.abc import Callable

import cv2
import numpy as np

from canarywatch.bench.degradations import DEGRADATIONS, Sample, h264_roundtrip, samples
from canarywatch.markers import Decoder, FrameSpec, Keyring, Status, ecc, encode_image, render_frame
from canarywatch.markers.payload import pack_signed
from canarywatch.verdicts import ViewerIdentity, judge

__all__ = ["robustness_table", "run_codec_benchmark"]

_TENANTS = [f"tenant-{i}" for i in range(8)]


def _interleaved_medians(ops: dict[str, Callable[[], object]], rounds: int) -> dict[str, float]:
    """Median seconds per op, timing the ops round-robin so drift hits all alike."""
    times: dict[str, list[float]] = {name: [] for name in ops}
    for op in ops.values():  # warm caches and lazy initialisation
        op()
    for _ in range(rounds):
        for name, op in ops.items():
            start = time.perf_counter()
            op()
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(ts) for name, ts in times.items()}


def _qr_jpeg(payload: bytes, width: int, height: int) -> bytes | None:
    try:
        import zxingcpp
    except ImportError:
        return None
    barcode = zxingcpp.create_barcode(payload, zxingcpp.BarcodeFormat.QRCode)
    qr = np.asarray(barcode.to_image(scale=1))
    side = int(height * 0.9)
    qr = cv2.resize(qr, (side, side), interpolation=cv2.INTER_NEAREST)
    canvas = np.full((height, width), 255, dtype=np.uint8)
    y0, x0 = (height - side) // 2, (width - side) // 2
    canvas[y0 : y0 + side, x0 : x0 + side] = qr
    return encode_image(cv2.cvtColor(canvas, cv2.COLOR_GRAY2BGR), quality=85)


def _aruco_jpeg(width: int, height: int) -> tuple[bytes, object]:
    # 8×4 markers of a 6×6 dictionary (~10 bits each): about the canary's 344 bits
    dictionary = cv2.aruco.getPredefinedDictionary(cv2.aruco.DICT_6X6_1000)
    board = cv2.aruco.GridBoard((8, 4), 1.0, 0.25, dictionary)
    img = board.generateImage((width, height), marginSize=height // 20)
    detector = cv2.aruco.ArucoDetector(dictionary, cv2.aruco.DetectorParameters())
    return encode_image(cv2.cvtColor(img, cv2.COLOR_GRAY2BGR), quality=85), detector


def _cost_ops(keyring: Keyring, width: int, height: int) -> dict[str, Callable[[], object]]:
    """The timed operations for one frame size: each decoder and its own imdecode floor."""
    decoder = Decoder(keyring)
    viewer = ViewerIdentity("tenant-0", 0)
    spec = FrameSpec("tenant-0", 0, 12345, time.time(), width, height)
    canary = encode_image(render_frame(spec, keyring.key("tenant-0")), quality=85)
    if decoder.decode(canary).status is not Status.VERIFIED:
        raise RuntimeError("benchmark frame did not verify; the codec is broken")
    buf = np.frombuffer(canary, np.uint8)
    ops: dict[str, Callable[[], object]] = {
        "imdecode": lambda: cv2.imdecode(buf, cv2.IMREAD_GRAYSCALE),
        "canarywatch": lambda: judge(decoder.decode(canary), viewer, now=time.time(), max_age=30),
    }
    qr = _qr_jpeg(ecc.encode(pack_signed(spec.payload(), keyring.key("tenant-0"))), width, height)
    if qr is not None:
        import zxingcpp

        qbuf = np.frombuffer(qr, np.uint8)
        ops["zxing"] = lambda: zxingcpp.read_barcodes(cv2.imdecode(qbuf, cv2.IMREAD_GRAYSCALE))
        ops["imdecode-qr"] = lambda: cv2.imdecode(qbuf, cv2.IMREAD_GRAYSCALE)
    aruco, detector = _aruco_jpeg(width, height)
    abuf = np.frombuffer(aruco, np.uint8)
    ops["aruco"] = lambda: detector.detectMarkers(cv2.imdecode(abuf, cv2.IMREAD_GRAYSCALE))  # type: ignore[attr-defined]
    ops["imdecode-aruco"] = lambda: cv2.imdecode(abuf, cv2.IMREAD_GRAYSCALE)
    return ops


def _cost_table(keyring: Keyring, rounds: int) -> None:
    print("\n== cost of one verdict, as a ratio to cv2.imdecode(IMREAD_GRAYSCALE) of the same frame ==")
    header = ("frame", "imdecode", "canarywatch", "zxing QR", "ArUco", "verdicts/s/core")
    print(f"{header[0]:>10} {header[1]:>10} {header[2]:>12} {header[3]:>10} {header[4]:>10} {header[5]:>16}")
    for width, height in ((1280, 720), (320, 180)):
        med = _interleaved_medians(_cost_ops(keyring, width, height), rounds)
        qr_ratio = f"{med['zxing'] / med['imdecode-qr']:.2f}x" if "zxing" in med else "n/a"
        print(
            f"{width}x{height:<5} {med['imdecode'] * 1e3:>8.3f}ms "
            f"{med['canarywatch'] / med['imdecode']:>11.2f}x {qr_ratio:>10} "
            f"{med['aruco'] / med['imdecode-aruco']:>9.2f}x {1 / med['canarywatch']:>16.0f}"
        )


def robustness_table(
    keyring: Keyring, count: int, *, seed: int = 1
) -> list[tuple[str, int, int, int, Counter[str]]]:
    """(name, frames, correct, false attributions, verdict counts) per degradation."""
    decoder = Decoder(keyring)
    rows = []
    suites: list[tuple[str, list[Sample]]] = [
        (d.name, list(samples(d, keyring, count, seed=seed + i))) for i, d in enumerate(DEGRADATIONS)
    ]
    suites.append(
        (
            "h264-150kbps-640x360",
            list(h264_roundtrip(keyring, count, seed=seed + 99, bitrate=150_000)),
        )
    )
    for name, batch in suites:
        correct = false = 0
        counts: Counter[str] = Counter()
        for s in batch:
            obs = (
                decoder.decode(s.received)
                if isinstance(s.received, bytes)
                else decoder.decode_image(s.received)
            )
            counts[obs.status.value] += 1
            if obs.status is Status.VERIFIED and obs.payload is not None:
                right = (obs.tenant, obs.payload.camera, obs.payload.seq) == (
                    s.spec.tenant,
                    s.spec.camera,
                    s.spec.seq,
                )
                correct += right
                false += not right
        rows.append((name, len(batch), correct, false, counts))
    return rows


def run_codec_benchmark(*, samples: int = 400, timing_rounds: int = 60) -> int:
    cv2.setNumThreads(1)
    keyring = Keyring.generate(_TENANTS)
    _cost_table(keyring, timing_rounds)
    print(f"\n== robustness: {samples} random frames per degradation (random tenant/camera/seq/time) ==")
    print(f"{'degradation':<24} {'decoded':>9} {'rate':>8} {'false attr.':>12}  other verdicts")
    total_false = 0
    for name, n, correct, false, counts in robustness_table(keyring, samples):
        total_false += false
        other = {k: v for k, v in counts.items() if k != "verified"}
        print(f"{name:<24} {correct:>5}/{n:<4} {100 * correct / n:>7.2f}% {false:>12}  {other or ''}")
    print(f"\nfalse attributions in total: {total_false}")
    return 0
