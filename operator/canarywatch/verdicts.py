"""Observation + who is looking → one verdict from the fixed vocabulary (pure).

Attribution comes only from a verified signature: `cross_tenant`, `misrouted`,
`stale` and `ok` all require `Status.VERIFIED`. Everything else describes the
frame without naming anyone.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from canarywatch.markers.observation import Observation, Status

__all__ = ["LEAK_VERDICTS", "Judgement", "Verdict", "ViewerIdentity", "judge"]


class Verdict(enum.StrEnum):
    OK = "ok"
    CROSS_TENANT = "cross_tenant"
    FOREIGN = "foreign"
    MISROUTED = "misrouted"
    STALE = "stale"
    FORGED = "forged"
    DEGRADED = "degraded"
    UNDECODABLE = "undecodable"


# Verdicts that open an incident under the default policy.
LEAK_VERDICTS = frozenset({Verdict.CROSS_TENANT, Verdict.FOREIGN, Verdict.MISROUTED, Verdict.FORGED})

# A camera clock a little ahead of the viewer's is normal; far ahead is not "fresh".
_FUTURE_TOLERANCE = 5.0


@dataclass(frozen=True, slots=True)
class ViewerIdentity:
    """Whose view this is. `tenant=None` only checks that frames verify at all."""

    tenant: str | None = None
    camera: int | None = None


@dataclass(frozen=True, slots=True)
class Judgement:
    verdict: Verdict
    reason: str = ""
    age: float | None = None  # seconds between capture and `now`, for verified frames


def judge(obs: Observation, viewer: ViewerIdentity, *, now: float, max_age: float | None) -> Judgement:
    """The verdict for one received frame.

    `max_age` is the freshness bound in seconds (None: never stale).
    """
    if obs.status is Status.UNDECODABLE:
        return Judgement(Verdict.UNDECODABLE, obs.reason)
    if obs.status is Status.NOT_CANARY:
        return Judgement(Verdict.FOREIGN, obs.reason)
    if obs.status is Status.DEGRADED:
        return Judgement(Verdict.DEGRADED, obs.reason)
    if obs.status is Status.FORGED:
        return Judgement(Verdict.FORGED, obs.reason)
    payload = obs.payload
    if obs.tenant is None or payload is None:  # VERIFIED always carries both
        raise ValueError("a verified observation must name its tenant and payload")
    age = now - payload.time
    if viewer.tenant is not None and obs.tenant != viewer.tenant:
        return Judgement(
            Verdict.CROSS_TENANT,
            f"frame signed by tenant {obs.tenant!r} (camera {payload.camera}) shown to {viewer.tenant!r}",
            age,
        )
    if viewer.camera is not None and payload.camera != viewer.camera:
        return Judgement(
            Verdict.MISROUTED,
            f"frame of camera {payload.camera} shown as camera {viewer.camera}",
            age,
        )
    if max_age is not None and age > max_age:
        return Judgement(Verdict.STALE, f"frame is {age:.1f}s old (bound {max_age:g}s)", age)
    if max_age is not None and -age > _FUTURE_TOLERANCE + max_age:
        return Judgement(Verdict.STALE, f"frame time is {-age:.1f}s ahead of the viewer's clock", age)
    return Judgement(Verdict.OK, "", age)
