"""Video and hub endpoints: each camera's HLS ladder, and the smart-home fulfillment.

The ladder is served twice, as camera clouds do: under the device path to a tenant's
bearer token (``…/hls/master.m3u8``), and under a stream URL issued to a hub by
``GetCameraStream`` (``/v3/streams/<token>/master.m3u8``), where the unguessable token
is the credential. Playlists use relative URIs, so one set of handlers serves both.
Each is also served as Low-Latency HLS (``ll.m3u8``, ``<rung>/ll.m3u8``, parts
``<rung>/p<i>.ts``), with blocking reloads: ``_HLS_msn``/``_HLS_part`` hold the answer
until that part is listed (at most three target durations, RFC 8216bis 6.2.5.2).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import math

from aiohttp import web

from canarywatch.relay.alexa import AlexaError, directive_token, handle_directive
from canarywatch.relay.auth import Access, Decision
from canarywatch.relay.imaging import TranscodeError
from canarywatch.relay.ladder import low_latency_playlist, master_playlist, media_playlist, rung_named
from canarywatch.relay.smarthome import FulfillmentError, fulfill
from canarywatch.relay.web_devices import DEVICE_PATH
from canarywatch.relay.web_gates import RELAY_KEY, ApiError, admit_available, admit_tenant, deny

__all__ = ["STREAM_PATH", "alexa_directive", "device_video", "fulfillment", "stream_video", "video_routes"]

#: A stream URL issued to a hub: the token stands for one tenant's camera.
STREAM_PATH = "/v3/streams/{token:[A-Za-z0-9_-]{16,64}}"
_PLAYLIST = "application/vnd.apple.mpegurl"
_SEGMENT = "video/mp2t"
_NO_STORE = {"Cache-Control": "no-store"}
# How often a held blocking reload looks whether its part is listed.
_HOLD_POLL_S = 0.05


def video_routes() -> list[web.RouteDef]:
    routes = []
    for prefix, handler in ((f"{DEVICE_PATH}/hls", device_video), (STREAM_PATH, stream_video)):
        routes += [
            web.get(f"{prefix}/master.m3u8", handler, allow_head=False),
            web.get(f"{prefix}/{{rung:[a-z]{{1,16}}}}/index.m3u8", handler, allow_head=False),
            web.get(f"{prefix}/{{rung:[a-z]{{1,16}}}}/{{window:\\d{{1,12}}}}.ts", handler, allow_head=False),
            web.get(f"{prefix}/ll.m3u8", handler, allow_head=False),
            web.get(f"{prefix}/{{rung:[a-z]{{1,16}}}}/ll.m3u8", handler, allow_head=False),
            web.get(f"{prefix}/{{rung:[a-z]{{1,16}}}}/p{{part:\\d{{1,14}}}}.ts", handler, allow_head=False),
        ]
    routes.append(web.post("/v3/smarthome/fulfillment", fulfillment))
    routes.append(web.post("/v3/alexa/directive", alexa_directive))
    return routes


async def device_video(request: web.Request) -> web.Response:
    """The ladder of ``…/devices/{tenant}/{camera}/hls/``, to the camera's owner."""
    tenant, camera = request.match_info["tenant"], request.match_info["camera"]
    admit_tenant(request, url_tenant=tenant)
    return await _video(request, tenant, camera)


async def stream_video(request: web.Request) -> web.Response:
    """The ladder of a stream URL a hub was given; expired and unknown tokens are 404."""
    relay = request.app[RELAY_KEY]
    grant = relay.stream_grant(request.match_info["token"])
    if grant is None:
        raise ApiError(404, "no_stream", "unknown or expired stream URL; ask GetCameraStream again")
    admit_available(relay)
    return await _video(request, grant.tenant, grant.camera)


async def _video(request: web.Request, tenant: str, camera: str) -> web.Response:
    relay = request.app[RELAY_KEY]
    windows = relay.video_windows(tenant, camera)
    if windows is None:
        raise ApiError(404, "no_frame", f"camera {camera} has not sent a frame yet")
    low_latency = request.path.endswith("/ll.m3u8")
    rung_name = request.match_info.get("rung")
    if rung_name is None:
        body = master_playlist(media="ll.m3u8" if low_latency else "index.m3u8")
        return web.Response(text=body, content_type=_PLAYLIST, headers=_NO_STORE)
    rung = rung_named(rung_name)
    if rung is None:
        raise ApiError(404, "no_rendition", f"no rendition {rung_name!r}")
    if low_latency:
        return await _low_latency_playlist(request, tenant, camera)
    part = request.match_info.get("part")
    if part is not None:
        try:
            media = await relay.video_part(tenant, camera, rung, int(part))
        except TranscodeError as error:
            raise ApiError(502, "transcode_failed", str(error)) from error
        if media is None:
            raise ApiError(404, "no_segment", f"part {part} is not in the playlist")
        return web.Response(body=media, content_type=_SEGMENT, headers=_NO_STORE)
    window = request.match_info.get("window")
    if window is None:
        body = media_playlist(windows, segment_seconds=relay.config.hls_segment_seconds)
        return web.Response(text=body, content_type=_PLAYLIST, headers=_NO_STORE)
    try:
        segment = await relay.video_segment(tenant, camera, rung, int(window))
    except TranscodeError as error:
        raise ApiError(502, "transcode_failed", str(error)) from error
    if segment is None:
        raise ApiError(404, "no_segment", f"segment {window} is not in the playlist")
    return web.Response(body=segment, content_type=_SEGMENT, headers=_NO_STORE)


async def _low_latency_playlist(request: web.Request, tenant: str, camera: str) -> web.Response:
    relay = request.app[RELAY_KEY]
    config = relay.config
    wanted = _blocking_part(request, config.hls_parts_per_segment)
    # A blocking reload is held until its part is listed, for three target durations at most.
    deadline = asyncio.get_running_loop().time() + 3 * math.ceil(config.hls_segment_seconds)
    windows = relay.video_parts(tenant, camera)
    if wanted is not None and windows is not None and wanted > windows.parts.stop + 2 * windows.per_segment:
        raise ApiError(400, "bad_request", "_HLS_msn is more than two segments ahead of the playlist")
    while (
        wanted is not None
        and windows is not None
        and wanted >= windows.parts.stop
        and asyncio.get_running_loop().time() < deadline
    ):
        await asyncio.sleep(_HOLD_POLL_S)
        windows = relay.video_parts(tenant, camera)
    if windows is None:
        raise ApiError(404, "no_frame", f"camera {camera} has not sent a frame yet")
    body = low_latency_playlist(windows, segment_seconds=config.hls_segment_seconds)
    return web.Response(text=body, content_type=_PLAYLIST, headers=_NO_STORE)


def _blocking_part(request: web.Request, per_segment: int) -> int | None:
    """The global part number a blocking reload waits for, or None (a plain reload)."""
    msn, part = request.query.get("_HLS_msn"), request.query.get("_HLS_part", "0")
    if msn is None:
        return None
    if not (msn.isdigit() and part.isdigit() and len(msn) <= 12 and len(part) <= 3):
        raise ApiError(400, "bad_request", "_HLS_msn and _HLS_part must be small non-negative integers")
    return int(msn) * per_segment + int(part)


async def fulfillment(request: web.Request) -> web.Response:
    """``POST /v3/smarthome/fulfillment``: the Google smart-home intents of the bearer
    token's tenant (the token is the OAuth access token the account link issued)."""
    relay = request.app[RELAY_KEY]
    tenant = admit_tenant(request, url_tenant=None)
    relay.state.counters.hub_requests += 1
    try:
        body = await request.json()
    except ValueError as error:
        raise ApiError(400, "bad_request", f"body is not JSON: {error}") from error

    def stream_url(camera: str) -> str:
        token = relay.grant_stream(tenant, camera)
        return str(request.url.with_path(f"/v3/streams/{token}/master.m3u8").with_query(None))

    try:
        answer = fulfill(body, tenant=tenant, cameras=relay.frames.cameras_of(tenant), stream_url=stream_url)
    except FulfillmentError as error:
        raise ApiError(400, "bad_request", str(error)) from error
    return web.json_response(answer, headers=_NO_STORE)


async def alexa_directive(request: web.Request) -> web.Response:
    """``POST /v3/alexa/directive``: Alexa ``Discover`` and ``InitializeCameraStreams``
    for the tenant whose OAuth token the directive's ``scope`` carries (as Alexa sends
    it, in the body). The stream URIs point at the relay's RTSP server."""
    relay = request.app[RELAY_KEY]
    try:
        body = await request.json()
    except ValueError as error:
        raise ApiError(400, "bad_request", f"body is not JSON: {error}") from error
    token = directive_token(body)
    tenant = relay.tokens.tenant_of(token)
    if tenant is None:
        deny(relay, Access(Decision.UNAUTHENTICATED))
    admit_available(relay)
    relay.state.counters.hub_requests += 1
    rtsp_url = relay.rtsp_url
    if rtsp_url is None:
        raise ApiError(501, "no_rtsp", "this relay runs no RTSP server (rtsp_port)")
    expires = dt.datetime.fromtimestamp(relay.clock() + relay.config.stream_url_seconds, dt.UTC)

    def stream_uri(camera: str, rung: str) -> str:
        return f"{rtsp_url}/streams/{relay.grant_stream(tenant, camera)}/{rung}"

    try:
        answer = handle_directive(
            body,
            cameras=relay.frames.cameras_of(tenant),
            stream_uri=stream_uri,
            expires_at=expires.strftime("%Y-%m-%dT%H:%M:%S.00Z"),
        )
    except AlexaError as error:
        raise ApiError(400, "bad_request", str(error)) from error
    return web.json_response(answer, headers=_NO_STORE)
