"""Render canary frames: the signed marker, the canary background and a caption."""

from __future__ import annotations

import time as _time
from dataclasses import dataclass

import cv2
import numpy as np

from canarywatch.markers import ecc
from canarywatch.markers.layout import CAPTION_BOX, COLS, LAYOUT, ROWS
from canarywatch.markers.payload import Payload, pack_signed, tenant_tag

__all__ = [
    "DARK_BGR",
    "DEFAULT_HEIGHT",
    "DEFAULT_WIDTH",
    "LIGHT_BGR",
    "FrameSpec",
    "encode_image",
    "module_bits",
    "render_frame",
]

DEFAULT_WIDTH = 1280
DEFAULT_HEIGHT = 720
# Canary yellow on navy: luma 202 vs 47, so the code survives grayscale night mode.
LIGHT_BGR = (0, 214, 255)
DARK_BGR = (100, 40, 40)
CAPTION_BG_BGR = (215, 250, 255)
MIN_WIDTH, MIN_HEIGHT = 64, 36


@dataclass(frozen=True, slots=True)
class FrameSpec:
    tenant: str
    camera: int
    seq: int
    time: float
    width: int = DEFAULT_WIDTH
    height: int = DEFAULT_HEIGHT

    def payload(self) -> Payload:
        return Payload(tenant_tag=tenant_tag(self.tenant), camera=self.camera, seq=self.seq, time=self.time)


def module_bits(message: bytes) -> np.ndarray:
    """(ROWS, COLS) bool, True = dark, for a signed message."""
    codeword = np.frombuffer(ecc.encode(message), dtype=np.uint8)
    bits = np.zeros(LAYOUT.data_bits, dtype=np.uint8)
    bits[: codeword.size * 8] = np.unpackbits(codeword)
    bits ^= LAYOUT.whitening
    grid = LAYOUT.fixed.copy()
    grid[LAYOUT.data_rows, LAYOUT.data_cols] = bits.astype(bool)
    return grid


def render_frame(spec: FrameSpec, key: bytes) -> np.ndarray:
    """A BGR canary frame for `spec`, signed with the tenant's `key`."""
    if spec.width < MIN_WIDTH or spec.height < MIN_HEIGHT:
        raise ValueError(f"frame must be at least {MIN_WIDTH}x{MIN_HEIGHT}, got {spec.width}x{spec.height}")
    grid = module_bits(pack_signed(spec.payload(), key))
    # pixel → module index; integer arithmetic keeps module edges on the 8×8 JPEG
    # grid whenever width/32 and height/18 are multiples of 8
    col_of_x = (np.arange(spec.width) * COLS) // spec.width
    row_of_y = (np.arange(spec.height) * ROWS) // spec.height
    dark = grid[row_of_y[:, None], col_of_x[None, :]]
    frame = np.empty((spec.height, spec.width, 3), dtype=np.uint8)
    frame[...] = LIGHT_BGR
    frame[dark] = DARK_BGR
    _draw_caption(frame, spec)
    return frame


def _edge(i: int, n: int, size: int) -> int:
    return -(-i * size // n)  # first pixel whose module index is >= i


def _draw_caption(frame: np.ndarray, spec: FrameSpec) -> None:
    c0, r0, w, h = CAPTION_BOX
    height, width = frame.shape[:2]
    x0, x1 = _edge(c0, COLS, width), _edge(c0 + w, COLS, width)
    y0, y1 = _edge(r0, ROWS, height), _edge(r0 + h, ROWS, height)
    frame[y0:y1, x0:x1] = CAPTION_BG_BGR
    stamp = _time.strftime("%Y-%m-%d %H:%M:%S", _time.gmtime(spec.time))
    lines = (f"CANARY {spec.tenant} cam {spec.camera}", f"#{spec.seq} {stamp}Z")
    box_w, line_h = x1 - x0, (y1 - y0) / 2
    font = cv2.FONT_HERSHEY_SIMPLEX
    for i, text in enumerate(lines):
        (tw, th), _ = cv2.getTextSize(text, font, 1.0, 1)
        scale = min(0.62 * line_h / th, 0.94 * box_w / tw)
        thickness = max(1, round(scale * 1.6))
        (tw, th), _ = cv2.getTextSize(text, font, scale, thickness)
        org = (x0 + (box_w - tw) // 2, round(y0 + line_h * i + (line_h + th) / 2))
        cv2.putText(frame, text, org, font, scale, DARK_BGR, thickness, cv2.LINE_AA)


def encode_image(frame: np.ndarray, fmt: str = "jpeg", *, quality: int = 85) -> bytes:
    """Encode a frame as JPEG or PNG bytes."""
    ext = {"jpeg": ".jpg", "jpg": ".jpg", "png": ".png"}.get(fmt)
    if ext is None:
        raise ValueError(f"format must be jpeg or png, got {fmt!r}")
    params = [cv2.IMWRITE_JPEG_QUALITY, int(quality)] if ext == ".jpg" else []
    ok, buf = cv2.imencode(ext, frame, params)
    if not ok:
        raise ValueError(f"could not encode frame as {fmt}")
    return bytes(buf.tobytes())
