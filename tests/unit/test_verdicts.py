import pytest

from canarywatch.markers import Observation, Payload, Status
from canarywatch.markers.payload import tenant_tag
from canarywatch.verdicts import LEAK_VERDICTS, Verdict, ViewerIdentity, judge

NOW = 1_800_000_000.0


def verified(tenant: str = "acme-7", camera: int = 0, age: float = 1.0) -> Observation:
    payload = Payload(tenant_tag(tenant), camera, 5, NOW - age)
    return Observation(Status.VERIFIED, tenant=tenant, payload=payload, confidence=1.0)


ME = ViewerIdentity("acme-7", 0)


@pytest.mark.parametrize(
    ("obs", "viewer", "expected"),
    [
        (verified(), ME, Verdict.OK),
        (verified("bravo-2"), ME, Verdict.CROSS_TENANT),
        (
            verified("bravo-2", camera=1, age=999),
            ME,
            Verdict.CROSS_TENANT,
        ),  # a leak outranks staleness
        (verified(camera=1), ME, Verdict.MISROUTED),
        (verified(age=31), ME, Verdict.STALE),
        (verified(age=-120), ME, Verdict.STALE),  # far in the future is not fresh either
        (verified(age=-2), ME, Verdict.OK),  # small clock skew is
        (Observation(Status.NOT_CANARY, reason="no canary structure"), ME, Verdict.FOREIGN),
        (Observation(Status.FORGED, reason="bad mac"), ME, Verdict.FORGED),
        (Observation(Status.DEGRADED, reason="unreadable"), ME, Verdict.DEGRADED),
        (Observation(Status.UNDECODABLE, reason="empty body"), ME, Verdict.UNDECODABLE),
        (
            verified("bravo-2", camera=3),
            ViewerIdentity(),
            Verdict.OK,
        ),  # no identity: verification only
        (verified(camera=3), ViewerIdentity("acme-7"), Verdict.OK),  # any camera of the tenant
    ],
)
def test_verdicts(obs: Observation, viewer: ViewerIdentity, expected: Verdict) -> None:
    assert judge(obs, viewer, now=NOW, max_age=30).verdict is expected


def test_no_freshness_bound_means_never_stale() -> None:
    assert judge(verified(age=10_000), ME, now=NOW, max_age=None).verdict is Verdict.OK


def test_reasons_explain_leaks_without_pixels() -> None:
    j = judge(verified("bravo-2"), ME, now=NOW, max_age=30)
    assert "bravo-2" in j.reason and "acme-7" in j.reason and j.age == pytest.approx(1.0)


def test_vocabulary_is_the_designs() -> None:
    assert {v.value for v in Verdict} == {
        "ok",
        "cross_tenant",
        "foreign",
        "misrouted",
        "stale",
        "forged",
        "degraded",
        "undecodable",
    }
    assert Verdict.STALE not in LEAK_VERDICTS and Verdict.CROSS_TENANT in LEAK_VERDICTS


def test_verified_without_payload_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="verified"):
        judge(Observation(Status.VERIFIED, tenant="x"), ME, now=NOW, max_age=30)
