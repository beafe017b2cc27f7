"""HLS playlists as a hub's player reads them (pure: text in, decisions out).

Parsing is the ``m3u8`` library's (imported on first use); what is ours is what a player
decides with it: which variant of a master playlist to watch on the link it measured
(the lowest rendition a slow hub falls to is where a 2019-style cache leak lives), and
which segments of a live media playlist are new since the last reload, and for a
Low-Latency playlist (RFC 8216bis: ``EXT-X-PART``, ``EXT-X-PRELOAD-HINT``,
``EXT-X-SERVER-CONTROL``) which parts are new and which part a blocking reload
(``_HLS_msn``/``_HLS_part``) asks for next.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, urlencode, urljoin, urlsplit, urlunsplit

__all__ = [
    "PLAYLIST_CONTENT_TYPES",
    "MasterPlaylist",
    "MediaPlaylist",
    "Part",
    "PlaylistError",
    "Segment",
    "Variant",
    "blocking_reload_url",
    "choose_variant",
    "looks_like_playlist",
    "new_parts",
    "new_segments",
    "next_part",
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
# The query a blocking playlist reload sets (RFC 8216bis 6.2.5.2).
_BLOCKING_KEYS = ("_HLS_msn", "_HLS_part", "_HLS_skip")


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
class Part:
    """An ``EXT-X-PART``: a piece of media segment ``sequence``, its ``index``-th."""

    url: str
    sequence: int
    index: int
    duration: float
    #: INDEPENDENT=YES: it starts with a keyframe (decodable on its own, with the map).
    independent: bool
    init_url: str | None = None
    #: the last part of a segment the playlist lists as complete (its EXTINF is there).
    closes_segment: bool = False

    @property
    def key(self) -> tuple[int, int]:
        return (self.sequence, self.index)


@dataclass(frozen=True)
class MasterPlaylist:
    variants: tuple[Variant, ...]


@dataclass(frozen=True)
class MediaPlaylist:
    segments: tuple[Segment, ...]
    target_duration: float
    #: EXT-X-ENDLIST: nothing will be added (VOD or a finished event).
    ended: bool
    #: the Low-Latency parts, oldest first (those of the segment in progress included).
    parts: tuple[Part, ...] = ()
    #: EXT-X-PART-INF PART-TARGET (seconds); None: not a Low-Latency playlist.
    part_target: float | None = None
    #: EXT-X-SERVER-CONTROL CAN-BLOCK-RELOAD=YES: ``_HLS_msn``/``_HLS_part`` reloads are held.
    can_block_reload: bool = False
    #: EXT-X-PRELOAD-HINT TYPE=PART: the URI of the part being written (absolute).
    preload_hint: str | None = None


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
    segments: list[Segment] = []
    parts: list[Part] = []
    # m3u8 leaves the map off a trailing segment that has parts only (and so off every
    # part of a playlist whose first segment is still being written): start from the first.
    maps = [m.uri for m in getattr(playlist, "segment_map", None) or () if getattr(m, "uri", None)]
    init_url: str | None = urljoin(url, maps[0]) if maps else None
    for index, segment in enumerate(playlist.segments):
        init = segment.init_section
        init_url = urljoin(url, init.uri) if init is not None and init.uri else init_url
        complete = bool(segment.uri)
        listed = [p for p in segment.parts or () if p.uri]
        for number, part in enumerate(listed):
            parts.append(
                Part(
                    urljoin(url, part.uri),
                    first + index,
                    number,
                    float(part.duration or 0),
                    str(part.independent or "").upper() == "YES",
                    init_url,
                    complete and number == len(listed) - 1,
                )
            )
        if complete:
            segments.append(
                Segment(urljoin(url, segment.uri), first + index, float(segment.duration or 0), init_url)
            )
    target = float(playlist.target_duration or 0) or max((s.duration for s in segments), default=2.0)
    # m3u8 leaves these as empty dicts when the tags are absent: read them by attribute.
    part_target = getattr(getattr(playlist, "part_inf", None), "part_target", None)
    blocking = getattr(getattr(playlist, "server_control", None), "can_block_reload", None)
    hint = getattr(playlist, "preload_hint", None)
    hint_uri = getattr(hint, "uri", None)
    return MediaPlaylist(
        tuple(segments),
        target,
        bool(playlist.is_endlist),
        parts=tuple(parts),
        part_target=float(part_target) if part_target else None,
        can_block_reload=str(blocking or "").upper() == "YES",
        preload_hint=urljoin(url, hint_uri)
        if hint_uri and str(getattr(hint, "hint_type", "")).upper() == "PART"
        else None,
    )


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


def new_parts(playlist: MediaPlaylist, after: tuple[int, int] | None) -> list[Part]:
    """Parts after ``after`` (sequence, index); on the first load only the newest
    independent part and those after it, where a Low-Latency player joins. A sequence
    that went backwards (the stream restarted) is joined at the live edge again."""
    parts = list(playlist.parts)
    if not parts:
        return []
    if after is None or parts[-1].key < after:
        starts = [i for i, part in enumerate(parts) if part.independent]
        return parts[starts[-1] :] if starts else parts[-1:]
    return [part for part in parts if part.key > after]


def next_part(last: Part) -> tuple[int, int]:
    """The part a blocking reload waits for after ``last`` (RFC 8216bis 6.2.5.2): the
    next of its segment, or the first of the next segment once ``last`` closed its own."""
    return (last.sequence + 1, 0) if last.closes_segment else (last.sequence, last.index + 1)


def blocking_reload_url(url: str, wanted: tuple[int, int]) -> str:
    """``url`` with ``_HLS_msn`` and ``_HLS_part`` set to ``wanted`` (other query kept)."""
    parts = urlsplit(url)
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k not in _BLOCKING_KEYS]
    query += [("_HLS_msn", str(wanted[0])), ("_HLS_part", str(wanted[1]))]
    return urlunsplit(parts._replace(query=urlencode(query)))


def _resolution(value: object) -> str:
    if isinstance(value, tuple) and len(value) == 2:
        return f"{value[0]}x{value[1]}"
    return ""
