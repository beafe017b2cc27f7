"""Render canary frames: the signed marker, the canary background and a caption.

A camera renders one frame per tick at up to 720p, so everything that does not change
between frames is computed once per camera and size: where each module row and
column falls in pixels, and the caption box with its first line (tenant and camera).
Per frame only the module rows (one prepared pixel row each, repeated) and the second
caption line (seq and time) are drawn. The result is byte-for-byte the frame that
painting every pixel would give (`tests/unit/test_render_cache.py` holds that
reference).

No OpenCV: the caption is drawn from a glyph atlas (``markers.caption``) and JPEGs are
encoded by libjpeg-turbo through simplejpeg (``markers.jpeg``), so a camera pod carries
numpy and libjpeg only. PNG (``canarywatch frame render --out x.png``) is encoded by
OpenCV, on purpose: that command is for people, runs once and exits; OpenCV stays a
dependency anyway (the decoder reads PNGs, and the JPEGs simplejpeg refuses, with it);
the other library among the dependencies that writes PNG, PyAV (FFmpeg's encoder), maps
as much memory (~35 MiB) for more CPU; and a writer of our own (numpy and zlib) would be
plumbing to keep for one command's output.
"""

from __future__ import annotations

import time as _time
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from canarywatch.markers import ecc
from canarywatch.markers.caption import draw_line
from canarywatch.markers.jpeg import band_rows, encode_jpeg
from canarywatch.markers.layout import CAPTION_BOX, COLS, LAYOUT, ROWS, ModuleKind
from canarywatch.markers.payload import Payload, pack_signed, tenant_tag

__all__ = [
    "DARK_BGR",
    "DEFAULT_HEIGHT",
    "DEFAULT_WIDTH",
    "LIGHT_BGR",
    "FrameRenderer",
    "FrameSpec",
    "caption_lines",
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
_PALETTE = np.array([LIGHT_BGR, DARK_BGR], dtype=np.uint8)
#: Module rows of fixed modules only (the border's top and bottom): the same pixels in
#: every frame of a camera.
_FIXED_ROWS = tuple(
    r for r in range(ROWS) if np.isin(LAYOUT.kinds[r], (ModuleKind.DARK, ModuleKind.LIGHT)).all()
)


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


def caption_lines(spec: FrameSpec) -> tuple[str, str]:
    """The human-readable caption: who and which camera, then seq and UTC time."""
    stamp = _time.strftime("%Y-%m-%d %H:%M:%S", _time.gmtime(spec.time))
    return f"CANARY {spec.tenant} cam {spec.camera}", f"#{spec.seq} {stamp}Z"


def _edge(i: int, n: int, size: int) -> int:
    return -(-i * size // n)  # first pixel whose module index is >= i


@dataclass(frozen=True, slots=True)
class _Geometry:
    """Pixel geometry of one frame size (shared by every camera of that size)."""

    width: int
    height: int
    row_edges: tuple[int, ...]  # module row r covers pixel rows row_edges[r]:row_edges[r + 1]
    row_heights: np.ndarray  # pixel rows of each module row
    col_widths: np.ndarray  # pixel columns of each module column
    box: tuple[int, int, int, int]  # caption box x0, x1, y0, y1


@lru_cache(maxsize=16)
def _geometry(width: int, height: int) -> _Geometry:
    if width < MIN_WIDTH or height < MIN_HEIGHT:
        raise ValueError(f"frame must be at least {MIN_WIDTH}x{MIN_HEIGHT}, got {width}x{height}")
    c0, r0, w, h = CAPTION_BOX
    # integer arithmetic keeps module edges on the 8×8 JPEG grid whenever width/32
    # and height/18 are multiples of 8
    col_widths = np.diff([_edge(c, COLS, width) for c in range(COLS + 1)])
    col_widths.setflags(write=False)
    row_edges = tuple(_edge(r, ROWS, height) for r in range(ROWS + 1))
    row_heights = np.diff(row_edges)
    row_heights.setflags(write=False)
    return _Geometry(
        width=width,
        height=height,
        row_edges=row_edges,
        row_heights=row_heights,
        col_widths=col_widths,
        box=(
            _edge(c0, COLS, width),
            _edge(c0 + w, COLS, width),
            _edge(r0, ROWS, height),
            _edge(r0 + h, ROWS, height),
        ),
    )


def _draw_line(frame: np.ndarray, box: tuple[int, int, int, int], index: int, text: str) -> None:
    """Caption line `index` (0 or 1), scaled to fit its half of the caption box."""
    draw_line(frame, box, index, text, ink=DARK_BGR, background=CAPTION_BG_BGR)


class FrameRenderer:
    """Renders the frames of one camera (tenant, camera number, size), caching what stays.

    The caption box with its first line is drawn once; when that line's anti-aliased
    edge would reach outside the box (tiny frames, long tenant ids), it is drawn per
    frame instead, so a cached frame never differs from a fully painted one.
    """

    def __init__(
        self, tenant: str, camera: int, width: int = DEFAULT_WIDTH, height: int = DEFAULT_HEIGHT
    ) -> None:
        self.tenant, self.camera = tenant, camera
        self.geometry = _geometry(width, height)
        self._tag = tenant_tag(tenant)
        self._first_line = caption_lines(FrameSpec(tenant, camera, 0, 0.0, width, height))[0]
        self._caption = self._caption_patch()
        #: quality -> (the bands of fixed rows, ``encode_jpeg``'s bands kept of them)
        self._jpeg: dict[int, tuple[frozenset[int], dict[int, bytes]]] = {}

    def encode(self, frame: np.ndarray, quality: int) -> bytes:
        """``encode_image(frame, quality=quality, restart_rows=True)`` of a frame this
        renderer rendered, with the bands of its fixed rows (the border's top and
        bottom module rows, the same in every frame) encoded once."""
        jpeg = self._jpeg.get(quality)
        if jpeg is None:
            g, step = self.geometry, band_rows(quality, 1)
            fixed = [(g.row_edges[r], g.row_edges[r + 1]) for r in _FIXED_ROWS]
            constant = frozenset(
                n
                for n in range(-(-g.height // step))
                if any(a <= n * step and min(g.height, (n + 1) * step) <= b for a, b in fixed)
            )
            jpeg = self._jpeg[quality] = (constant, {})
        constant, kept = jpeg
        return encode_jpeg(frame, quality=quality, band_height=1, kept=kept, constant=constant)

    def _caption_patch(self) -> np.ndarray | None:
        """The caption box with its first line, or None when the line leaves the box."""
        g = self.geometry
        x0, x1, y0, y1 = g.box
        # draw on the box plus a margin: ink in the margin means the line leaves the box
        m = max(8, (y1 - y0) // 2)
        left, top = max(0, x0 - m), max(0, y0 - m)
        canvas = np.zeros((min(g.height, y1 + m) - top, min(g.width, x1 + m) - left, 3), dtype=np.uint8)
        inner = (slice(y0 - top, y1 - top), slice(x0 - left, x1 - left))
        canvas[inner] = CAPTION_BG_BGR
        _draw_line(canvas, (x0 - left, x1 - left, y0 - top, y1 - top), 0, self._first_line)
        outside = canvas.copy()
        outside[inner] = 0
        if outside.any():
            return None
        patch = canvas[inner].copy()
        patch.setflags(write=False)
        return patch

    def render(self, spec: FrameSpec, key: bytes) -> np.ndarray:
        """A new BGR frame for `spec` (whose tenant, camera and size are this renderer's)."""
        g = self.geometry
        if (spec.tenant, spec.camera, spec.width, spec.height) != (
            self.tenant,
            self.camera,
            g.width,
            g.height,
        ):
            raise ValueError(
                f"renderer for {self.tenant!r} camera {self.camera} at {g.width}x{g.height} "
                f"cannot render {spec.tenant!r} camera {spec.camera} at {spec.width}x{spec.height}"
            )
        payload = Payload(tenant_tag=self._tag, camera=spec.camera, seq=spec.seq, time=spec.time)
        grid = module_bits(pack_signed(payload, key))
        # one pixel row per module row, repeated down the module: (ROWS, width*3)
        rows = np.repeat(_PALETTE[grid.view(np.uint8)], g.col_widths, axis=1).reshape(ROWS, -1)
        frame = np.repeat(rows, g.row_heights, axis=0).reshape(g.height, g.width, 3)
        x0, x1, y0, y1 = g.box
        if self._caption is not None:
            frame[y0:y1, x0:x1] = self._caption
        else:
            frame[y0:y1, x0:x1] = CAPTION_BG_BGR
            _draw_line(frame, g.box, 0, self._first_line)
        _draw_line(frame, g.box, 1, caption_lines(spec)[1])
        return frame


@lru_cache(maxsize=16)
def _renderer(tenant: str, camera: int, width: int, height: int) -> FrameRenderer:
    return FrameRenderer(tenant, camera, width, height)


def render_frame(spec: FrameSpec, key: bytes) -> np.ndarray:
    """A BGR canary frame for `spec`, signed with the tenant's `key`."""
    return _renderer(spec.tenant, spec.camera, spec.width, spec.height).render(spec, key)


def encode_image(
    frame: np.ndarray, fmt: str = "jpeg", *, quality: int = 85, restart_rows: bool = False
) -> bytes:
    """Encode a frame as JPEG or PNG bytes.

    `restart_rows`: a JPEG restart marker after every row of MCUs (16 px at 4:2:0, 8 px
    at 4:4:4 from quality 90), what canary cameras publish: a corrupted byte then costs
    one row, not the rest of the frame, and a viewer's reduced read cuts out only the
    rows it samples (``markers.restarts``).
    """
    kind = {"jpeg": "jpeg", "jpg": "jpeg", "png": "png"}.get(fmt)
    if kind is None:
        raise ValueError(f"format must be jpeg or png, got {fmt!r}")
    if kind == "jpeg":
        return encode_jpeg(frame, quality=int(quality), band_height=1 if restart_rows else 0)
    import cv2  # PNG is for people (`frame render`), not cameras: see the module docstring

    ok, buf = cv2.imencode(".png", frame)
    if not ok:
        raise ValueError(f"could not encode frame as {fmt}")
    return bytes(buf.tobytes())
