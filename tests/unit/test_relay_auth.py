"""Bearer parsing and the tenant/admin access rules."""

from __future__ import annotations

import pytest

from canarywatch.relay.auth import Decision, TokenBook, bearer_token

BOOK = TokenBook({"alice": "token-a", "bob": "token-b"}, "admin-token")


@pytest.mark.parametrize(
    ("header", "token"),
    [
        (None, None),
        ("", None),
        ("Bearer token-a", "token-a"),
        ("bearer   token-a ", "token-a"),
        ("Bearer", None),
        ("Basic dXNlcg==", None),
    ],
)
def test_bearer_token(header: str | None, token: str | None) -> None:
    assert bearer_token(header) == token


@pytest.mark.parametrize(
    ("token", "url_tenant", "decision", "tenant"),
    [
        ("token-a", "alice", Decision.ALLOWED, "alice"),
        ("token-a", None, Decision.ALLOWED, "alice"),
        ("token-b", "alice", Decision.FORBIDDEN, "bob"),
        ("admin-token", "alice", Decision.FORBIDDEN, None),
        ("token-", "alice", Decision.UNAUTHENTICATED, None),
        (None, "alice", Decision.UNAUTHENTICATED, None),
    ],
)
def test_tenant_access(
    token: str | None, url_tenant: str | None, decision: Decision, tenant: str | None
) -> None:
    access = BOOK.tenant_access(token, url_tenant=url_tenant)
    assert (access.decision, access.tenant) == (decision, tenant)


@pytest.mark.parametrize(
    ("token", "decision"),
    [
        ("admin-token", Decision.ALLOWED),
        ("token-a", Decision.FORBIDDEN),
        ("admin", Decision.UNAUTHENTICATED),
        (None, Decision.UNAUTHENTICATED),
    ],
)
def test_admin_access(token: str | None, decision: Decision) -> None:
    assert BOOK.admin_access(token).decision is decision
