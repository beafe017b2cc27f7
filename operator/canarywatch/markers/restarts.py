"""Of a JPEG with restart markers, a smaller JPEG of only some of its MCU rows.

A restart marker resets the entropy decoder (DC predictions, bit buffer), so the bytes
between two markers decode on their own. When the restart intervals fall on MCU-row
boundaries — a canary camera puts a marker after every MCU row — the rows a verdict
samples can be cut out and stacked, their markers renumbered, into a frame that claims
only those rows: libjpeg entropy-decodes those and nothing else (at 1280×720, 10 of the
28 MCU rows that hold the signed message). Each row decodes to exactly the pixels it
has in the whole frame: a baseline scan's blocks do not depend on their neighbours.

Pure byte surgery on untrusted input: a marker that is missing or out of place makes a
different, smaller JPEG, whose pixels only a verifying MAC can accept (the decoder
falls back to the whole frame otherwise).
"""

from __future__ import annotations

import struct
from collections.abc import Sequence

from canarywatch.markers.images import Probe

__all__ = ["MAX_INTERVALS_PER_ROW", "mcu_rows"]

#: Restart intervals per MCU row beyond which finding them costs more than it saves
MAX_INTERVALS_PER_ROW = 4
_RST = tuple(bytes((0xFF, 0xD0 + k)) for k in range(8))
_EOI = b"\xff\xd9"


def mcu_rows(data: bytes, info: Probe, rows: Sequence[int]) -> bytes | None:
    """``data`` reduced to its MCU rows ``rows`` (ascending, not the frame's last),
    stacked in that order; None when its restart intervals do not fall on MCU-row
    boundaries (or there are none), or a marker is missing."""
    interval = info.restart_interval
    if not (info.mcu_height and info.mcu_width and info.scan_data and interval and rows):
        return None
    per_row, spare = divmod(-(-info.width // info.mcu_width), interval)
    if spare or not 0 < per_row <= MAX_INTERVALS_PER_ROW:
        return None
    last = (rows[-1] + 1) * per_row  # intervals needed, from the first
    if last >= -(-info.height // info.mcu_height) * per_row:
        return None  # the last interval ends at the end of the scan: not cut here
    # where each interval ends: at its restart marker, numbered 0..7 in turn
    ends = []
    pos = info.scan_data
    for k in range(last):
        pos = data.find(_RST[k & 7], pos)
        if pos < 0:
            return None
        ends.append(pos)
        pos += 2
    sof = info.frame_header
    view = memoryview(data)
    parts: list[bytes | memoryview] = [
        view[: sof + 5],
        struct.pack(">H", len(rows) * info.mcu_height),
        view[sof + 7 : info.scan_data],
    ]
    written = 0
    for row in rows:
        for k in range(row * per_row, (row + 1) * per_row):
            if written:
                parts.append(_RST[(written - 1) & 7])
            parts.append(view[ends[k - 1] + 2 if k else info.scan_data : ends[k]])
            written += 1
    parts.append(_EOI)
    return b"".join(parts)
