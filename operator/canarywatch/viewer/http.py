"""The generic HTTP adapter's configuration: request templates and token sources (pure).

This is how users point canarywatch at their real integration: each viewer path (a
snapshot URL, an MJPEG URL, an event feed, an authorization probe) is a
``RequestTemplate`` with ``{tenant}``, ``{camera}`` and ``{token}`` placeholders, and
each synthetic tenant's credential is a ``TokenSource`` (inline, an environment
variable, or a mounted Secret file). ``render`` turns a template into the concrete
``RenderedRequest`` the transports send.

Placeholders are ``{name}`` with an identifier inside; every other brace is literal, so
JSON bodies need no escaping. Values are URL-quoted in the URL and inserted verbatim in
headers and the body.

Secrets: token values never appear in a repr or an error message. A rendered request's
``source`` (what evidence and logs show) is its URL path with the token redacted and
the query dropped, since query strings are where integrations put API keys.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from urllib.parse import quote, urlsplit

from canarywatch.errors import FieldError, shown
from canarywatch.headers import HEADER_BREAKERS, HEADER_NAME, header_problem
from canarywatch.userfiles import BoundedInputError, decode_utf8, read_capped

__all__ = [
    "MAX_TOKEN_BYTES",
    "PLACEHOLDERS",
    "AdapterConfigError",
    "RenderedRequest",
    "RequestTemplate",
    "TokenSource",
]

#: A token file holds one credential (a JWT is a few KiB); more is the wrong file.
MAX_TOKEN_BYTES = 64 * 1024

#: The placeholders a template may use.
PLACEHOLDERS = ("camera", "tenant", "token")

_PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")
_REDACTED = "***"
_TEMPLATE_KEYS = ("method", "url", "headers", "body")


class AdapterConfigError(FieldError):
    """An adapter setting is missing or invalid; ``field`` names it
    (``integration.viewer.snapshot.url``). Never carries a token value."""


@dataclass(frozen=True)
class RenderedRequest:
    """One concrete request for one tenant's camera, ready to send."""

    method: str
    url: str = field(repr=False)  # may carry the token
    headers: Mapping[str, str] = field(repr=False)  # usually carries the token
    body: bytes | None = field(default=None, repr=False)
    #: the URL's path with the token redacted and without the query: safe to log.
    source: str = ""
    #: whose resource this is (for authorization probes: the *other* tenant's).
    tenant: str = ""
    camera: str = ""


@dataclass(frozen=True)
class RequestTemplate:
    """A request with ``{tenant}``, ``{camera}`` and ``{token}`` placeholders."""

    url: str
    method: str = "GET"
    headers: Mapping[str, str] = field(default_factory=dict)
    body: str | None = None
    #: where this template was configured, for error messages.
    where: str = field(default="request", compare=False)
    #: the URL schemes accepted (an RTSP endpoint takes ``rtsp``/``rtsps``).
    schemes: tuple[str, ...] = field(default=("http", "https"), compare=False)

    def __post_init__(self) -> None:
        where = self.where
        if not isinstance(self.method, str) or not HEADER_NAME.match(self.method):
            raise AdapterConfigError(
                f"{where}.method", f"expected an HTTP method such as GET, got {shown(self.method)}"
            )
        object.__setattr__(self, "method", self.method.upper())
        if not isinstance(self.url, str):
            raise AdapterConfigError(f"{where}.url", "expected a string")
        _check_placeholders(f"{where}.url", self.url)
        # Judge the URL's shape with the placeholders filled, so "http://{tenant}.cam/"
        # counts as having a host.
        probe = urlsplit(_substitute(self.url, dict.fromkeys(PLACEHOLDERS, "x")))
        if probe.scheme not in self.schemes or not probe.hostname:
            example = f"{self.schemes[0]}://host/path"
            raise AdapterConfigError(
                f"{where}.url", f"expected an absolute {'/'.join(self.schemes)} URL such as {example}"
            )
        if not isinstance(self.headers, Mapping):
            raise AdapterConfigError(f"{where}.headers", "expected a mapping of header name to value")
        for name, value in self.headers.items():
            # Literal values are checked here; rendered values are checked in render().
            problem = header_problem(name, value)
            if problem is not None:
                raise AdapterConfigError(f"{where}.{problem[0]}", problem[1])
            _check_placeholders(f"{where}.headers.{name}", value)
        object.__setattr__(self, "headers", MappingProxyType(dict(self.headers)))
        if self.body is not None:
            if not isinstance(self.body, str):
                raise AdapterConfigError(f"{where}.body", "expected a string")
            _check_placeholders(f"{where}.body", self.body)

    def __repr__(self) -> str:
        # Headers, body, userinfo and query may hold literal credentials; scheme, host
        # and path identify the endpoint well enough.
        parts = urlsplit(self.url)
        host = parts.netloc.rpartition("@")[2]
        return f"RequestTemplate({self.method} {parts.scheme}://{host}{parts.path}, where={self.where!r})"

    @classmethod
    def from_mapping(
        cls, obj: object, *, where: str, schemes: tuple[str, ...] = ("http", "https")
    ) -> RequestTemplate:
        """From a config mapping ``{method?, url, headers?, body?}``; a bare string is
        taken as a GET of that URL."""
        if isinstance(obj, str):
            return cls(url=obj, where=where, schemes=schemes)
        if not isinstance(obj, Mapping):
            raise AdapterConfigError(where, "expected a URL or a mapping with url, method, headers, body")
        unknown = sorted(str(key) for key in obj if key not in _TEMPLATE_KEYS)
        if unknown:
            raise AdapterConfigError(
                f"{where}.{unknown[0]}", f"unknown setting; accepted: {', '.join(_TEMPLATE_KEYS)}"
            )
        if "url" not in obj:
            raise AdapterConfigError(f"{where}.url", "required")
        headers = obj.get("headers") or {}
        return cls(
            url=obj["url"],
            method=obj.get("method", "GET"),
            headers=headers,
            body=obj.get("body"),
            where=where,
            schemes=schemes,
        )

    def render(self, *, tenant: str, camera: str, token: str) -> RenderedRequest:
        """The request for ``tenant``'s ``camera``, authenticated with ``token``."""
        for name, value in (("tenant", tenant), ("camera", camera), ("token", token)):
            if HEADER_BREAKERS.search(value):
                # The token's value is never shown; the tenant and camera are not secret.
                shown = "the token" if name == "token" else f"{name} {value!r}"
                raise AdapterConfigError(self.where, f"{shown} contains a line break or NUL")
        quoted = {name: quote(value, safe="") for name, value in (("tenant", tenant), ("camera", camera))}
        raw = {"tenant": tenant, "camera": camera, "token": token}
        url = _substitute(self.url, {**quoted, "token": quote(token, safe="")})
        redacted_url = _substitute(self.url, {**quoted, "token": _REDACTED})
        return RenderedRequest(
            method=self.method,
            url=url,
            headers={name: _substitute(value, raw) for name, value in self.headers.items()},
            body=None if self.body is None else _substitute(self.body, raw).encode("utf-8"),
            source=urlsplit(redacted_url).path or "/",
            tenant=tenant,
            camera=camera,
        )


@dataclass(frozen=True)
class TokenSource:
    """Where a tenant's credential comes from: exactly one of ``literal``, ``env``
    (an environment variable's name) or ``file`` (a path, e.g. a mounted Secret)."""

    literal: str | None = field(default=None, repr=False)
    env: str | None = None
    file: str | None = None
    where: str = field(default="token", compare=False)

    def __post_init__(self) -> None:
        given = [kind for kind in ("literal", "env", "file") if getattr(self, kind) is not None]
        if len(given) != 1:
            raise AdapterConfigError(
                self.where, f"give exactly one of literal, env, file (got {given or 'none'})"
            )
        if self.literal is not None and (not isinstance(self.literal, str) or not self.literal):
            raise AdapterConfigError(self.where, "expected a non-empty token string")
        if self.env is not None and (not isinstance(self.env, str) or not self.env):
            raise AdapterConfigError(f"{self.where}.env", "expected an environment variable name")
        if self.file is not None and (not isinstance(self.file, str) or not self.file):
            raise AdapterConfigError(f"{self.where}.file", "expected a file path")

    def __repr__(self) -> str:
        if self.literal is not None:
            return f"TokenSource(literal={_REDACTED}, where={self.where!r})"
        if self.env is not None:
            return f"TokenSource(env={self.env!r}, where={self.where!r})"
        return f"TokenSource(file={self.file!r}, where={self.where!r})"

    @classmethod
    def from_value(cls, value: object, *, where: str) -> TokenSource:
        """From config: a token string, ``{env: NAME}`` or ``{file: PATH}``."""
        if isinstance(value, str):
            return cls(literal=value, where=where)
        if isinstance(value, Mapping):
            keys = sorted(str(key) for key in value)
            if keys in (["env"], ["file"]):
                kind = keys[0]
                reference = value[kind]
                if not isinstance(reference, str):
                    raise AdapterConfigError(f"{where}.{kind}", "expected a string")
                if kind == "env":
                    return cls(env=reference, where=where)
                return cls(file=reference, where=where)
            # Keys only: a misplaced literal token must not end up in the message.
            raise AdapterConfigError(where, f"expected {{env: NAME}} or {{file: PATH}}, got keys {keys}")
        raise AdapterConfigError(where, "expected a token string, {env: NAME} or {file: PATH}")

    def resolve(self, environ: Mapping[str, str] | None = None) -> str:
        """The token now (files and variables are read at each call, so a rotated
        Secret is picked up); ``environ`` defaults to ``os.environ``."""
        if self.literal is not None:
            return self.literal
        if self.env is not None:
            value = (os.environ if environ is None else environ).get(self.env, "")
            if not value:
                raise AdapterConfigError(
                    f"{self.where}.env", f"environment variable {self.env} is not set or empty"
                )
            return _checked_token(value, f"{self.where}.env")
        assert self.file is not None  # __post_init__: exactly one source is set
        try:
            # Secret volumes and `echo > file` leave a trailing newline; it is not the token's.
            value = decode_utf8(read_capped(self.file, MAX_TOKEN_BYTES)).strip()
        except OSError as error:
            raise AdapterConfigError(
                f"{self.where}.file", f"cannot read {self.file}: {error.strerror or type(error).__name__}"
            ) from None
        except BoundedInputError as error:
            raise AdapterConfigError(f"{self.where}.file", f"{self.file} {error}") from None
        if not value:
            raise AdapterConfigError(f"{self.where}.file", f"{self.file} is empty")
        return _checked_token(value, f"{self.where}.file")


def _checked_token(value: str, where: str) -> str:
    if HEADER_BREAKERS.search(value):
        raise AdapterConfigError(where, "the token contains a line break or NUL")
    return value


def _check_placeholders(where: str, text: str) -> None:
    unknown = sorted({name for name in _PLACEHOLDER.findall(text) if name not in PLACEHOLDERS})
    if unknown:
        listed = ", ".join(f"{{{name}}}" for name in unknown)
        accepted = ", ".join(f"{{{name}}}" for name in PLACEHOLDERS)
        raise AdapterConfigError(where, f"unknown placeholder {listed}; accepted: {accepted}")


def _substitute(text: str, values: Mapping[str, str]) -> str:
    # Only known names reach here (checked at construction); a single pass means a
    # value that itself looks like "{token}" is inserted literally, never re-expanded.
    return _PLACEHOLDER.sub(lambda match: values[match.group(1)], text)
