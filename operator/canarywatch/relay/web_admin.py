"""Admin endpoints (kill switch, fault switch, simulated outage, state) and health.

Admin endpoints answer during a kill or an outage: they are how both are ended.
"""

from __future__ import annotations

from aiohttp import web

from canarywatch.relay.config import Fault, RelayConfigError
from canarywatch.relay.web_gates import RELAY_KEY, ApiError, admit_admin, json_object

__all__ = ["admin_fault", "admin_kill", "admin_outage", "admin_resume", "admin_state", "healthz"]


async def admin_kill(request: web.Request) -> web.Response:
    """``POST /v3/admin/kill`` ``{"actor"?, "reason"?}``: disable; idempotent."""
    relay = request.app[RELAY_KEY]
    admit_admin(request)
    body = await json_object(request)
    changed = relay.kill(
        actor=str(body.get("actor") or "admin"),
        reason=str(body.get("reason") or "disabled through the admin API"),
    )
    return web.json_response({"changed": changed, **relay.describe()})


async def admin_resume(request: web.Request) -> web.Response:
    """``POST /v3/admin/resume``: re-enable; idempotent."""
    relay = request.app[RELAY_KEY]
    admit_admin(request)
    changed = relay.resume()
    return web.json_response({"changed": changed, **relay.describe()})


async def admin_state(request: web.Request) -> web.Response:
    relay = request.app[RELAY_KEY]
    admit_admin(request)
    return web.json_response(relay.describe(), headers={"Cache-Control": "no-store"})


async def admin_fault(request: web.Request) -> web.Response:
    """``PUT /v3/admin/fault`` ``{"fault": name}``: switch the reproduced incident."""
    relay = request.app[RELAY_KEY]
    admit_admin(request)
    body = await json_object(request)
    if "fault" not in body:
        raise ApiError(400, "bad_request", 'expected {"fault": "<name>"}')
    try:
        fault = Fault.parse(body["fault"])
    except RelayConfigError as error:
        raise ApiError(400, "bad_request", str(error)) from error
    changed = relay.set_fault(fault)
    return web.json_response({"changed": changed, **relay.describe()})


async def admin_outage(request: web.Request) -> web.Response:
    """``POST /v3/admin/outage`` ``{"seconds": S}``: 503 for S seconds, then recovery."""
    relay = request.app[RELAY_KEY]
    admit_admin(request)
    body = await json_object(request)
    seconds = body.get("seconds")
    if not isinstance(seconds, int | float) or isinstance(seconds, bool):
        raise ApiError(400, "bad_request", 'expected {"seconds": <number>}')
    try:
        until = relay.start_outage(float(seconds))
    except ValueError as error:
        raise ApiError(400, "bad_request", str(error)) from error
    return web.json_response({"outage_until": until, **relay.describe()})


async def healthz(request: web.Request) -> web.Response:
    # Liveness of the process only: a disabled or "crashed" relay is still alive,
    # and a probe restarting it would erase the state a test is looking at.
    return web.json_response({"status": "ok"})
