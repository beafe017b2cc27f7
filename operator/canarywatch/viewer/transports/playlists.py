"""HLS playlists as a hub's player reads them (pure: text in, decisions out).

Parsing is the ``m3u8`` library's (imported on first use); what is ours is what a player
decides with it: which variant of a master playlist to watch on the link it measured
(the lowest rendition a slow hub falls to is where a 2019-style cache leak lives), and
which segments of a live media playlist are new since the last reload.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import urljoin

__all__ = [
    "PLAYLIST_CONTENT_TYPES",
    "MasterPlaylist",
    "MediaPlaylist",
    "PlaylistError",
    "Segment",
    "Variant",
    "choose_variant",
    "looks_like_playlist",
    "new_segments",
    "parse_playlist",
]

#: Content types servers give playlists (``looks_like_playlist`` also sniffs the body).
PLAYLIST_CONTENT_TYPES = (
    "application/vnd.apple.mpegurl",
    "application/x-mpegurl",
    "audio/mpegurl",
    "audio/x-mpegurl",
)
# A player uses this share of its measured downlink for video (hls.js's default factor).
_BANDWIDTH_SAFETY = 0.8


class PlaylistError(ValueError):
    """Not an HLS playlist, or one a player cannot use."""


@dataclass(frozen=True)
class Variant:
    url: str
    #: the EXT-X-STREAM-INF BANDWIDTH, bits per second.
    bandwidth: int
    resolution: str = ""


@dataclass(frozen=True)
class Segment:
    url: str
    #: media sequence number.
    sequence: int
    duration: float
    #: EXT-X-MAP URI (fMP4's init section), absolute; None for MPEG-TS.
    init_url: str | None = None


@dataclass(frozen=True)
class MasterPlaylist:
    variants: tuple[Variant, ...]


@dataclass(frozen=True)
class MediaPlaylist:
    segments: tuple[Segment, ...]
    target_duration: float
    #: EXT-X-ENDLIST: nothing will be added (VOD or a finished event).
    ended: bool


def looks_like_playlist(body: bytes, content_type: str = "") -> bool:
    """An HLS playlist by its content type or its first line (``#EXTM3U``)."""
    media_type = content_type.split(";", 1)[0].strip().lower()
    return media_type in PLAYLIST_CONTENT_TYPES or body.lstrip(b"\xef\xbb\xbf \t\r\n").startswith(b"#EXTM3U")


def parse_playlist(body: bytes, url: str) -> MasterPlaylist | MediaPlaylist:
    """A master or media playlist; URIs resolved against ``url`` (the URL it was
    finally served from, after redirects). Raises ``PlaylistError``."""
    import m3u8  # lazily: only HLS viewers load it

    try:
        text = body.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise PlaylistError("playlist is not UTF-8 text") from None
    if not text.lstrip().startswith("#EXTM3U"):
        raise PlaylistError("not an HLS playlist (no #EXTM3U)")
    try:
        playlist: Any = m3u8.loads(text)
    except Exception as error:  # m3u8 raises bare ValueErrors and more on bad input
        raise PlaylistError(f"unparseable playlist ({type(error).__name__})") from None
    if playlist.is_variant:
        variants = tuple(
            Variant(
                urljoin(url, item.uri),
                int(item.stream_info.bandwidth or 0),
                _resolution(item.stream_info.resolution),
            )
            for item in playlist.playlists
            if item.uri
        )
        if not variants:
            raise PlaylistError("master playlist without variants")
        return MasterPlaylist(variants)
    first = int(playlist.media_sequence or 0)
    segments = []
    for index, segment in enumerate(playlist.segments):
        init = segment.init_section
        init_url = urljoin(url, init.uri) if init is not None and init.uri else None
        segments.append(
            Segment(urljoin(url, segment.uri), first + index, float(segment.duration or 0), init_url)
        )
    target = float(playlist.target_duration or 0) or max((s.duration for s in segments), default=2.0)
    return MediaPlaylist(tuple(segments), target, bool(playlist.is_endlist))


def choose_variant(variants: tuple[Variant, ...], *, downlink_bps: float | None) -> Variant:
    """What a player picks: the best variant whose bandwidth fits its measured downlink
    (with a safety margin), else the lowest; the best one when nothing is measured."""
    ranked = sorted(variants, key=lambda v: v.bandwidth)
    if downlink_bps is None:
        return ranked[-1]
    fitting = [v for v in ranked if v.bandwidth <= downlink_bps * _BANDWIDTH_SAFETY]
    return fitting[-1] if fitting else ranked[0]


def new_segments(playlist: MediaPlaylist, after: int | None, *, live_edge: int = 1) -> list[Segment]:
    """Segments after sequence ``after``; on the first load (``after`` None) only the
    last ``live_edge`` ones, where a player joins a live stream. A sequence that went
    backwards (the stream restarted) is joined at the live edge again."""
    segments = list(playlist.segments)
    if not segments:
        return []
    if after is None or segments[-1].sequence < after:
        return segments[-live_edge:]
    return [s for s in segments if s.sequence > after]


def _resolution(value: object) -> str:
    if isinstance(value, tuple) and len(value) == 2:
        return f"{value[0]}x{value[1]}"
    return ""
