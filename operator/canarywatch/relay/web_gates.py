"""What every relay handler goes through: auth, availability, JSON errors, parsing.

Handlers raise ``ApiError``; the ``json_errors`` middleware turns it into
``{"error": code, "message": text, ...}`` so that canarywatch's adapters (and people
with curl) can tell a kill switch from an auth problem from a bug.
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, NoReturn

from aiohttp import hdrs, web

from canarywatch.relay.auth import Access, Decision, bearer_token
from canarywatch.relay.service import RefusalKind, Relay

__all__ = [
    "RELAY_KEY",
    "ApiError",
    "admit_admin",
    "admit_available",
    "admit_tenant",
    "deny",
    "int_query",
    "json_errors",
    "json_object",
]

RELAY_KEY = web.AppKey("canarywatch.relay", Relay)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class ApiError(Exception):
    """Raised by handlers and turned into a JSON error response by ``json_errors``."""

    def __init__(
        self,
        status: int,
        error: str,
        message: str,
        *,
        headers: Mapping[str, str] | None = None,
        **extra: Any,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.body = {"error": error, "message": message, **extra}
        self.headers = dict(headers or {})


@web.middleware
async def json_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except ApiError as rejected:
        return web.json_response(rejected.body, status=rejected.status, headers=rejected.headers)


def admit_tenant(request: web.Request, *, url_tenant: str | None) -> str:
    """The requesting tenant, after auth (and ownership of ``url_tenant`` when given)
    and the availability check; raises the 401/403/503 otherwise.

    Auth comes first so that an anonymous caller learns nothing about the relay's
    state, not even that it is switched off.
    """
    relay = request.app[RELAY_KEY]
    token = bearer_token(request.headers.get(hdrs.AUTHORIZATION))
    access = relay.tokens.tenant_access(token, url_tenant=url_tenant)
    if not access.allowed or access.tenant is None:
        deny(relay, access)
    admit_available(relay)
    return access.tenant


def admit_available(relay: Relay) -> None:
    """Raise the 503 while the integration is switched off or down."""
    refusal = relay.refusal()
    if refusal is not None:
        if refusal.kind is RefusalKind.DISABLED:
            relay.state.counters.refused_disabled += 1
        else:
            relay.state.counters.refused_outage += 1
        headers: dict[str, str] = {}
        if refusal.retry_after_seconds is not None:
            headers[hdrs.RETRY_AFTER] = str(max(1, math.ceil(refusal.retry_after_seconds)))
        raise ApiError(503, str(refusal.kind), refusal.message, headers=headers, **(refusal.detail or {}))


def admit_admin(request: web.Request) -> None:
    """Raise the 401/403 unless the request carries the admin token."""
    relay = request.app[RELAY_KEY]
    access = relay.tokens.admin_access(bearer_token(request.headers.get(hdrs.AUTHORIZATION)))
    if not access.allowed:
        deny(relay, access)


def deny(relay: Relay, access: Access) -> NoReturn:
    relay.state.counters.auth_failures += 1
    if access.decision is Decision.UNAUTHENTICATED:
        raise ApiError(
            401,
            "unauthenticated",
            "a valid 'Authorization: Bearer <token>' header is required",
            headers={hdrs.WWW_AUTHENTICATE: 'Bearer realm="canarywatch-relay"'},
        )
    raise ApiError(403, "forbidden", "this token may not access this resource")


def int_query(request: web.Request, name: str, *, default: int, low: int, high: int | None = None) -> int:
    """An integer query parameter within bounds; a 400 that names it otherwise."""
    raw = request.query.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        value = low - 1
    if value < low or (high is not None and value > high):
        bounds = f">= {low}" if high is None else f"between {low} and {high}"
        raise ApiError(400, "bad_request", f"{name} must be an integer {bounds}, got {raw!r}")
    return value


async def json_object(request: web.Request) -> dict[str, Any]:
    """The request's JSON object body; ``{}`` when there is no body."""
    if not request.body_exists:
        return {}
    try:
        data = await request.json()
    except ValueError as error:
        raise ApiError(400, "bad_request", f"body is not JSON: {error}") from error
    if not isinstance(data, dict):
        raise ApiError(400, "bad_request", "body must be a JSON object")
    return data
