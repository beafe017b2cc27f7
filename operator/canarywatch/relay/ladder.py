"""The relay's HLS ABR ladder: rungs, segment windows and playlists (pure).

Each camera is served as a live HLS stream with two renditions, as a camera cloud serves
a smart display: ``high`` (the camera's own size) and ``low`` (fits the low-bandwidth
box, a fraction of the bitrate). A hub's player on a poor connection picks ``low``;
that rung is made by the same low-bandwidth cache that leaks under ``xiaomi-2019``.

Segment ``n`` of a camera holds the frames that arrived in ``[n*D, (n+1)*D)`` (relay
time, ``D`` the segment length). A media playlist lists the last complete windows; a
window in which the camera sent nothing repeats the camera's previous frame (a live
segmenter holds the last picture).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from canarywatch.relay.imaging import LOW_VARIANT_BOX
from canarywatch.relay.video import Rung

__all__ = ["RUNGS", "listed_windows", "master_playlist", "media_playlist", "rung_named", "window_of"]

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


def master_playlist(rungs: Sequence[Rung] = RUNGS) -> str:
    """The multivariant playlist; each variant's URI is relative (``<rung>/index.m3u8``),
    so it works under any prefix, a capability URL's included. A player picks by
    ``BANDWIDTH``, the one attribute every player reads."""
    lines = ["#EXTM3U", "#EXT-X-VERSION:3", "#EXT-X-INDEPENDENT-SEGMENTS"]
    for rung in rungs:
        lines += [
            f'#EXT-X-STREAM-INF:BANDWIDTH={rung.bitrate},CODECS="avc1.42e01e"',
            f"{rung.name}/index.m3u8",
        ]
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
