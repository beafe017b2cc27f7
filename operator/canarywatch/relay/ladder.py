"""The relay's HLS ABR ladder: rungs, segment windows and playlists (pure).

Each camera is served as a live HLS stream with two renditions, as a camera cloud serves
a smart display: ``high`` (the camera's own size) and ``low`` (fits the low-bandwidth
box, a fraction of the bitrate). A hub's player on a poor connection picks ``low``;
that rung is made by the same low-bandwidth cache that leaks under ``xiaomi-2019``.

Segment ``n`` of a camera holds the frames that arrived in ``[n*D, (n+1)*D)`` (relay
time, ``D`` the segment length). A media playlist lists the last complete windows; a
window in which the camera sent nothing repeats the camera's previous frame (a live
segmenter holds the last picture).

The same ladder is served as Low-Latency HLS (RFC 8216bis; ``ll.m3u8``): each segment
window is cut into ``K`` parts, part ``i`` holding the frames of ``[i*P, (i+1)*P)``
(``P = D/K``), each its own MPEG-TS that starts with a keyframe (``INDEPENDENT=YES``),
listed as soon as its window is over; the playlist announces blocking reloads
(``CAN-BLOCK-RELOAD``) and hints the part being written (``EXT-X-PRELOAD-HINT``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from canarywatch.relay.imaging import LOW_VARIANT_BOX
from canarywatch.relay.video import Rung

__all__ = [
    "RUNGS",
    "PartWindows",
    "listed_windows",
    "low_latency_playlist",
    "master_playlist",
    "media_playlist",
    "part_windows",
    "rung_named",
    "window_of",
]

#: The ladder, best first. Bitrates are what the variants announce (BANDWIDTH) and what
#: the encoder aims at; 200 kbit/s at 320x180 keeps a canary's marker readable.
RUNGS: tuple[Rung, ...] = (
    Rung("high", None, 1_500_000),
    Rung("low", LOW_VARIANT_BOX, 200_000),
)


def rung_named(name: str) -> Rung | None:
    return next((rung for rung in RUNGS if rung.name == name), None)


def window_of(at: float, segment_seconds: float) -> int:
    """The index of the segment window ``at`` (unix seconds) falls in."""
    return math.floor(at / segment_seconds)


def listed_windows(*, first_frame_at: float, now: float, segment_seconds: float, count: int) -> range:
    """The windows a media playlist lists: the last ``count`` complete ones, none before
    the camera's first (retained) frame. Empty while no window is complete."""
    last = window_of(now, segment_seconds) - 1
    first = max(window_of(first_frame_at, segment_seconds), last - count + 1)
    return range(first, last + 1)


def master_playlist(rungs: Sequence[Rung] = RUNGS, *, media: str = "index.m3u8") -> str:
    """The multivariant playlist; each variant's URI is relative (``<rung>/<media>``),
    so it works under any prefix, a capability URL's included. A player picks by
    ``BANDWIDTH``, the one attribute every player reads."""
    lines = ["#EXTM3U", "#EXT-X-VERSION:3", "#EXT-X-INDEPENDENT-SEGMENTS"]
    for rung in rungs:
        lines += [
            f'#EXT-X-STREAM-INF:BANDWIDTH={rung.bitrate},CODECS="avc1.42e01e"',
            f"{rung.name}/{media}",
        ]
    return "\n".join(lines) + "\n"


@dataclass(frozen=True)
class PartWindows:
    """What a Low-Latency playlist lists: complete segment windows and part windows
    (global part numbers: part ``i`` is window ``i`` of length ``segment/per_segment``)."""

    segments: range
    parts: range
    per_segment: int


def part_windows(segments: range, *, now: float, segment_seconds: float, per_segment: int) -> PartWindows:
    """The parts of the listed segments and the complete parts of the one in progress
    (none before the first listed segment's)."""
    last = window_of(now, segment_seconds / per_segment) - 1
    return PartWindows(segments, range(segments.start * per_segment, last + 1), per_segment)


def low_latency_playlist(windows: PartWindows, *, segment_seconds: float) -> str:
    """A live Low-Latency media playlist: segments ``<n>.ts``, parts ``p<i>.ts`` (all
    independent), blocking reloads announced, the next part hinted."""
    per = windows.per_segment
    part_s = segment_seconds / per
    lines = [
        "#EXTM3U",
        "#EXT-X-VERSION:9",
        f"#EXT-X-TARGETDURATION:{math.ceil(segment_seconds)}",
        f"#EXT-X-PART-INF:PART-TARGET={part_s:.3f}",
        f"#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,PART-HOLD-BACK={3 * part_s:.3f}",
        f"#EXT-X-MEDIA-SEQUENCE:{windows.segments.start}",
    ]
    for part in windows.parts:
        lines.append(f'#EXT-X-PART:DURATION={part_s:.3f},URI="p{part}.ts",INDEPENDENT=YES')
        segment, index = divmod(part, per)
        if index == per - 1 and segment in windows.segments:
            lines += [f"#EXTINF:{segment_seconds:.3f},", f"{segment}.ts"]
    lines.append(f'#EXT-X-PRELOAD-HINT:TYPE=PART,URI="p{windows.parts.stop}.ts"')
    return "\n".join(lines) + "\n"


def media_playlist(windows: range, *, segment_seconds: float) -> str:
    """A live media playlist of ``windows`` (segment URIs ``<n>.ts``, relative)."""
    target = math.ceil(segment_seconds)
    lines = [
        "#EXTM3U",
        "#EXT-X-VERSION:3",
        f"#EXT-X-TARGETDURATION:{target}",
        f"#EXT-X-MEDIA-SEQUENCE:{windows.start}",
    ]
    for n in windows:
        lines += [f"#EXTINF:{segment_seconds:.3f},", f"{n}.ts"]
    return "\n".join(lines) + "\n"
