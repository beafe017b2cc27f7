"""``HlsReader``: watch an HLS stream as a hub's player does, one judged frame per GOP.

Master playlist → the variant the hub's measured link can carry (``choose_variant``) →
its media playlist, reloaded every target duration → each new segment (MPEG-TS, or
fMP4 with its ``EXT-X-MAP`` init section) fetched through the hub's shaper and decoded
off the event loop (``video``), sampled. Redirects are followed and relative URIs
resolved against the URL that answered; the request's headers (its token) go only to
URLs on the playlist's origin. Cookies a playlist or segment answer sets (a CDN's signed
session) are sent back as a player would, but only to the origin (scheme, host and port)
that set them: the session itself keeps none (``canarywatch.httpclient``).

With ``low_latency`` (the ``llhls`` path) a Low-Latency playlist (RFC 8216bis) is
watched part by part, as an LL-HLS player does: the newest new independent part (one
that starts with a keyframe, ``EXT-X-PART ... INDEPENDENT=YES``; a reader that fell
behind jumps to the live edge) is fetched and decoded, and
the playlist is reloaded with ``_HLS_msn``/``_HLS_part`` for the next part when the
server says it holds such reloads (``EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES``), every
half part otherwise, so frames are seen within a part or two of being written rather
than a segment or three. A playlist without parts is watched by segments (and its
frames' age shows it). ``EXT-X-PRELOAD-HINT`` is parsed; the reader does not fetch the
part being written ahead (it waits for the reload that lists it).

Other transports (the authorization probe, a hub-protocol viewer that was handed an
HLS URL) reuse it: construct it with a ``RenderedRequest`` for the playlist and iterate
``frames()``, or call ``first_frames()`` for one look.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator, AsyncIterator, Mapping
from http.cookies import CookieError, SimpleCookie
from typing import Unpack
from urllib.parse import urlsplit

import aiohttp

from canarywatch.viewer.http import RenderedRequest
from canarywatch.viewer.network import ShapedResponse
from canarywatch.viewer.transports.base import (
    NETWORK_ERRORS,
    FrameKind,
    ReceivedFrame,
    Transport,
    TransportOptions,
    check_interval,
    same_origin,
)
from canarywatch.viewer.transports.playlists import (
    MasterPlaylist,
    MediaPlaylist,
    Part,
    PlaylistError,
    Variant,
    blocking_reload_url,
    choose_variant,
    new_parts,
    new_segments,
    next_part,
    parse_playlist,
)
from canarywatch.viewer.transports.video import DEFAULT_SAMPLING, Sampling, UndecodableVideo, decode_video

__all__ = ["HlsReader"]

# How many of a live playlist's last segments a player starts with.
_LIVE_EDGE = 1
# Init sections kept per stream (one per variant; a few in case of rotation).
_MAX_INIT_SECTIONS = 4
# The shortest wait between reloads of a Low-Latency playlist that gave nothing new.
_MIN_PART_RELOAD_S = 0.1


class HlsReader(Transport):
    """Watches one HLS stream (master or media playlist URL); yields sampled frames
    (kind ``hls``; meta ``segment``, ``variant_bandwidth``, ``pts``).

    Answers other than 200 to a playlist are yielded as empty frames (with the status);
    a body that is not a playlist, or a segment FFmpeg cannot decode, as an empty 200
    frame with ``meta["problem"] == "undecodable_video"`` and ``meta["undecodable"]``
    saying why. ``variant`` picks a rendition of a
    master playlist: ``auto`` (by the hub's measured link), ``lowest`` or ``highest``.
    """

    kind = FrameKind.HLS

    def __init__(
        self,
        session: aiohttp.ClientSession,
        request: RenderedRequest,
        *,
        sampling: Sampling = DEFAULT_SAMPLING,
        variant: str = "auto",
        min_reload_s: float = 0.5,
        low_latency: bool = False,
        **options: Unpack[TransportOptions],
    ) -> None:
        super().__init__(session, **options)
        if variant not in ("auto", "lowest", "highest"):
            raise ValueError(f"variant must be auto, lowest or highest, got {variant!r}")
        check_interval(min_reload_s, name="min_reload_s")
        self.request = request
        self.sampling = sampling
        self.variant = variant
        self.min_reload_s = min_reload_s
        self.low_latency = low_latency
        #: Low-Latency parts fetched so far.
        self.parts = 0
        #: the variant watched last (None for a media playlist URL).
        self.watching: Variant | None = None
        #: segments decoded so far, and those FFmpeg could not decode.
        self.segments = 0
        self.undecodable = 0
        self._init_sections: dict[str, bytes] = {}
        #: origin -> cookie name -> value, as answers set them.
        self._cookies: dict[str, dict[str, str]] = {}

    async def frames(self) -> AsyncIterator[ReceivedFrame]:
        failures = 0
        while True:
            progressed = False
            try:
                async for frame in self._watch():
                    progressed = progressed or frame.status == 200
                    yield frame
            except NETWORK_ERRORS as error:
                self._record_error(error, self.request.source)
            failures = 0 if progressed else failures + 1
            await self._back_off(max(1, failures), self.min_reload_s)

    async def first_frames(
        self, *, max_segments: int = 2, within_s: float | None = None
    ) -> list[ReceivedFrame]:
        """One look: the frames of up to ``max_segments`` segments at the live edge (or
        the answer that stopped it), gathered for at most ``within_s`` seconds (default
        three request timeouts: a live playlist that never gets a segment must not hold
        its caller). Network errors propagate."""
        frames: list[ReceivedFrame] = []
        watch = self._watch(max_segments=max_segments)
        try:
            async with asyncio.timeout(within_s if within_s is not None else 3 * self.timeout_s):
                async for frame in watch:
                    frames.append(frame)
        except TimeoutError:
            pass  # what was seen so far is the look
        finally:
            await watch.aclose()
        return frames

    # -- one session: playlist → variant → segments, until something goes wrong ------------

    async def _watch(self, *, max_segments: int | None = None) -> AsyncGenerator[ReceivedFrame, None]:
        request = self.request
        response = await self._get(request.url)
        if response.status != 200 or response.truncated:
            yield self._answer(self.kind, response, source=request.source, success=False)
            return
        playlist, problem = self._parse(response, request.url)
        if problem is not None:
            yield problem
            return
        media_url = response.url or request.url
        if isinstance(playlist, MasterPlaylist):
            self.watching = self._pick(playlist)
            media_url = self.watching.url
            response = await self._get(media_url)
            if response.status != 200 or response.truncated:
                yield self._answer(self.kind, response, source=_path(media_url), success=False)
                return
            playlist, problem = self._parse(response, media_url)
            if problem is not None:
                yield problem
                return
            if isinstance(playlist, MasterPlaylist):
                yield self._undecodable(media_url, "a variant is itself a master playlist")
                return
        assert isinstance(playlist, MediaPlaylist)
        if self.low_latency and playlist.parts:
            async for frame in self._watch_parts(playlist, media_url, max_parts=max_segments):
                yield frame
            return
        after: int | None = None
        fetched = 0
        while True:
            fresh = new_segments(playlist, after, live_edge=_LIVE_EDGE)
            for segment in fresh:
                async for frame in self._media_frames(
                    segment.url, segment.init_url, {"segment": str(segment.sequence)}
                ):
                    yield frame
                after = segment.sequence
                fetched += 1
                if max_segments is not None and fetched >= max_segments:
                    return
            if playlist.ended and not fresh and max_segments is not None:
                return
            # RFC 8216 6.3.4: reload after the target duration, half of it when unchanged.
            wait = playlist.target_duration if fresh else playlist.target_duration / 2
            await self._sleep(max(self.min_reload_s, wait))
            reloaded = await self._reload(media_url, media_url)
            if isinstance(reloaded, ReceivedFrame):
                yield reloaded
                return
            playlist = reloaded

    async def _watch_parts(
        self, playlist: MediaPlaylist, media_url: str, *, max_parts: int | None = None
    ) -> AsyncGenerator[ReceivedFrame, None]:
        """A Low-Latency playlist, part by part, until something goes wrong."""
        last: Part | None = None
        fetched = 0
        while True:
            fresh = new_parts(playlist, None if last is None else last.key)
            last = fresh[-1] if fresh else last
            for part in _worth_fetching(fresh, keyframes_only=self.sampling.keyframes_only):
                meta = {"segment": str(part.sequence), "part": str(part.index)}
                self.parts += 1
                async for frame in self._media_frames(part.url, part.init_url, meta):
                    yield frame
                fetched += 1
                if max_parts is not None and fetched >= max_parts:
                    return
            if playlist.ended and not fresh and max_parts is not None:
                return
            reload_url = media_url
            part_target = playlist.part_target or playlist.target_duration
            if playlist.can_block_reload and last is not None:
                # The server holds this reload until the next part exists.
                reload_url = blocking_reload_url(media_url, next_part(last))
                if not fresh:  # it answered without a new part: do not spin
                    await self._sleep(max(_MIN_PART_RELOAD_S, part_target / 2))
            else:
                await self._sleep(max(_MIN_PART_RELOAD_S, part_target if fresh else part_target / 2))
            reloaded = await self._reload(reload_url, media_url)
            if isinstance(reloaded, ReceivedFrame):
                yield reloaded
                return
            playlist = reloaded

    async def _reload(self, url: str, media_url: str) -> MediaPlaylist | ReceivedFrame:
        """The media playlist again, or the frame that says why not."""
        response = await self._get(url)
        if response.status != 200 or response.truncated:
            return self._answer(self.kind, response, source=_path(media_url), success=False)
        reloaded, problem = self._parse(response, media_url)
        if problem is not None or not isinstance(reloaded, MediaPlaylist):
            return problem or self._undecodable(media_url, "media playlist became a master playlist")
        return reloaded

    async def _media_frames(
        self, url: str, init_url: str | None, meta: dict[str, str]
    ) -> AsyncIterator[ReceivedFrame]:
        """The sampled frames of one segment or part (its init section prepended)."""
        source = _path(url)
        prefix = b""
        if init_url is not None:
            init = await self._init_section(init_url)
            if isinstance(init, ShapedResponse):
                yield self._answer(self.kind, init, source=_path(init_url), success=False)
                return
            prefix = init
        response = await self._get(url)
        if response.status != 200 or response.truncated:
            yield self._answer(self.kind, response, source=source, success=False)
            return
        received_at = self._wall_clock()
        try:
            decoded = await asyncio.to_thread(decode_video, prefix + response.body, sampling=self.sampling)
        except UndecodableVideo as error:
            self.undecodable += 1
            yield self._undecodable(url, str(error))
            return
        self.segments += 1
        if self.watching is not None:
            meta["variant_bandwidth"] = str(self.watching.bandwidth)
        for frame in decoded:
            yield ReceivedFrame(
                body=frame.image,
                received_at=received_at,
                kind=self.kind,
                source=source,
                status=200,
                meta={**meta, "pts": "" if frame.pts_s is None else f"{frame.pts_s:.3f}"},
            )

    async def _init_section(self, url: str) -> bytes | ShapedResponse:
        cached = self._init_sections.get(url)
        if cached is not None:
            return cached
        response = await self._get(url)
        if response.status != 200 or response.truncated:
            return response
        if len(self._init_sections) >= _MAX_INIT_SECTIONS:
            self._init_sections.clear()
        self._init_sections[url] = response.body
        return response.body

    # -- helpers ------------------------------------------------------------------------------

    def _pick(self, master: MasterPlaylist) -> Variant:
        if self.variant == "lowest":
            return min(master.variants, key=lambda v: v.bandwidth)
        if self.variant == "highest":
            return max(master.variants, key=lambda v: v.bandwidth)
        measured = self.shaper.estimate.downlink_bps
        return choose_variant(master.variants, downlink_bps=measured or self.shaper.profile.bandwidth_bps)

    async def _get(self, url: str) -> ShapedResponse:
        response = await self._fetch("GET", url, headers=self._headers_for(url))
        self._keep_cookies(response.url or url, response)
        return response

    def _headers_for(self, url: str) -> Mapping[str, str]:
        # The viewer's credentials go to the integration's origin only, never to a CDN
        # or another host a playlist names.
        headers = dict(self.request.headers) if same_origin(url, self.request.url) else {}
        cookies = self._cookies.get(_origin(url))
        if cookies and not any(name.lower() == "cookie" for name in headers):
            headers["Cookie"] = "; ".join(f"{name}={value}" for name, value in cookies.items())
        return headers

    def _keep_cookies(self, url: str, response: ShapedResponse) -> None:
        getall = getattr(response.headers, "getall", None)
        if getall is None:
            return
        jar = SimpleCookie()
        for header in getall("Set-Cookie", []):
            with contextlib.suppress(CookieError):
                jar.load(header)
        if jar:
            kept = self._cookies.setdefault(_origin(url), {})
            kept.update({name: morsel.value for name, morsel in jar.items()})

    def _parse(
        self, response: ShapedResponse, url: str
    ) -> tuple[MasterPlaylist | MediaPlaylist | None, ReceivedFrame | None]:
        try:
            return parse_playlist(response.body, response.url or url), None
        except PlaylistError as error:
            return None, self._undecodable(url, str(error))

    def _undecodable(self, url: str, reason: str) -> ReceivedFrame:
        return ReceivedFrame(
            body=b"",
            received_at=self._wall_clock(),
            kind=self.kind,
            source=_path(url),
            status=200,
            meta={"problem": "undecodable_video", "undecodable": reason[:200]},
        )


def _worth_fetching(fresh: list[Part], *, keyframes_only: bool) -> list[Part]:
    """The new parts a keyframe sampler fetches: the newest independent one only (a part
    without a keyframe has nothing it judges, and a viewer that fell behind jumps to the
    live edge as a player does, so its cost stays bounded); every part otherwise."""
    if not keyframes_only:
        return fresh
    return [part for part in fresh if part.independent][-1:]


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.hostname}:{parts.port or {'http': 80, 'https': 443}.get(parts.scheme)}"


def _path(url: str) -> str:
    # Segment and playlist URLs carry tokens in their queries; evidence shows the path.
    return urlsplit(url).path or "/"
