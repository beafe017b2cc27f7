"""``AuthzProber``: ask for *other* tenants' resources with the viewer's own credentials;
the only right answers are 401/403/404.

A resource served anyway is followed to a frame and judged, whatever it is: an image as
it is, an HLS playlist through its segments, a piece of video decoded, a live stream (a
progressive MP4 that never ends: no ``Content-Length``) to its first frame without
waiting for an end that never comes, a WHEP endpoint (a probe request whose
``Content-Type`` is ``application/sdp``) through a WebRTC session to its first frame,
an RTSP stream (``rtsp://`` probe URLs: FFmpeg's DESCRIBE, SETUP and PLAY with the
viewer's own credentials) to its first frame. When nothing in it can be decoded, access
was still granted: that is reported as its own outcome (``access_granted``), never as a
mere ``undecodable`` frame.

RTSP credentials travel in the URL's userinfo, and a probe must present the *viewer's*
user for the *other* tenant's path: write the tenant's token as ``user:password`` and
the URL as ``rtsp://{token}@host/{tenant}/{camera}`` (the viewer endpoint can use the
same form), since ``{tenant}`` is the target's.
"""

from __future__ import annotations

import asyncio
import collections
from collections.abc import AsyncIterator, Sequence
from typing import TypeVar, Unpack
from urllib.parse import urlsplit

import aiohttp

from canarywatch.viewer.http import RenderedRequest
from canarywatch.viewer.network import ShapedResponse
from canarywatch.viewer.network.shaper import ShapedStream
from canarywatch.viewer.transports.base import (
    NETWORK_ERRORS,
    FrameKind,
    ReceivedFrame,
    Transport,
    TransportOptions,
    check_interval,
    read_some,
)
from canarywatch.viewer.transports.hls import HlsReader
from canarywatch.viewer.transports.mp4 import Mp4Reader
from canarywatch.viewer.transports.playlists import looks_like_playlist
from canarywatch.viewer.transports.rtsp import RtspReader
from canarywatch.viewer.transports.video import UndecodableVideo, decode_video, looks_like_video
from canarywatch.viewer.transports.whep import WhepReader
from canarywatch.webrtc import SDP_CONTENT_TYPE

_VideoReader = TypeVar("_VideoReader", HlsReader, Mp4Reader, WhepReader)

__all__ = ["ACCESS_GRANTED", "DENIED_STATUSES", "AuthzProber"]

#: The outcome of a probe that was served another tenant's stream it could not decode.
ACCESS_GRANTED = "access_granted"

#: The answers an authorization probe expects for another tenant's resource.
DENIED_STATUSES = frozenset({401, 403, 404})

_RTSP_SCHEMES = ("rtsp", "rtsps")


class AuthzProber(Transport):
    """Asks for other tenants' resources with the viewer's own credentials, a round
    every ``interval_s``.

    401/403/404 are the expected answers (counted in ``answers``); a success with a
    body is a resource served across tenants and is yielded (kind ``probe``, meta
    ``target_tenant``, ``target_camera``) for the caller to decode. Other statuses
    (a 503 from a disabled integration, a 500) are yielded with an empty body.
    """

    def __init__(
        self,
        session: aiohttp.ClientSession,
        requests: Sequence[RenderedRequest],
        *,
        interval_s: float,
        **options: Unpack[TransportOptions],
    ) -> None:
        super().__init__(session, **options)
        if not requests:
            raise ValueError("AuthzProber needs at least one request to probe")
        check_interval(interval_s)
        self.requests = tuple(requests)
        self.interval_s = interval_s
        #: status -> how many probes got it.
        self.answers: collections.Counter[int] = collections.Counter()

    @property
    def denied(self) -> int:
        """Probes answered as they should be: 401, 403 or 404."""
        return sum(self.answers[status] for status in DENIED_STATUSES)

    async def frames(self) -> AsyncIterator[ReceivedFrame]:
        failures = 0
        while True:
            round_failed = False
            for request in self.requests:
                if urlsplit(request.url).scheme in _RTSP_SCHEMES:
                    found = await self._probe_rtsp(request)
                    if found is None:
                        round_failed = True
                    for frame in found or []:
                        yield frame
                    continue
                target = {"target_tenant": request.tenant, "target_camera": request.camera}
                try:
                    answer = await self._ask(request, target)
                except NETWORK_ERRORS as error:
                    round_failed = True
                    self._record_error(error, request.source)
                    continue
                if isinstance(answer, list):  # a live stream, looked at while it was open
                    self.answers[200] += 1
                    for frame in answer:
                        yield frame
                    continue
                response = answer
                self.answers[response.status] += 1
                success = 200 <= response.status < 300
                if response.status in DENIED_STATUSES or (success and not response.body):
                    continue
                if success and not response.truncated:
                    try:
                        for frame in await self._followed(request, response, target):
                            yield frame
                    except NETWORK_ERRORS as error:
                        round_failed = True
                        self._record_error(error, request.source)
                    continue
                yield self._answer(
                    FrameKind.PROBE, response, source=request.source, success=success, extra=target
                )
            if round_failed:
                failures += 1
                await self._back_off(failures, self.interval_s)
            else:
                failures = 0
                await self._sleep(self.interval_s)

    async def _ask(
        self, request: RenderedRequest, target: dict[str, str]
    ) -> ShapedResponse | list[ReceivedFrame]:
        """The complete answer to one probe; for a live video stream (a 200 without a
        ``Content-Length`` that starts as video) or a WHEP endpoint, the probe frames of
        a look at it."""
        if _is_whep(request):
            return await self._whep(request, target)
        if request.method != "GET" or request.body is not None:
            return await self._fetch(request.method, request.url, headers=request.headers, body=request.body)
        async with self.shaper.stream(
            self._session, "GET", request.url, headers=request.headers, timeout=self.timeout_s
        ) as stream:
            announced = stream.headers.get("Content-Length", "")
            if announced.isdigit() and int(announced) > self.max_body_bytes:
                return ShapedResponse(stream.status, stream.headers, b"", 0.0, truncated=True, url=stream.url)
            deadline = asyncio.get_running_loop().time() + self.timeout_s  # the whole answer's
            async with asyncio.timeout_at(deadline):
                first = await read_some(stream, 1)
            if stream.status == 200 and not announced and looks_like_video(first, ""):
                return await self._live(request, stream, first, target)
            async with asyncio.timeout_at(deadline):
                body = first + await read_some(stream, self.max_body_bytes + 1 - len(first))
            truncated = len(body) > self.max_body_bytes
            return ShapedResponse(
                stream.status,
                stream.headers,
                b"" if truncated else body,
                0.0,
                truncated=truncated,
                url=stream.url,
            )

    async def _live(
        self, request: RenderedRequest, stream: ShapedStream, first: bytes, target: dict[str, str]
    ) -> list[ReceivedFrame]:
        reader = self._reader(Mp4Reader, request)
        try:
            seen = await reader.first_frames(stream, first)
        except NETWORK_ERRORS as error:  # it was served, then stalled: still a grant
            return [self._granted(request, {**target, "undecodable": type(error).__name__})]
        return self._shown(request, seen, target, nothing="stream ended", own_source=False)

    async def _whep(
        self, request: RenderedRequest, target: dict[str, str]
    ) -> ShapedResponse | list[ReceivedFrame]:
        """Offer a WebRTC session for another tenant's camera: a refusal is an answer
        like any other (its status counted); an accepted offer is looked at to its
        first frame, and is ``access_granted`` when none comes."""
        reader = self._reader(WhepReader, request)
        seen = await reader.first_frames(max_frames=1)
        status = reader.answer_status
        if status is None:
            raise ConnectionError(reader.last_error or "the WHEP offer got no answer")
        if status not in (200, 201):
            return ShapedResponse(status, {}, b"", 0.0)
        return self._shown(request, seen, target, nothing="no frame", own_source=False)

    async def _followed(
        self, request: RenderedRequest, response: ShapedResponse, target: dict[str, str]
    ) -> list[ReceivedFrame]:
        """What a granted answer shows, as probe frames: the image itself, or the frames
        of the playlist or video it is; ``access_granted`` when none can be decoded."""
        content_type = response.headers.get("Content-Type", "")
        if looks_like_playlist(response.body, content_type):
            followed = RenderedRequest(
                "GET",
                response.url or request.url,
                request.headers,
                source=request.source,
                tenant=request.tenant,
                camera=request.camera,
            )
            reader = self._reader(HlsReader, followed)
            seen = await reader.first_frames(max_segments=1)
            served = [f for f in seen if f.status == 200 or not f.body]
            return self._shown(request, served, target, nothing="no segment", own_source=True)
        if looks_like_video(response.body, content_type):
            received_at = self._wall_clock()
            try:
                decoded = await asyncio.to_thread(decode_video, response.body)
            except UndecodableVideo as error:
                return [self._granted(request, {**target, "undecodable": str(error)})]
            return [
                ReceivedFrame(f.image, received_at, FrameKind.PROBE, request.source, 200, dict(target))
                for f in decoded
            ]
        return [self._answer(FrameKind.PROBE, response, source=request.source, success=True, extra=target)]

    async def _probe_rtsp(self, request: RenderedRequest) -> list[ReceivedFrame] | None:
        """What an RTSP server shows the viewer of another tenant's path: nothing when
        refused (401/403/404), its first frame when it plays, ``access_granted`` when it
        plays something that cannot be decoded; None when the server could not be reached."""
        reader = RtspReader(
            self._session,
            request,
            shaper=self.shaper,
            timeout_s=self.timeout_s,
            sleep=self._sleep,
            wall_clock=self._wall_clock,
        )
        seen = await reader.first_frames()
        if not seen:
            self.errors += reader.errors
            self.last_error = reader.last_error
            return None
        first = seen[0]
        self.answers[first.status] += 1
        target = {"target_tenant": request.tenant, "target_camera": request.camera}
        if first.status in DENIED_STATUSES:
            return []
        if first.status != 200:
            return [
                ReceivedFrame(b"", first.received_at, FrameKind.PROBE, request.source, first.status, target)
            ]
        if first.meta.get("problem"):
            return [self._granted(request, {**target, "undecodable": first.meta.get("undecodable", "")})]
        return [
            ReceivedFrame(f.body, f.received_at, FrameKind.PROBE, f.source, 200, {**f.meta, **target})
            for f in seen
        ]

    def _reader(self, kind: type[_VideoReader], request: RenderedRequest) -> _VideoReader:
        """A video reader for a granted answer, with this transport's session, shaper and
        limits."""
        return kind(
            self._session,
            request,
            shaper=self.shaper,
            timeout_s=self.timeout_s,
            max_body_bytes=self.max_body_bytes,
            sleep=self._sleep,
            wall_clock=self._wall_clock,
        )

    def _shown(
        self,
        request: RenderedRequest,
        seen: Sequence[ReceivedFrame],
        target: dict[str, str],
        *,
        nothing: str,
        own_source: bool,
    ) -> list[ReceivedFrame]:
        """The frames a granted stream showed, as probe frames (each judged; under the
        frame's own source, or the probe request's), or ``access_granted`` with why none
        could be decoded (the first reader's reason, else ``nothing``)."""
        frames = [
            ReceivedFrame(
                f.body,
                f.received_at,
                FrameKind.PROBE,
                f.source if own_source else request.source,
                200,
                {**f.meta, **target},
            )
            for f in seen
            if f.body
        ]
        reason = next((f.meta.get("undecodable", "") for f in seen if not f.body), "") or nothing
        return frames or [self._granted(request, {**target, "undecodable": reason})]

    def _granted(self, request: RenderedRequest, meta: dict[str, str]) -> ReceivedFrame:
        return ReceivedFrame(
            b"", self._wall_clock(), FrameKind.PROBE, request.source, 200, {"problem": ACCESS_GRANTED, **meta}
        )


def _is_whep(request: RenderedRequest) -> bool:
    return any(
        name.lower() == "content-type" and value.split(";", 1)[0].strip().lower() == SDP_CONTENT_TYPE
        for name, value in request.headers.items()
    )
