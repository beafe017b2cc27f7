"""The cached renderer paints exactly the frame that painting every pixel gives.

`_reference_frame` is the renderer as it was before caching (every pixel, every
frame): the cache is an optimisation, so any byte that differs is a bug.
"""

from __future__ import annotations

import time

import cv2
import numpy as np
import pytest

from canarywatch.markers import FrameSpec, Keyring, render_frame
from canarywatch.markers.caption import draw_line
from canarywatch.markers.layout import CAPTION_BOX, COLS, ROWS
from canarywatch.markers.payload import pack_signed
from canarywatch.markers.render import CAPTION_BG_BGR, DARK_BGR, LIGHT_BGR, FrameRenderer, module_bits

NOW = 1_795_000_000.5


def _edge(i: int, n: int, size: int) -> int:
    return -(-i * size // n)


def _reference_frame(spec: FrameSpec, key: bytes) -> np.ndarray:
    grid = module_bits(pack_signed(spec.payload(), key))
    col_of_x = (np.arange(spec.width) * COLS) // spec.width
    row_of_y = (np.arange(spec.height) * ROWS) // spec.height
    frame = np.empty((spec.height, spec.width, 3), dtype=np.uint8)
    frame[...] = LIGHT_BGR
    frame[grid[row_of_y[:, None], col_of_x[None, :]]] = DARK_BGR
    c0, r0, w, h = CAPTION_BOX
    x0, x1 = _edge(c0, COLS, spec.width), _edge(c0 + w, COLS, spec.width)
    y0, y1 = _edge(r0, ROWS, spec.height), _edge(r0 + h, ROWS, spec.height)
    frame[y0:y1, x0:x1] = CAPTION_BG_BGR
    stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(spec.time))
    lines = (f"CANARY {spec.tenant} cam {spec.camera}", f"#{spec.seq} {stamp}Z")
    for i, text in enumerate(lines):
        draw_line(frame, (x0, x1, y0, y1), i, text, ink=DARK_BGR, background=CAPTION_BG_BGR)
    return frame


@pytest.mark.parametrize(
    ("w", "h"),
    [(1920, 1080), (1280, 720), (640, 360), (320, 180), (160, 90), (64, 36), (640, 480), (333, 187)],
)
@pytest.mark.parametrize("tenant", ["acme-7", "a", "a-very-long-tenant-name-that-fills-the-caption-box-x"])
def test_cached_frames_are_identical_to_painting_every_pixel(
    keyring: Keyring, w: int, h: int, tenant: str
) -> None:
    key = keyring.key("acme-7")
    renderer = FrameRenderer(tenant, 65535, w, h)
    for seq in (0, 1, 4_294_967_295):  # consecutive frames reuse the cache
        spec = FrameSpec(tenant, 65535, seq, NOW + seq % 1000, w, h)
        expected = _reference_frame(spec, key)
        assert np.array_equal(renderer.render(spec, key), expected)
        assert np.array_equal(render_frame(spec, key), expected)


def test_frames_are_independent_arrays(keyring: Keyring) -> None:
    key = keyring.key("acme-7")
    renderer = FrameRenderer("acme-7", 1, 320, 180)
    first = renderer.render(FrameSpec("acme-7", 1, 1, NOW, 320, 180), key)
    kept = first.copy()
    renderer.render(FrameSpec("acme-7", 1, 2, NOW, 320, 180), key)
    assert np.array_equal(first, kept)


def test_a_renderer_refuses_another_cameras_frame(keyring: Keyring) -> None:
    renderer = FrameRenderer("acme-7", 1, 320, 180)
    with pytest.raises(ValueError, match="cannot render 'acme-7' camera 2 at 320x180"):
        renderer.render(FrameSpec("acme-7", 2, 1, NOW, 320, 180), keyring.key("acme-7"))


def test_too_small_frames_are_refused() -> None:
    with pytest.raises(ValueError, match="at least 64x36"):
        FrameRenderer("acme-7", 1, 63, 36)


def test_a_camera_publishes_the_frames_render_frame_gives(keyring: Keyring) -> None:
    from canarywatch.camera import CanaryCamera
    from canarywatch.markers import encode_image

    cam = CanaryCamera("acme-7", 3, keyring.key("acme-7"), width=640, height=360)
    for now in (NOW, NOW + 0.5):
        body = cam.next_frame(now)
        spec = FrameSpec("acme-7", 3, cam.seq, now, 640, 360)
        reference = _reference_frame(spec, keyring.key("acme-7"))
        assert body == encode_image(reference, quality=cam.quality, restart_rows=True)
    cam.width, cam.height = 320, 180  # a resized camera renders at its new size
    assert cv2.imdecode(np.frombuffer(cam.next_frame(NOW), np.uint8), cv2.IMREAD_COLOR).shape == (180, 320, 3)
