"""Stream URLs handed to hubs: capability tokens for one tenant's camera, for a while.

A smart display plays the URL a ``GetCameraStream`` answer gives it without any
credential of its own (Google's ``cameraStreamNeedAuthToken: false``), so the URL is
the credential: an unguessable token in the path that names one tenant's camera and
expires. Relative playlist URIs keep the token on every request the player makes.
"""

from __future__ import annotations

import secrets
from collections import OrderedDict
from dataclasses import dataclass

__all__ = ["StreamGrant", "StreamGrants"]


@dataclass(frozen=True)
class StreamGrant:
    tenant: str
    camera: str
    expires_at: float


class StreamGrants:
    """Issued stream tokens, oldest dropped past ``max_grants`` (a hub asks again)."""

    def __init__(self, *, lifetime_seconds: float, max_grants: int = 10_000) -> None:
        self._lifetime = lifetime_seconds
        self._max = max_grants
        self._grants: OrderedDict[str, StreamGrant] = OrderedDict()

    def issue(self, tenant: str, camera: str, *, now: float) -> str:
        token = secrets.token_urlsafe(24)
        self._grants[token] = StreamGrant(tenant, camera, now + self._lifetime)
        while len(self._grants) > self._max:
            self._grants.popitem(last=False)
        return token

    def resolve(self, token: str, *, now: float) -> StreamGrant | None:
        """The grant of a live token, else None (unknown and expired look the same)."""
        grant = self._grants.get(token)
        if grant is None or grant.expires_at <= now:
            return None
        return grant
