"""Every outbound HTTP session canarywatch opens: credentials stay with their origin.

Viewer transports, canary cameras pushing frames, kill-switch webhooks and PagerDuty
all get their ``aiohttp.ClientSession`` from ``client_session``, so the rule below holds
for every client path, and a new transport inherits it by taking the session it is given.

Redirects are where a credential leaks: a snapshot URL answering ``301 Location:
http://elsewhere:8080/`` would make aiohttp resend the request there. aiohttp drops
``Authorization``, ``Cookie`` and ``Proxy-Authorization`` on such a hop, but forwards
every other header (``X-Api-Key``, a tenant header) and, for 307/308, the body (where a
template or PagerDuty's event carries a key). Here, a redirect to another origin
(scheme, host and port) is followed with none of the caller's headers except
``PORTABLE_HEADERS``, and one that would resend a body to another origin is refused
with ``CrossOriginRedirect``. Same-origin redirects are followed as aiohttp does.

Sessions keep no cookies either (``DummyCookieJar``): cookie scope ignores the port, so
a cookie set by ``host:443`` would otherwise reach ``host:8080``. An integration that
authenticates with a cookie gets it as a configured ``Cookie`` header, which stays with
its origin like any other header.

How: a client middleware sees every hop of a request; a trace hook (``on_request_start``
/ ``on_request_redirect``) tells it where the chain started and that a hop is a
redirect. Both run in the requesting task, so the chain is kept in a ``ContextVar``.
"""

from __future__ import annotations

import contextvars
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

import aiohttp
from aiohttp import ClientHandlerType, ClientRequest, ClientResponse, hdrs
from yarl import URL

__all__ = ["PORTABLE_HEADERS", "CrossOriginRedirect", "client_session"]

#: What a hop to another origin keeps: headers that say how to talk, never who is asking.
#: ``Host`` is recomputed by aiohttp for the new URL unless the caller set one.
PORTABLE_HEADERS = frozenset(
    name.lower()
    for name in (
        hdrs.ACCEPT,
        hdrs.ACCEPT_ENCODING,
        hdrs.ACCEPT_LANGUAGE,
        hdrs.USER_AGENT,
        hdrs.CONNECTION,
        hdrs.CONTENT_LENGTH,
    )
)


class CrossOriginRedirect(aiohttp.ClientError):
    """A redirect would have resent a request body to another origin; not followed."""


@dataclass(frozen=True)
class _Chain:
    origin: URL  # where the request's credentials belong: its first URL's origin
    redirected: bool = False  # the next hop is a redirect aiohttp is following


_chain: contextvars.ContextVar[_Chain | None] = contextvars.ContextVar("canarywatch_http_chain", default=None)


def client_session(**options: Any) -> aiohttp.ClientSession:
    """An ``aiohttp.ClientSession`` (``options`` as aiohttp takes them) that keeps
    credentials at their origin and no cookies; see the module docstring."""
    if "middlewares" in options or "trace_configs" in options or "cookie_jar" in options:
        raise TypeError("client_session sets middlewares, trace_configs and cookie_jar itself")
    trace = aiohttp.TraceConfig()
    trace.on_request_start.append(_on_start)
    trace.on_request_redirect.append(_on_redirect)
    return aiohttp.ClientSession(
        middlewares=(_keep_credentials_at_origin,),
        trace_configs=[trace],
        cookie_jar=aiohttp.DummyCookieJar(),
        **options,
    )


async def _on_start(
    _session: aiohttp.ClientSession, _context: SimpleNamespace, params: aiohttp.TraceRequestStartParams
) -> None:
    _chain.set(_Chain(params.url.origin()))


async def _on_redirect(
    _session: aiohttp.ClientSession, _context: SimpleNamespace, _params: aiohttp.TraceRequestRedirectParams
) -> None:
    chain = _chain.get()
    if chain is not None:
        _chain.set(_Chain(chain.origin, redirected=True))


async def _keep_credentials_at_origin(request: ClientRequest, handler: ClientHandlerType) -> ClientResponse:
    chain = _chain.get()
    if chain is not None and chain.redirected and _origin(request.url) != chain.origin:
        if _has_body(request):
            raise CrossOriginRedirect(
                f"a redirect to {_origin(request.url)} would resend the request body there; "
                "configure the final URL"
            )
        for name in {key.lower() for key in request.headers} - PORTABLE_HEADERS - {hdrs.HOST.lower()}:
            request.headers.popall(name, None)
        if hdrs.HOST in request.headers:
            # A configured Host belongs to the first origin too.
            request.headers[hdrs.HOST] = request.url.raw_authority
    return await handler(request)


def _origin(url: URL) -> URL:
    try:
        return url.origin()
    except ValueError:  # not an absolute http(s) URL: aiohttp refuses it anyway
        return url


def _has_body(request: ClientRequest) -> bool:
    body = request.body
    if isinstance(body, bytes):
        return bool(body)
    return body.size is None or body.size > 0
