"""JPEGs carrying an EXIF ``Orientation`` tag, as phones and some cameras write them:
the pixels stored turned, the tag saying how to show them upright."""

from __future__ import annotations

import struct

import numpy as np

#: How a writer turns upright pixels before storing them, so that turning them as the
#: tag says (EXIF 2.3, tag 0x0112) shows them upright again: 3 half a turn, 6 a quarter
#: anticlockwise (shown a quarter clockwise), 8 a quarter clockwise.
STORED_TURNS = {1: 0, 3: 2, 6: 1, 8: -1}


def stored_turned(upright: np.ndarray, orientation: int) -> np.ndarray:
    """The pixels a writer stores under ``orientation`` (one of ``STORED_TURNS``)."""
    return np.ascontiguousarray(np.rot90(upright, STORED_TURNS[orientation]))


def with_orientation(jpeg: bytes, orientation: int, *, byte_order: str = "MM") -> bytes:
    """``jpeg`` with an APP1 ``Exif`` segment right after SOI whose first IFD holds
    ``Orientation`` (a SHORT) after another tag, in big- (``MM``) or little-endian (``II``)."""
    fmt = ">" if byte_order == "MM" else "<"
    entries = [
        struct.pack(fmt + "HHI4s", 0x010F, 2, 4, b"cam\x00"),  # Make: an ASCII entry first
        struct.pack(fmt + "HHIHH", 0x0112, 3, 1, orientation, 0),
    ]
    ifd = struct.pack(fmt + "H", len(entries)) + b"".join(entries) + struct.pack(fmt + "I", 0)
    tiff = byte_order.encode() + struct.pack(fmt + "HI", 42, 8) + ifd
    app1 = b"Exif\x00\x00" + tiff
    return jpeg[:2] + b"\xff\xe1" + struct.pack(">H", len(app1) + 2) + app1 + jpeg[2:]
