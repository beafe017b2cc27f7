"""Bearer-token authentication and the per-tenant ownership rule.

Pure: the handlers pass in the ``Authorization`` header and the tenant from the URL
and act on the returned ``Access``. The ``idor`` fault works by *not asking* for the
ownership check on one path (see ``faults.snapshot_checks_owner``); the rule itself
never changes.
"""

from __future__ import annotations

import enum
import hmac
from collections.abc import Mapping
from dataclasses import dataclass

__all__ = ["Access", "Decision", "TokenBook", "bearer_token"]


class Decision(enum.Enum):
    ALLOWED = "allowed"
    # No or unknown credentials: 401 with a Bearer challenge.
    UNAUTHENTICATED = "unauthenticated"
    # Valid credentials for someone else: 403.
    FORBIDDEN = "forbidden"


@dataclass(frozen=True)
class Access:
    """Outcome of a check; ``tenant`` is whom the token belongs to, when known."""

    decision: Decision
    tenant: str | None = None

    @property
    def allowed(self) -> bool:
        return self.decision is Decision.ALLOWED


def bearer_token(authorization: str | None) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header, else None."""
    if authorization is None:
        return None
    scheme, _, token = authorization.strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        return None
    return token


class TokenBook:
    """Maps bearer tokens to tenants (and recognises the admin token)."""

    def __init__(self, tenants: Mapping[str, str], admin_token: str) -> None:
        self._tenants = dict(tenants)
        self._admin_token = admin_token

    def tenant_of(self, token: str | None) -> str | None:
        """The tenant whose token this is; compares against every token in constant
        time so response timing does not reveal how much of a guess was right."""
        if token is None:
            return None
        found: str | None = None
        for tenant, candidate in self._tenants.items():
            if hmac.compare_digest(candidate.encode(), token.encode()):
                found = tenant
        return found

    def is_admin(self, token: str | None) -> bool:
        return token is not None and hmac.compare_digest(self._admin_token.encode(), token.encode())

    def tenant_access(self, token: str | None, *, url_tenant: str | None) -> Access:
        """Tenant endpoint check: the token must be a tenant's, and when ``url_tenant``
        is given (the ownership check) it must be that tenant's."""
        tenant = self.tenant_of(token)
        if tenant is None:
            if self.is_admin(token):
                # The admin token operates the relay; it is nobody's viewer.
                return Access(Decision.FORBIDDEN)
            return Access(Decision.UNAUTHENTICATED)
        if url_tenant is not None and url_tenant != tenant:
            return Access(Decision.FORBIDDEN, tenant)
        return Access(Decision.ALLOWED, tenant)

    def admin_access(self, token: str | None) -> Access:
        if self.is_admin(token):
            return Access(Decision.ALLOWED)
        if self.tenant_of(token) is not None:
            return Access(Decision.FORBIDDEN)
        return Access(Decision.UNAUTHENTICATED)
