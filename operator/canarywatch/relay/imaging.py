"""JPEG handling: the relay's only look inside frames.

Frames are opaque bytes everywhere else. They are decoded only to make the smaller
renditions (the low-bandwidth variant, event thumbnails), because that transcode is
what a real relay does on those paths, and what a canary must survive.
"""

from __future__ import annotations

import cv2
import numpy as np

__all__ = [
    "LOW_VARIANT_BOX",
    "TranscodeError",
    "decode_jpeg",
    "fit_box",
    "looks_like_jpeg",
    "make_low_variant",
    "make_thumbnail",
]

#: The low-bandwidth variant fits in this box (width, height); 16:9 like the source.
LOW_VARIANT_BOX = (320, 180)

# Every JPEG starts with SOI (FF D8) followed by a marker's FF.
_JPEG_MAGIC = b"\xff\xd8\xff"
_THUMBNAIL_QUALITY = 70


class TranscodeError(ValueError):
    """The bytes passed the JPEG sniff but could not be decoded or re-encoded."""


def looks_like_jpeg(data: bytes) -> bool:
    """Cheap ingest check; a full decode of every frame would cost more than it catches."""
    return data.startswith(_JPEG_MAGIC)


def make_low_variant(jpeg: bytes, *, quality: int) -> bytes:
    """The frame scaled down to fit ``LOW_VARIANT_BOX`` and re-encoded at ``quality``."""
    return _encode(fit_box(decode_jpeg(jpeg), LOW_VARIANT_BOX), quality)


def make_thumbnail(jpeg: bytes, *, width: int) -> bytes:
    """The frame scaled to ``width`` (never up), aspect ratio kept."""
    image = decode_jpeg(jpeg)
    scale = min(width / image.shape[1], 1.0)
    return _encode(_resize(image, scale), _THUMBNAIL_QUALITY)


def fit_box(image: np.ndarray, box: tuple[int, int]) -> np.ndarray:
    """``image`` scaled down (never up) to fit ``box`` (width, height), aspect kept."""
    height, width = image.shape[:2]
    return _resize(image, min(box[0] / width, box[1] / height, 1.0))


def decode_jpeg(jpeg: bytes) -> np.ndarray:
    """The frame's BGR pixels; raises ``TranscodeError``."""
    image = cv2.imdecode(np.frombuffer(jpeg, dtype=np.uint8), cv2.IMREAD_COLOR)
    if image is None or image.size == 0:
        raise TranscodeError(f"cannot decode a {len(jpeg)}-byte JPEG")
    return image


def _resize(image: np.ndarray, scale: float) -> np.ndarray:
    if scale >= 1.0:
        return image
    height, width = image.shape[:2]
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    # INTER_AREA averages source pixels instead of skipping them: the usual choice of
    # transcoders for downscaling, and free of the aliasing a nearest-pixel pick adds.
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA)


def _encode(image: np.ndarray, quality: int) -> bytes:
    ok, buffer = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise TranscodeError("JPEG encoder refused the image")
    return buffer.tobytes()
