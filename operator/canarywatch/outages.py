"""Canary cameras known to be down, and the stale frames that explains (pure; both shells).

A canary camera that cannot publish (its pod unavailable in a cluster, its publisher
failing in ``canarywatch run``) leaves the integration serving its last frame. Viewers
rightly judge those frames ``stale``, but the story is the camera, not a cache: while a
tenant's camera is known down, and for ``grace_seconds`` after it is back (the
integration's cache and the viewers' confirmation windows catch up), that tenant's
stale frames are counted and nothing more: no warning, no incident, no page. Every
other verdict is untouched: a leaked frame is a leak whatever the cameras do.

Each shell states what it knows with ``CameraOutages.update``: the operator from the
camera Deployments it watches (``controller.cameras``), ``canarywatch run`` from its
publishers' results (``PublishWatch``). The ``Monitor`` (standalone) and the operator's
LeakIncident handler ask ``explains`` before they act on a frame.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from dataclasses import dataclass

from canarywatch.verdicts import Verdict

__all__ = ["RECOVERY_GRACE_SECONDS", "CameraOutages", "Outage", "PublishWatch"]

#: After a camera is back, its tenant's stale frames are still explained this long: the
#: integration serves the old frame until the new one is in, and a viewer's 3-of-5
#: window may confirm on frames it received just before.
RECOVERY_GRACE_SECONDS = 60.0


@dataclass(frozen=True)
class Outage:
    """One tenant's camera down: ``camera`` names it as a user would look for it (a
    Deployment, ``tenant/0``), ``reason`` says what is wrong, ``since`` when it was seen."""

    camera: str
    reason: str
    since: float

    def describe(self) -> str:
        return f"camera {self.camera} is down ({self.reason})"


class CameraOutages:
    """The tenants of one probe whose camera is down, as the shell last saw them."""

    def __init__(self, *, grace_seconds: float = RECOVERY_GRACE_SECONDS) -> None:
        self.grace_seconds = grace_seconds
        self._down: dict[str, Outage] = {}
        self._back: dict[str, tuple[float, Outage]] = {}  # tenant -> (back up at, the outage)

    @property
    def down(self) -> dict[str, Outage]:
        """The outages now, by tenant."""
        return dict(self._down)

    def update(self, down: Mapping[str, tuple[str, str]], at: float) -> tuple[list[str], list[str]]:
        """The whole picture at ``at``: ``down`` maps each tenant whose camera is down to
        ``(camera, reason)``; every other tenant's camera is up. Returns the tenants that
        went down and those that came back, for the shell to say so once."""
        went_down = sorted(t for t in down if t not in self._down)
        came_back = sorted(t for t in self._down if t not in down)
        for tenant in came_back:
            self._back[tenant] = (at, self._down.pop(tenant))
        for tenant, (camera, reason) in down.items():
            before = self._down.get(tenant)
            self._down[tenant] = Outage(camera, reason, before.since if before else at)
            self._back.pop(tenant, None)
        return went_down, came_back

    def explains(self, verdict: Verdict | str, tenant: str, at: float) -> str | None:
        """Why a ``verdict`` frame of viewer ``tenant`` received at ``at`` is not acted
        on, or None: only stale frames, only while the tenant's camera is down or back
        for less than ``grace_seconds``."""
        if str(verdict) != Verdict.STALE.value:
            return None
        outage = self._down.get(tenant)
        if outage is not None:
            return outage.describe()
        back, past = self._back.get(tenant, (None, None))
        if back is not None and past is not None and at - back <= self.grace_seconds:
            return f"camera {past.camera} was down until {at - back:.0f} s before this frame ({past.reason})"
        return None


class PublishWatch:
    """Standalone publishers' health from their counters: a camera is down once it has
    failed since its last published frame and published nothing for ``after_seconds``;
    it is up again with its next published frame. A camera that serves frames for the
    integration to pull never fails here (an integration that stops pulling is the
    integration's problem, and viewers see it as such)."""

    def __init__(self, *, after_seconds: float) -> None:
        self.after_seconds = after_seconds
        self._seen: dict[
            Hashable, tuple[int, int, float, bool]
        ] = {}  # published, failed, last publish, failing

    def observe(self, camera: Hashable, *, published: int, failed: int, at: float) -> bool:
        """Whether ``camera`` is down, given its counters at ``at``."""
        before = self._seen.get(camera)
        if before is None:
            self._seen[camera] = (published, failed, at, False)
            return False
        last_published, last_failed, last_publish_at, failing = before
        if published > last_published:
            last_publish_at, failing = at, False
        elif failed > last_failed:
            failing = True
        self._seen[camera] = (published, failed, last_publish_at, failing)
        return failing and at - last_publish_at >= self.after_seconds
