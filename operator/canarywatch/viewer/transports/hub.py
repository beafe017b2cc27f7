"""``HubViewer``: watch a camera the way a smart display does, through the vendor's
smart-home fulfillment (Google) or camera skill endpoint (Alexa).

With the tenant's OAuth bearer token it sends ``action.devices.SYNC`` to the
fulfillment URL, finds its camera's device (CameraStream trait), asks
``action.devices.EXECUTE`` / ``GetCameraStream`` for the stream, and watches the URL it
is handed with the video transport of that protocol (HLS: ``HlsReader``, which picks
the variant the hub's measured link can carry, as a display's player does). With
``protocol="alexa"`` it sends ``Alexa.Discovery``/``Discover`` and
``InitializeCameraStreams`` (the token in the directive's scope, the resolution its
link carries) and watches the RTSP URI it is handed (``RtspReader``). When the
stream stops answering (an expired URL, a refusal) it asks the fulfillment again,
with backoff, as a display does when a stream fails.

Frames keep what the stream reader found (``segment``, ``variant_bandwidth``) and
carry ``device`` and ``stream_protocol`` in ``meta``; their ``source`` is the
fulfillment's path and the device, never the stream URL (a capability: it is the
credential).
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any, Unpack

import aiohttp

from canarywatch.viewer.alexa import discover_directive, initialize_directive, read_discover, read_stream_uri
from canarywatch.viewer.http import RenderedRequest
from canarywatch.viewer.smarthome import (
    HubProtocolError,
    StreamOffer,
    get_camera_stream_request,
    read_stream_offer,
    read_sync,
    sync_request,
)
from canarywatch.viewer.transports.base import (
    MAX_ERROR_BODY,
    NETWORK_ERRORS,
    FrameKind,
    ReceivedFrame,
    Transport,
    TransportOptions,
    check_interval,
)
from canarywatch.viewer.transports.hls import HlsReader
from canarywatch.viewer.transports.mp4 import Mp4Reader
from canarywatch.viewer.transports.rtsp import RtspReader

__all__ = ["HUB_ERROR", "STREAM_READERS", "HubViewer"]

#: ``meta["outcome"]`` of a frame that stands for a fulfillment that did not hand out a
#: stream (no such device, a refused command, an answer outside the protocol).
HUB_ERROR = "hub_error"

StreamReader = Callable[..., Transport]

#: ``cameraStreamProtocol`` -> the transport that watches it; the hub asks only for these.
STREAM_READERS: Mapping[str, StreamReader] = {
    "hls": HlsReader,
    "rtsp": RtspReader,
    "progressive_mp4": Mp4Reader,
}
#: Below this measured downlink an Alexa display asks for the lowest resolution offered.
_LOW_RESOLUTION_BPS = 1_000_000


class _NotServed(Exception):
    def __init__(self, frame: ReceivedFrame) -> None:
        super().__init__(frame.status)
        self.frame = frame


class HubViewer(Transport):
    """One camera (``device``, the fulfillment's device id) watched through a hub protocol."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        request: RenderedRequest,
        *,
        device: str,
        protocol: str = "google",
        retry_s: float = 2.0,
        **options: Unpack[TransportOptions],
    ) -> None:
        super().__init__(session, **options)
        check_interval(retry_s, name="retry_s")
        if protocol not in ("google", "alexa"):
            raise ValueError(f"protocol must be google or alexa, got {protocol!r}")
        self.request = request
        self.device = device
        self.hub_protocol = protocol
        self.retry_s = retry_s
        # what the stream reader shares with this viewer (its shaper is this hub's link)
        self._options: TransportOptions = {k: v for k, v in options.items() if k != "shaper"}  # type: ignore[assignment]
        #: streams handed out so far (each ``GetCameraStream`` that succeeded).
        self.offers = 0
        #: the protocol of the stream watched last.
        self.protocol: str | None = None
        self._source = f"{request.source}#device={device}"

    async def frames(self) -> AsyncIterator[ReceivedFrame]:
        failures = 0
        while True:
            watched = False
            try:
                offer = await self._offer()
            except NETWORK_ERRORS as error:
                self._record_error(error, self.request.source)
            except _NotServed as refused:
                yield refused.frame
            except HubProtocolError as error:
                yield self._hub_error(str(error))
            else:
                async for frame in self._watch(offer):
                    watched = watched or frame.status == 200
                    yield frame
            failures = 0 if watched else failures + 1
            await self._back_off(max(1, failures), self.retry_s)

    async def _watch(self, offer: StreamOffer) -> AsyncIterator[ReceivedFrame]:
        """The stream's frames until it answers anything but 200 (that answer included)."""
        headers = {"Authorization": f"Bearer {offer.auth_token}"} if offer.auth_token else {}
        stream = STREAM_READERS[offer.protocol](
            self._session,
            RenderedRequest("GET", offer.url, headers, source=self._source),
            shaper=self.shaper,
            **self._options,
        )
        frames = stream.frames()
        try:
            async for frame in frames:
                yield dataclasses.replace(
                    frame,
                    kind=FrameKind.HUB,
                    source=self._source,
                    meta={**frame.meta, "device": self.device, "stream_protocol": offer.protocol},
                )
                if frame.status != 200:
                    return  # an expired or refused stream: ask the fulfillment again
        finally:
            close = getattr(frames, "aclose", None)  # an async generator's: close its response
            if close is not None:
                await close()

    async def _offer(self) -> StreamOffer:
        if self.hub_protocol == "alexa":
            return await self._alexa_offer()
        devices = read_sync(await self._fulfill(sync_request()))
        device = next((d for d in devices if d.id == self.device), None)
        if device is None:
            listed = ", ".join(d.id for d in devices[:8]) or "none"
            raise HubProtocolError(f"SYNC lists no camera {self.device!r} (cameras: {listed})")
        wanted = [p for p in STREAM_READERS if not device.protocols or p in device.protocols]
        if not wanted:
            raise HubProtocolError(f"camera {self.device!r} streams only {', '.join(device.protocols)}")
        offer = read_stream_offer(
            await self._fulfill(get_camera_stream_request(self.device, wanted)), self.device
        )
        if offer.protocol not in STREAM_READERS:
            raise HubProtocolError(
                f"GetCameraStream answered protocol {offer.protocol!r}, asked for {wanted}"
            )
        self.offers += 1
        self.protocol = offer.protocol
        return offer

    async def _alexa_offer(self) -> StreamOffer:
        """Discover, then InitializeCameraStreams at the resolution the link carries."""
        token = bearer_token(self.request.headers)
        if token is None:
            raise HubProtocolError("alexa needs the tenant's token: headers Authorization: Bearer {token}")
        cameras = read_discover(await self._fulfill(discover_directive(token)))
        camera = next((c for c in cameras if c.endpoint_id == self.device), None)
        if camera is None:
            listed = ", ".join(c.endpoint_id for c in cameras[:8]) or "none"
            raise HubProtocolError(f"Discover lists no camera {self.device!r} (cameras: {listed})")
        sizes = sorted(camera.resolutions or ((1280, 720),))
        downlink = self.shaper.estimate.downlink_bps or self.shaper.profile.bandwidth_bps
        resolution = sizes[0] if downlink is not None and downlink < _LOW_RESOLUTION_BPS else sizes[-1]
        offer = read_stream_uri(await self._fulfill(initialize_directive(token, self.device, resolution)))
        self.offers += 1
        self.protocol = offer.protocol
        return offer

    async def _fulfill(self, document: Mapping[str, Any]) -> object:
        request = self.request
        response = await self._fetch(
            request.method,
            request.url,
            headers={**request.headers, "Content-Type": "application/json"},
            body=json.dumps(document).encode(),
        )
        if response.status != 200 or response.truncated:
            frame = self._frame(
                FrameKind.HUB,
                source=self._source,
                status=response.status,
                body=response.body[:MAX_ERROR_BODY],
                headers=response.headers,
                success=False,
                extra={"device": self.device},
            )
            raise _NotServed(frame)
        try:
            return json.loads(response.body)
        except ValueError as error:
            raise HubProtocolError(
                f"fulfillment answered {len(response.body)} bytes that are not JSON"
            ) from error

    def _hub_error(self, reason: str) -> ReceivedFrame:
        return ReceivedFrame(
            body=b"",
            received_at=self._wall_clock(),
            kind=FrameKind.HUB,
            source=self._source,
            status=200,
            meta={"outcome": HUB_ERROR, "device": self.device, "hub_error": reason[:200]},
        )


def bearer_token(headers: Mapping[str, str]) -> str | None:
    """The token of the request's ``Authorization: Bearer`` header (Alexa carries it in
    the directive instead)."""
    value = next((v for k, v in headers.items() if k.lower() == "authorization"), "")
    scheme, _, token = value.partition(" ")
    return token.strip() or None if scheme.lower() == "bearer" else None
