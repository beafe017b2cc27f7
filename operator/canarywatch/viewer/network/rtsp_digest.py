"""Signing a Digest ``Authorization`` again for the Request-URI a relay forwards.

A client reading through a loopback relay hashes the relay's URL into its Digest
``Authorization`` (``uri="rtsp://127.0.0.1:<relay port>/cam"`` and a ``response`` over
it). Once the relay gives the server its own URL in the request line
(``rtsp_requests``), a server that checks that ``uri`` names the Request-URI (RFC 7616
§3.4.6 says it should) refuses the request. ``resigned`` gives the header the new
``uri`` and the ``response`` computed over it (RFC 7616 §3.4.1: MD5, SHA-256,
SHA-512-256 and their ``-sess`` forms; ``qop=auth`` with ``nc``/``cnonce``, or no
``qop`` as RFC 2069 had it). Anything it cannot sign for sure (another algorithm,
``auth-int``, ``userhash``, another user) is left as it is: the server decides.

Pure logic: the credentials come from the URL the viewer was given, in memory only.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field

__all__ = ["DigestCredentials", "digest_uri", "resigned"]

_HASHES = {"md5": "md5", "sha-256": "sha256", "sha-512-256": "sha512_256"}
# auth-param = token "=" ( token / quoted-string ), comma separated (RFC 7235 §2.1)
_PARAM = re.compile(r'\s*([!#$%&\'*+.^_`|~0-9A-Za-z-]+)\s*=\s*("(?:[^"\\]|\\.)*"|[^\s,]*)\s*(?:,|$)')


@dataclass(frozen=True)
class DigestCredentials:
    """The user and password a relay signs with (``repr`` never shows the password)."""

    username: str
    password: str = field(repr=False)


def digest_uri(value: str) -> str | None:
    """The ``uri`` of a Digest ``Authorization`` header's value (None: not Digest)."""
    parsed = _parsed(value)
    return None if parsed is None else parsed[0]["uri"]


def resigned(value: str, *, method: str, uri: str, credentials: DigestCredentials) -> str | None:
    """``value`` (an ``Authorization`` header's value) with ``uri`` and a ``response``
    computed for ``method`` and ``uri``; None when it is no Digest this can sign."""
    parsed = _parsed(value)
    if parsed is None:
        return None
    params, spans = parsed
    algorithm = params.get("algorithm", "MD5").lower()
    hash_name = _HASHES.get(algorithm.removesuffix("-sess"))
    qop = params.get("qop")
    if (
        hash_name is None
        or qop not in (None, "auth")
        or params.get("userhash", "false").lower() == "true"
        or params.get("username") != credentials.username
        or not {"realm", "nonce"} <= params.keys()
        or ((qop is not None or algorithm.endswith("-sess")) and "cnonce" not in params)
        or (qop is not None and "nc" not in params)
    ):
        return None

    def h(text: str) -> str:
        return hashlib.new(hash_name, text.encode()).hexdigest()

    nonce = params["nonce"]
    ha1 = h(f"{credentials.username}:{params['realm']}:{credentials.password}")
    if algorithm.endswith("-sess"):
        ha1 = h(f"{ha1}:{nonce}:{params['cnonce']}")
    ha2 = h(f"{method}:{uri}")
    middle = f"{params['nc']}:{params['cnonce']}:{qop}:" if qop is not None else ""
    response = h(f"{ha1}:{nonce}:{middle}{ha2}")
    quoted_uri = '"' + uri.replace("\\", "\\\\").replace('"', '\\"') + '"'
    # replaced from the end, so the earlier span stays where it was
    out = value
    for name, new in sorted(
        (("uri", quoted_uri), ("response", f'"{response}"')), key=lambda item: -spans[item[0]][0]
    ):
        start, end = spans[name]
        out = out[:start] + new + out[end:]
    return out


def _parsed(value: str) -> tuple[dict[str, str], dict[str, tuple[int, int]]] | None:
    """A Digest header's parameters (names lowercased, values unquoted) and where each
    value stands in ``value``; None unless it is Digest, parsed whole, with a ``uri``
    and a ``response``."""
    scheme, _, rest = value.lstrip().partition(" ")
    if scheme.lower() != "digest":
        return None
    spans: dict[str, tuple[int, int]] = {}
    params: dict[str, str] = {}
    offset = len(value) - len(rest)
    at = 0
    while at < len(rest) and (match := _PARAM.match(rest, at)):
        name = match.group(1).lower()
        spans[name] = (offset + match.start(2), offset + match.end(2))
        raw = match.group(2)
        params[name] = re.sub(r"\\(.)", r"\1", raw[1:-1]) if raw.startswith('"') else raw
        at = match.end()
    if at < len(rest.rstrip()) or "uri" not in spans or "response" not in spans:
        return None
    return params, spans
