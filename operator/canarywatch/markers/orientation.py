"""A JPEG's EXIF orientation: which way up its pixels are meant to be shown.

A camera or phone that stores its pixels sideways writes an EXIF ``Orientation`` tag
(TIFF tag 0x0112, values 1-8) for viewers to turn them upright, as a display hub does.
libjpeg ignores it: the decoder reads the pixels as stored (``load_gray``), and turns
them to the tagged orientation where the frame as shown matters: an incident's evidence
thumbnail, and a second read by the decoder when the stored pixels do not verify (what
``cv2.imdecode`` did for every JPEG before JPEGs were decoded by simplejpeg).

Only the tag is read, from the first APP1 ``Exif`` segment the header walk meets
(``images.probe``: ``Probe.orientation``), in its first IFD; anything malformed,
missing or out of range is orientation 1 (as stored). No library among the dependencies
reads EXIF without loading an image stack (OpenCV, FFmpeg), hence these few lines.
"""

from __future__ import annotations

import struct

import numpy as np

__all__ = ["AS_STORED", "EXIF", "exif_orientation", "oriented"]

AS_STORED = 1
_ORIENTATION_TAG = 0x0112
_SHORT = 3
#: How an APP1 segment holding EXIF starts (then a TIFF header and its IFDs).
EXIF = b"Exif\x00\x00"
_BYTE_ORDERS = {b"II": "<", b"MM": ">"}


def exif_orientation(app1: bytes) -> int:
    """The ``Orientation`` (1-8) of an APP1 segment's payload (after its length), 1 when
    it is not ``Exif`` or has no valid tag."""
    return _tiff_orientation(app1[6:]) if app1[:6] == EXIF else AS_STORED


def _tiff_orientation(tiff: bytes) -> int:
    order = _BYTE_ORDERS.get(tiff[:2])
    if order is None or len(tiff) < 8:
        return AS_STORED
    magic, ifd = struct.unpack_from(order + "HI", tiff, 2)
    if magic != 42 or ifd + 2 > len(tiff):
        return AS_STORED
    (count,) = struct.unpack_from(order + "H", tiff, ifd)
    for entry in range(ifd + 2, min(ifd + 2 + 12 * count, len(tiff) - 11), 12):
        tag, kind, values, value = struct.unpack_from(order + "HHIH", tiff, entry)
        if tag == _ORIENTATION_TAG:
            return value if kind == _SHORT and values == 1 and 1 <= value <= 8 else AS_STORED
    return AS_STORED


def oriented(image: np.ndarray, orientation: int) -> np.ndarray:
    """``image`` (stored pixels, rows first) turned as EXIF ``orientation`` says it is
    shown: 3 is turned half a turn, 6 a quarter clockwise, 8 a quarter anticlockwise,
    2, 4, 5 and 7 are those mirrored. A new contiguous array unless 1."""
    if orientation == 2:
        turned = image[:, ::-1]
    elif orientation == 3:
        turned = image[::-1, ::-1]
    elif orientation == 4:
        turned = image[::-1, :]
    elif orientation == 5:
        turned = image.swapaxes(0, 1)
    elif orientation == 6:
        turned = np.rot90(image, -1)
    elif orientation == 7:
        turned = image[::-1, ::-1].swapaxes(0, 1)
    elif orientation == 8:
        turned = np.rot90(image, 1)
    else:
        return image
    return np.ascontiguousarray(turned)
