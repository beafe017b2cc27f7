"""What clouds do to frames, as reproducible transformations for tests and benchmarks.

Each degradation takes a rendered BGR canary frame and a seeded RNG and returns what
a viewer would receive: encoded image bytes, or a decoded array for video paths.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from canarywatch.markers.keyring import Keyring
from canarywatch.markers.render import FrameSpec, encode_image, render_frame

__all__ = ["DEGRADATIONS", "Degradation", "Sample", "h264_roundtrip", "samples"]

Received = bytes | np.ndarray


@dataclass(frozen=True)
class Degradation:
    name: str
    description: str
    base_size: tuple[int, int]
    apply: Callable[[np.ndarray, np.random.Generator], Received]


def _jpeg(img: np.ndarray, quality: int) -> bytes:
    return encode_image(img, quality=quality)


def _jpeg_quality(img: np.ndarray, rng: np.random.Generator) -> Received:
    return _jpeg(img, int(rng.integers(5, 96)))


def _sizes(img: np.ndarray, rng: np.random.Generator) -> Received:
    w, h = [(1920, 1080), (1280, 720), (960, 540), (640, 360), (320, 180), (240, 135), (160, 90)][
        int(rng.integers(0, 7))
    ]
    interp = cv2.INTER_AREA if w < img.shape[1] else cv2.INTER_LINEAR
    return _jpeg(cv2.resize(img, (w, h), interpolation=interp), int(rng.integers(50, 91)))


def _night(img: np.ndarray, rng: np.random.Generator) -> Received:
    gray = cv2.cvtColor(img, cv2.COLOR_BGR2GRAY).astype(np.float32)
    gray = gray * rng.uniform(0.6, 1.0) + rng.uniform(0, 30)  # IR exposure shifts contrast
    noisy = np.clip(gray + rng.normal(0, rng.uniform(6, 14), gray.shape), 0, 255).astype(np.uint8)
    return _jpeg(cv2.cvtColor(noisy, cv2.COLOR_GRAY2BGR), int(rng.integers(40, 81)))


def _blur(img: np.ndarray, rng: np.random.Generator) -> Received:
    small = cv2.resize(img, (320, 180), interpolation=cv2.INTER_AREA)
    return _jpeg(cv2.GaussianBlur(small, (0, 0), rng.uniform(0.8, 1.5)), int(rng.integers(60, 91)))


def _letterbox(img: np.ndarray, rng: np.random.Generator) -> Received:
    h, w = img.shape[:2]
    out_w = int(rng.choice([640, 480, 320]))
    out_h = out_w * 3 // 4
    content_h = out_w * h // w
    canvas = np.zeros((out_h, out_w, 3), dtype=np.uint8)
    y0 = (out_h - content_h) // 2
    canvas[y0 : y0 + content_h] = cv2.resize(img, (out_w, content_h), interpolation=cv2.INTER_AREA)
    return _jpeg(canvas, int(rng.integers(50, 91)))


def _crop(img: np.ndarray, rng: np.random.Generator) -> Received:
    h, w = img.shape[:2]
    left, right, top, bottom = rng.uniform(0, 0.05, 4)
    crop = img[int(top * h) : h - int(bottom * h), int(left * w) : w - int(right * w)]
    return _jpeg(cv2.resize(crop, (w, h), interpolation=cv2.INTER_LINEAR), int(rng.integers(50, 91)))


def _rotate(img: np.ndarray, rng: np.random.Generator) -> Received:
    h, w = img.shape[:2]
    matrix = cv2.getRotationMatrix2D((w / 2, h / 2), rng.uniform(-2, 2), 1.0)
    out = cv2.warpAffine(img, matrix, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
    return _jpeg(out, int(rng.integers(50, 91)))


def _overlay(img: np.ndarray, rng: np.random.Generator) -> Received:
    out = img.copy()
    h, w = out.shape[:2]
    scale = h / 360 * rng.uniform(0.7, 1.1)
    day, hour, minute = (int(x) for x in rng.integers((1, 0, 0), (29, 24, 60)))
    stamp = f"2026-11-{day:02d} {hour:02d}:{minute:02d}:17"
    texts = [
        (stamp, (int(0.02 * w), int(0.07 * h))),
        (f"CAM {int(rng.integers(1, 99)):02d}", (int(0.78 * w), int(0.95 * h))),
        ("LIVE", (int(0.86 * w), int(0.07 * h))),
        ("REC", (int(0.02 * w), int(0.95 * h))),
    ]
    # dark outline first, then the white text on top, as camera firmware draws it
    strokes = (((0, 0, 0), max(2, round(4 * scale))), ((255, 255, 255), max(1, round(1.5 * scale))))
    for text, org in texts:
        for colour, thickness in strokes:
            cv2.putText(out, text, org, cv2.FONT_HERSHEY_SIMPLEX, scale, colour, thickness, cv2.LINE_AA)
    return _jpeg(out, int(rng.integers(50, 91)))


def _double(img: np.ndarray, rng: np.random.Generator) -> Received:
    first = cv2.imdecode(np.frombuffer(_jpeg(img, int(rng.integers(30, 71))), np.uint8), cv2.IMREAD_COLOR)
    if first is None:
        raise RuntimeError("OpenCV failed to decode its own JPEG")
    factor = rng.uniform(0.5, 1.0)
    resized = cv2.resize(
        first,
        (int(img.shape[1] * factor), int(img.shape[0] * factor)),
        interpolation=cv2.INTER_AREA,
    )
    return _jpeg(resized, int(rng.integers(20, 61)))


DEGRADATIONS: tuple[Degradation, ...] = (
    Degradation("jpeg-q5-95", "JPEG re-encode, quality uniform in 5..95", (640, 360), _jpeg_quality),
    Degradation("resize-1080p-160x90", "rescaled to 1920x1080 .. 160x90, JPEG q50..90", (1280, 720), _sizes),
    Degradation(
        "night-gray-noise",
        "grayscale, exposure shift, Gaussian noise s=6..14, JPEG q40..80",
        (640, 360),
        _night,
    ),
    Degradation("blur-320x180", "320x180, Gaussian blur sigma 0.8..1.5, JPEG q60..90", (640, 360), _blur),
    Degradation(
        "letterbox-4:3",
        "16:9 letterboxed into 4:3 (640/480/320 wide), JPEG",
        (640, 360),
        _letterbox,
    ),
    Degradation("crop-5pct", "crop 0..5% per edge, rescaled back, JPEG", (640, 360), _crop),
    Degradation("rotate-2deg", "rotation -2..2 degrees, black corners, JPEG", (640, 360), _rotate),
    Degradation(
        "corner-overlays",
        "clock/camera/LIVE/REC text in the four corners, JPEG",
        (640, 360),
        _overlay,
    ),
    Degradation("double-reencode", "JPEG q30..70, downscale 50..100%, JPEG q20..60", (640, 360), _double),
)


@dataclass(frozen=True)
class Sample:
    spec: FrameSpec
    received: Received


def samples(
    degradation: Degradation,
    keyring: Keyring,
    count: int,
    *,
    seed: int,
    tenants: Sequence[str] | None = None,
) -> Iterator[Sample]:
    """`count` random canary frames (random tenant/camera/seq/time) through `degradation`."""
    rng = np.random.default_rng(seed)
    names = list(tenants or keyring)
    w, h = degradation.base_size
    for _ in range(count):
        spec = _random_spec(rng, names, w, h)
        frame = render_frame(spec, keyring.key(spec.tenant))
        yield Sample(spec, degradation.apply(frame, rng))


def _random_spec(rng: np.random.Generator, names: Sequence[str], w: int, h: int) -> FrameSpec:
    return FrameSpec(
        tenant=names[int(rng.integers(0, len(names)))],
        camera=int(rng.integers(0, 65536)),
        seq=int(rng.integers(0, 2**32)),
        time=float(rng.integers(1_700_000_000, 1_900_000_000)) + int(rng.integers(0, 256)) / 256,
        width=w,
        height=h,
    )


def h264_roundtrip(
    keyring: Keyring,
    count: int,
    *,
    seed: int,
    bitrate: int = 200_000,
    size: tuple[int, int] = (640, 360),
    fps: int = 10,
) -> Iterator[Sample]:
    """A live canary stream (seq increments) through libx264 at a low bitrate and back."""
    import av  # dev extra: PyAV ships FFmpeg with libx264

    rng = np.random.default_rng(seed)
    names = list(keyring)
    w, h = size
    tenant = names[int(rng.integers(0, len(names)))]
    camera = int(rng.integers(0, 100))
    start = float(rng.integers(1_700_000_000, 1_900_000_000))
    specs = [FrameSpec(tenant, camera, 1000 + i, start + i / fps, w, h) for i in range(count)]
    out_specs: list[FrameSpec] = []
    decoded: list[np.ndarray] = []
    import io

    buf = io.BytesIO()
    with av.open(buf, mode="w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
        stream.bit_rate = bitrate
        stream.options = {"preset": "veryfast", "tune": "zerolatency"}
        for spec in specs:
            frame = av.VideoFrame.from_ndarray(render_frame(spec, keyring.key(tenant)), format="bgr24")
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    buf.seek(0)
    with av.open(buf, mode="r") as container:
        for frame in container.decode(video=0):
            decoded.append(frame.to_ndarray(format="bgr24"))
    out_specs = specs[: len(decoded)]
    for spec, img in zip(out_specs, decoded, strict=True):
        yield Sample(spec, img)
