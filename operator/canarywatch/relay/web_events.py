"""Event endpoints: the per-tenant event feed and its thumbnails."""

from __future__ import annotations

from aiohttp import web

from canarywatch.relay.web_gates import RELAY_KEY, ApiError, admit_tenant, int_query

__all__ = ["list_events", "thumbnail"]

_FEED_DEFAULT_LIMIT = 100
_FEED_MAX_LIMIT = 1000


async def list_events(request: web.Request) -> web.Response:
    """``GET /v3/events?since=<id>&limit=<n>``: the token's tenant's events, oldest first."""
    relay = request.app[RELAY_KEY]
    tenant = admit_tenant(request, url_tenant=None)
    since = int_query(request, "since", default=0, low=0)
    limit = int_query(request, "limit", default=_FEED_DEFAULT_LIMIT, low=1, high=_FEED_MAX_LIMIT)
    items = relay.feed(tenant, since=since, limit=limit)
    return web.json_response(
        [
            {
                "id": item.event_id,
                "camera": item.camera,
                "time": item.time,
                "thumbnail": f"/v3/events/{item.event_id}/thumbnail.jpg",
            }
            for item in items
        ],
        headers={"Cache-Control": "no-store"},
    )


async def thumbnail(request: web.Request) -> web.Response:
    """``GET /v3/events/{id}/thumbnail.jpg``: the event's downscaled frame."""
    relay = request.app[RELAY_KEY]
    tenant = admit_tenant(request, url_tenant=None)
    event_id = int(request.match_info["event_id"])
    jpeg = relay.thumbnail(tenant, event_id)
    if jpeg is None:
        # 404 rather than 403 for other tenants' events: existence is not disclosed.
        raise ApiError(404, "no_thumbnail", f"no thumbnail for event {event_id}")
    return web.Response(body=jpeg, content_type="image/jpeg", headers={"Cache-Control": "no-store"})
