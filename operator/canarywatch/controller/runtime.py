"""What every handler module shares: the ``Runtime`` memo, the status enums, and small
helpers for timestamps, conditions and an integration's effective policy."""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import json
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from canarywatch.controller.kube import Kube
from canarywatch.controller.leadership import LeaderElector
from canarywatch.controller.settings import OperatorSettings
from canarywatch.coverage import CoverageMeter
from canarywatch.incidents.policy import Confirmation, Mode, Policy, PolicyError
from canarywatch.metrics import Metrics
from canarywatch.outages import CameraOutages
from canarywatch.shutdown.holding import Holding

__all__ = [
    "RETRY_DELAY",
    "IncidentState",
    "IntegrationPhase",
    "PageResult",
    "Runtime",
    "ViewerRbac",
    "creation_time",
    "epoch",
    "integration_policy",
    "is_degraded",
    "kill_switch_scope",
    "status_condition",
    "timestamp",
]

log = logging.getLogger(__name__)

RETRY_DELAY = 30.0  # a kopf retry of a response that could not finish (page, kill switch)


class IntegrationPhase(StrEnum):
    """``CameraIntegration.status.phase``: the kill switch's state when it is not
    resumed (so a failure shows at a glance), else Degraded or Active."""

    ACTIVE = "Active"
    SUSPENDING = "Suspending"
    SUSPENDED = "Suspended"
    KILL_SWITCH_FAILED = "KillSwitchFailed"
    RESUMING = "Resuming"
    RESUME_FAILED = "ResumeFailed"
    DEGRADED = "Degraded"


class IncidentState(StrEnum):
    """``LeakIncident.status.state``. Untrusted: its creator or evidence did not verify
    (``controller.trust``); recorded, never paged nor acted on."""

    OPEN = "Open"
    RESOLVED = "Resolved"
    UNTRUSTED = "Untrusted"


def is_open(state: object) -> bool:
    """An incident counts as open until resolved (or found untrusted)."""
    return state not in (IncidentState.RESOLVED, IncidentState.UNTRUSTED)


class PageResult(StrEnum):
    """``LeakIncident.status.paged.result``: Pending is "paging" (written before each
    attempt), Accepted is "delivered" (PagerDuty answered 2xx)."""

    PENDING = "Pending"
    ACCEPTED = "Accepted"
    FAILED = "Failed"
    SKIPPED = "Skipped"
    RESOLVED = "Resolved"


@dataclass(frozen=True)
class ViewerRbac:
    """An apply of a namespace's viewer RBAC: the (name, uid) of the probes it makes
    owners (the apply adds those it lists to the set before it applies)."""

    owners: set[tuple[str, str]]
    done: asyncio.Future[None]

    def owns(self, uid: str) -> bool:
        return any(owner[1] == uid for owner in self.owners)


@dataclass
class Runtime:
    """What handlers share, passed to kopf as ``memo``.

    kopf gives every object a shallow copy: the client, metrics and locks are shared,
    while ``keyring_tenants`` (assigned, never mutated) belongs to one CanaryProbe.
    """

    settings: OperatorSettings
    kube: Kube
    metrics: Metrics
    elector: LeaderElector | None = None
    locks: dict[tuple[str, str], asyncio.Lock] = field(default_factory=dict)
    tasks: set[asyncio.Task[Any]] = field(default_factory=set)
    #: LeakIncident views as this process last wrote them (see ``indexes.incident_views``).
    written: dict[tuple[str, str], tuple[float, dict[str, Any]]] = field(default_factory=dict)
    #: Tenants of this probe whose keyring item is known to exist.
    keyring_tenants: frozenset[str] = frozenset()
    #: Every CanaryProbe, as ``indexes.probes_by_name`` trims it, by (namespace, name):
    #: followed on its watch events (``probes.follow_probe``), shared.
    probes: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    #: Namespace -> the last apply of its viewer RBAC (``probes._ensure_viewer_rbac``), shared.
    viewer_rbac: dict[str, ViewerRbac] = field(default_factory=dict)
    #: Re-assertion pacing of each engaged kill switch (memory only: after a restart the
    #: next leak re-asserts at once, which is the safe side).
    holdings: dict[tuple[str, str], Holding] = field(default_factory=dict)
    #: Each probe's fetch counts at its last summary, for its coverage (shared by all).
    coverage: CoverageMeter = field(default_factory=CoverageMeter)
    #: Each probe's cameras known down, by (namespace, probe) (``controller.cameras``).
    outages: dict[tuple[str, str], CameraOutages] = field(default_factory=dict)
    #: Probes reconciled at once (their calls on ``kube.bulk()``'s threads): when 1,000
    #: start together, the others wait here rather than all building their objects
    #: at once, and the event loop stays free for a LeakIncident (shared by all).
    #: ``controller.main`` gives it ``reconcile_concurrency``.
    reconciles: asyncio.Semaphore = field(default_factory=lambda: asyncio.Semaphore(4))

    def lock(self, namespace: str, integration: str) -> asyncio.Lock:
        return self.locks.setdefault((namespace, integration), asyncio.Lock())

    def background(self, coro: Awaitable[Any], what: str) -> None:
        async def run() -> None:
            try:
                await coro
            except Exception as error:
                log.warning("%s failed: %s", what, error)

        task = asyncio.ensure_future(run())
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    def event(self, body: Mapping[str, Any], reason: str, message: str, *, warning: bool = False) -> None:
        """A Kubernetes Event about ``body``, posted in the background (never delays a kill)."""
        self.background(
            self.kube.post_event(body, reason=reason, message=message, warning=warning),
            f"posting a {reason} Event",
        )


def integration_policy(
    integration: Mapping[str, Any], settings: OperatorSettings, *, confirmed: bool = False
) -> tuple[Policy, str | None]:
    """The integration's policy with the operator's kill-cap defaults, or (when the spec
    is invalid) alert-only defaults: page, never switch off on a policy nobody can read.

    ``confirmed``: for a LeakIncident, which the viewer created only once its rule's
    confirmation (k of the last n frames) held, so one incident is one confirmed leak.
    Parsed once per spec (and kill-cap settings), not once per incident."""
    raw = dict((integration.get("spec") or {}).get("policy") or {})
    cap = {"maxKills": settings.kill_cap_max_kills, "windowSeconds": settings.kill_cap_window_seconds}
    raw["killCap"] = {**cap, **(raw.get("killCap") or {})}
    return _parsed_policy(json.dumps(raw, sort_keys=True), confirmed)


@functools.lru_cache(maxsize=256)
def _parsed_policy(document: str, confirmed: bool) -> tuple[Policy, str | None]:
    try:
        policy, problem = Policy.from_mapping(json.loads(document), "spec.policy"), None
    except PolicyError as error:
        policy, problem = Policy(mode=Mode.ALERT_ONLY), f"invalid policy ({error}): paging only"
    if confirmed:
        rules = {v: dataclasses.replace(r, confirmation=Confirmation()) for v, r in policy.rules.items()}
        policy = dataclasses.replace(policy, rules=rules)
    return policy, problem


def status_condition(
    kind: str,
    status: str,
    reason: str,
    message: str,
    previous: Mapping[Any, Mapping[str, Any]],
    generation: object,
) -> dict[str, Any]:
    """A status condition that keeps its lastTransitionTime while its status holds."""
    before = previous.get(kind) or {}
    condition: dict[str, Any] = {
        "type": kind,
        "status": status,
        "reason": reason,
        "message": message[:32768],
        "lastTransitionTime": before.get("lastTransitionTime")
        if before.get("status") == status and before.get("lastTransitionTime")
        else timestamp(time.time()),
    }
    if isinstance(generation, int):
        condition["observedGeneration"] = generation
    return condition


def kill_switch_scope(rt: Runtime, integration: Mapping[str, Any]) -> Callable[[str], bool]:
    """Where the integration's kill-switch actions may act (``build_actions``' ``may_act_in``)."""
    own = str(integration["metadata"]["namespace"])
    return functools.partial(rt.settings.kill_switch_may_act_in, integration_namespace=own)


def is_degraded(status: Mapping[str, Any]) -> bool:
    conditions = status.get("conditions", [])
    return any(c.get("type") == "Degraded" and c.get("status") == "True" for c in conditions)


def creation_time(obj: Mapping[str, Any]) -> float:
    return epoch((obj.get("metadata") or {}).get("creationTimestamp")) or 0.0


def timestamp(moment: float) -> str:
    return datetime.fromtimestamp(moment, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def epoch(value: object) -> float | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None
