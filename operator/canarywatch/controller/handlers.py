"""The kopf handlers of ``canarywatch operator``, and what they do.

Thin where kopf meets the cluster: a handler reads the object, calls the pure
builders (``controller.builders``), the policy (``incidents.policy``) and the kill
switch (``controller.actions``), and writes status through ``controller.kube``.
``register()`` attaches them to a kopf registry with the intervals of the settings::

    CanaryProbe        create/update/resume  keyring Secrets (generated once), RBAC,
                                             camera/viewer Deployments, stale ones removed
                       timer                 status summary (workloads from an index,
                                             verdict counts scraped from ready viewers)
    CameraIntegration  create/update/resume  policy and kill-switch validation: phase
                                             Active or Degraded, the Degraded condition
                       spec.suspended        true by hand: engage; false: resume (restore
                                             what the kill switch changed)
                       spec.camera/viewer    re-roll the probes that run against it
                       timer                 resolve open incidents once clean
    LeakIncident       create/resume         policy → page (PagerDuty) and kill switch

State lives in status, not in the operator: ``CameraIntegration.status.phase`` is the
state machine (Active ⇄ Suspended, Degraded while the configuration cannot run), driven
by ``status.killSwitch.state`` (Engaging → Engaged | EngageFailed → Resuming → Resumed |
ResumeFailed); a LeakIncident's status says what was decided, whether the page was
delivered (``paged.result``: Pending before each attempt, Accepted after) and whether
the integration is shut down. Every handler is idempotent against that state, so a
restarted operator (or a kopf retry) finishes a half-done response and never repeats a
finished one. All writes about one integration happen under one lock, against a fresh
read of it: only the elected leader runs these handlers, so a process lock suffices.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import secrets
import time
from collections.abc import Awaitable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

import aiohttp
import kopf
from prometheus_client.parser import text_string_to_metric_families

from canarywatch.controller import builders
from canarywatch.controller.actions import (
    ActionRecord,
    ActionSpecError,
    KubeAction,
    Result,
    build_actions,
    engage_actions,
    resume_action,
    resume_actions,
    resume_hint,
)
from canarywatch.controller.kube import (
    CAMERA_INTEGRATIONS,
    CANARY_PROBES,
    DEPLOYMENTS,
    LEAK_INCIDENTS,
    PODS,
    SECRETS,
    SERVICES,
    Kube,
    KubeError,
    LeaderElector,
)
from canarywatch.controller.settings import OperatorSettings
from canarywatch.incidents.pagerduty import (
    DeliveryResult,
    Outcome,
    PagerDutyClient,
    backoff_delay,
    build_event,
    make_dedup_key,
    severity_for_verdict,
)
from canarywatch.incidents.policy import (
    Confirmation,
    Decision,
    IncidentKey,
    Mode,
    OpenIncident,
    Policy,
    PolicyEngine,
    PolicyError,
)
from canarywatch.metrics import Metrics
from canarywatch.shutdown import ActionContext, Step
from canarywatch.verdicts import Verdict

__all__ = [
    "ENGAGED_STATES",
    "IncidentState",
    "PageResult",
    "Phase",
    "Runtime",
    "SwitchState",
    "register",
]

log = logging.getLogger(__name__)

GROUP, VERSION = "canarywatch.io", "v1alpha1"
_PROBES = (GROUP, VERSION, "canaryprobes")
_INTEGRATIONS = (GROUP, VERSION, "cameraintegrations")
_INCIDENTS = (GROUP, VERSION, "leakincidents")
MANAGED_BY = {"app.kubernetes.io/managed-by": "canarywatch-operator"}
_SCRAPE_TIMEOUT = 2.0
_RETRY_DELAY = 30.0  # a kopf retry of a response that could not finish (page, kill switch)


class Phase(StrEnum):
    """``CameraIntegration.status.phase``."""

    ACTIVE = "Active"
    SUSPENDED = "Suspended"
    DEGRADED = "Degraded"


class SwitchState(StrEnum):
    """``CameraIntegration.status.killSwitch.state``."""

    ENGAGING = "Engaging"
    ENGAGED = "Engaged"
    ENGAGE_FAILED = "EngageFailed"
    RESUMING = "Resuming"
    RESUMED = "Resumed"
    RESUME_FAILED = "ResumeFailed"


#: The integration may be (partly) switched off in these states: its phase is Suspended.
ENGAGED_STATES = frozenset(SwitchState) - {SwitchState.RESUMED}


class IncidentState(StrEnum):
    OPEN = "Open"
    ACKNOWLEDGED = "Acknowledged"
    RESOLVED = "Resolved"


class PageResult(StrEnum):
    """``LeakIncident.status.paged.result``: Pending is "paging" (written before each
    attempt), Accepted is "delivered" (PagerDuty answered 2xx)."""

    PENDING = "Pending"
    ACCEPTED = "Accepted"
    FAILED = "Failed"
    SKIPPED = "Skipped"
    RESOLVED = "Resolved"


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
    #: LeakIncident views as this process last wrote them (see ``_incident_views``).
    written: dict[tuple[str, str], tuple[float, dict[str, Any]]] = field(default_factory=dict)
    #: Tenants of this probe whose keyring Secret is known to exist.
    keyring_tenants: frozenset[str] = frozenset()

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


def register(registry: kopf.OperatorRegistry, settings: OperatorSettings) -> None:
    """Attach every handler to ``registry`` (see the module docstring)."""
    on = kopf.on
    on.login(registry=registry)(kopf.login_via_client)
    on.probe(id="canarywatch", registry=registry)(liveness)
    kopf.index("apps", "v1", "deployments", labels=MANAGED_BY, registry=registry)(deployments_by_probe)
    kopf.index(*_INTEGRATIONS, registry=registry)(integrations_by_name)
    kopf.index(*_INCIDENTS, registry=registry)(incidents_by_integration)

    for cause in (on.create, on.update, on.resume):
        cause(*_PROBES, registry=registry)(reconcile_probe)
    kopf.timer(
        *_PROBES,
        interval=settings.status_interval_seconds,
        initial_delay=settings.status_interval_seconds,
        registry=registry,
    )(summarize_probe)

    for cause in (on.create, on.update, on.resume):
        cause(*_INTEGRATIONS, registry=registry)(configure_integration)
    on.field(*_INTEGRATIONS, field="spec.suspended", registry=registry)(suspend_or_resume)
    on.resume(*_INTEGRATIONS, id="suspend_or_resume_on_start", registry=registry)(suspend_or_resume)
    on.create(*_INTEGRATIONS, registry=registry)(reroll_probes)
    for path in ("spec.camera", "spec.viewer"):
        on.update(*_INTEGRATIONS, field=path, registry=registry)(reroll_probes)
    kopf.timer(*_INTEGRATIONS, interval=settings.resolve_check_seconds, registry=registry)(resolve_incidents)

    on.create(*_INCIDENTS, registry=registry)(respond_to_incident)
    on.resume(*_INCIDENTS, registry=registry)(respond_to_incident)


# ---------------------------------------------------------------------------------------
# Liveness and indexes
# ---------------------------------------------------------------------------------------


async def liveness(memo: Runtime, **_: Any) -> dict[str, Any]:
    """kopf's /healthz answer; failing once leadership is lost makes the pod restart."""
    if memo.elector is not None and not memo.elector.leading:
        raise RuntimeError("this replica lost its leader lease")
    return {"leading": memo.elector is not None, "apiRequests": sum(memo.kube.requests.values())}


def deployments_by_probe(body: kopf.Body, **_: Any) -> dict[tuple[str, str], dict[str, Any]]:
    """The Deployments a CanaryProbe owns, trimmed to what its status needs."""
    meta, spec, status = body.get("metadata", {}), body.get("spec", {}), body.get("status", {})
    owner = next(
        (
            ref
            for ref in meta.get("ownerReferences") or []
            if ref.get("kind") == builders.PROBE_KIND and ref.get("controller")
        ),
        None,
    )
    if owner is None:
        return {}
    trimmed = {
        "metadata": {
            "name": meta.get("name"),
            "generation": meta.get("generation", 0),
            "labels": dict(meta.get("labels") or {}),
            "annotations": {
                builders.CONFIG_HASH_ANNOTATION: (meta.get("annotations") or {}).get(
                    builders.CONFIG_HASH_ANNOTATION
                )
            },
        },
        "spec": {"replicas": spec.get("replicas", 1), "selector": dict(spec.get("selector") or {})},
        "status": {
            key: status.get(key, 0)
            for key in (
                "observedGeneration",
                "replicas",
                "updatedReplicas",
                "readyReplicas",
                "availableReplicas",
            )
        },
    }
    return {(str(meta.get("namespace")), str(owner.get("uid"))): trimmed}


def integrations_by_name(body: kopf.Body, **_: Any) -> dict[tuple[str, str], dict[str, Any]]:
    meta = body.get("metadata", {})
    key = (str(meta.get("namespace")), str(meta.get("name")))
    return {key: {"metadata": dict(meta), "spec": dict(body.get("spec") or {})}}


def incidents_by_integration(body: kopf.Body, **_: Any) -> dict[tuple[str, str], dict[str, Any]]:
    """LeakIncidents by integration, as the few fields decisions and resolution read
    (the evidence, thumbnails included, stays out of memory)."""
    view = _incident_view(body)
    return {(view["namespace"], view["integration"]): view}


def _incident_view(body: Mapping[str, Any]) -> dict[str, Any]:
    meta, spec, status = body.get("metadata", {}), body.get("spec", {}), body.get("status") or {}
    paged = status.get("paged") or {}
    return {
        "name": meta.get("name"),
        "namespace": meta.get("namespace"),
        "uid": meta.get("uid"),
        "integration": (spec.get("integrationRef") or {}).get("name"),
        "verdict": (spec.get("observed") or {}).get("verdict"),
        "created": _created(body),
        "state": status.get("state"),
        "decided": bool(status.get("decision")),
        "dedupKey": paged.get("dedupKey"),
        "paged": paged.get("result"),
        "occurrences": int(status.get("occurrences") or 1),
    }


_PAGE_PROGRESS = (
    None,
    PageResult.PENDING,
    PageResult.FAILED,
    PageResult.SKIPPED,
    PageResult.ACCEPTED,
    PageResult.RESOLVED,
)
_OVERLAY_SECONDS = 60.0  # longer than any watch lag; older overlay-only entries were deleted


def _incident_views(
    rt: Runtime, index: kopf.Index[Any, Any] | None, namespace: str, integration: str
) -> list[dict[str, Any]]:
    """The integration's LeakIncidents: the index (fed by the watch) merged with what
    this process wrote since, which the watch may not have delivered yet. The operator
    is the only writer of their status, so the further-along state of the two is right."""
    views = {v["name"]: v for v in _lookup(index, (namespace, integration))}
    now = time.monotonic()
    for (ns, name), (written, view) in list(rt.written.items()):
        if now - written >= _OVERLAY_SECONDS:
            del rt.written[(ns, name)]  # the watch has long caught up (or it was deleted)
            continue
        if ns != namespace or view["integration"] != integration:
            continue
        seen = views.get(name)
        if seen is None:
            views[name] = view
            continue
        views[name] = {
            **seen,
            "decided": seen["decided"] or view["decided"],
            "state": IncidentState.RESOLVED
            if IncidentState.RESOLVED in (seen["state"], view["state"])
            else (view["state"] or seen["state"]),
            "dedupKey": view["dedupKey"] or seen["dedupKey"],
            "paged": max(seen["paged"], view["paged"], key=_page_rank),
            "occurrences": max(seen["occurrences"], view["occurrences"]),
        }
    return sorted(views.values(), key=lambda v: (v["created"], v["name"]))


def _page_rank(result: object) -> int:
    return _PAGE_PROGRESS.index(result) if result in _PAGE_PROGRESS else 0


def _lookup(index: kopf.Index[Any, Any] | None, key: tuple[str, str]) -> list[dict[str, Any]]:
    if index is None or key not in index:
        return []
    return [dict(item) for item in index[key]]


# ---------------------------------------------------------------------------------------
# CanaryProbe
# ---------------------------------------------------------------------------------------


async def reconcile_probe(
    body: kopf.Body,
    old: Mapping[str, Any] | None,
    reason: str,
    patch: kopf.Patch,
    memo: Runtime,
    **kwargs: Any,
) -> None:
    """Create or update the probe's Secrets, RBAC and Deployments; remove stale ones."""
    namespace = body["metadata"]["namespace"]
    integration_name = str((body.get("spec", {}).get("integrationRef") or {}).get("name", ""))
    found = _lookup(kwargs.get("integrations_by_name"), (namespace, integration_name))
    integration = found[0] if found else await memo.kube.get(CAMERA_INTEGRATIONS, namespace, integration_name)
    existing = _lookup(kwargs.get("deployments_by_probe"), (namespace, body["metadata"]["uid"]))
    status, keyrings = await _reconcile_probe(
        memo,
        dict(body),
        integration,
        existing,
        old_spec=(old or {}).get("spec") if reason == "update" else None,
        known_keyrings=memo.keyring_tenants,
        fresh=reason == "create",
    )
    memo.keyring_tenants = frozenset(keyrings)
    if reason != "resume" or _changed(status, body.get("status") or {}):
        patch.status.update(status)


async def _reconcile_probe(
    rt: Runtime,
    probe: dict[str, Any],
    integration: Mapping[str, Any] | None,
    existing: Sequence[Mapping[str, Any]],
    *,
    old_spec: Mapping[str, Any] | None = None,
    known_keyrings: Iterable[str] = (),
    fresh: bool = False,
) -> tuple[dict[str, Any], set[str]]:
    """Bring the probe's objects in line with its spec; its new status and keyring tenants.

    ``existing`` are the live Deployments it owns (from the index): one whose config hash
    matches what the builders produce now is left alone. ``fresh`` (a creation) skips
    nothing; otherwise RBAC and Services are re-applied only if some Deployment changed.
    """
    namespace, name = probe["metadata"]["namespace"], probe["metadata"]["name"]
    problems: list[str] = []
    keyrings: set[str] = set()
    try:
        spec = builders.parse_probe(probe)
    except builders.BuildError as error:
        return _broken_probe_status(probe, str(error)), keyrings
    workloads: list[dict[str, Any]] = []
    if integration is None:
        problems.append(f"CameraIntegration {namespace}/{spec.integration} not found")
    else:
        try:
            workloads = builders.build_probe_workloads(
                probe,
                integration,
                image=rt.settings.agent_image,
                image_pull_policy=rt.settings.agent_image_pull_policy,
            )
        except builders.BuildError as error:
            problems.append(str(error))
    live = {str(d["metadata"]["name"]): dict(d) for d in existing}
    if not problems:
        keyrings = await _ensure_keyrings(rt, probe, spec.tenant_ids, set(known_keyrings))
        hashes = {
            n: d["metadata"].get("annotations", {}).get(builders.CONFIG_HASH_ANNOTATION)
            for n, d in live.items()
        }
        stale_deployments = [
            obj
            for obj in workloads
            if obj["kind"] == "Deployment"
            and hashes.get(obj["metadata"]["name"])
            != obj["metadata"]["annotations"][builders.CONFIG_HASH_ANNOTATION]
        ]
        if fresh or stale_deployments:
            # RBAC first, in order (the RoleBinding names the Role); then the rest at once.
            rbac = [obj for obj in workloads if obj["kind"] in ("ServiceAccount", "Role", "RoleBinding")]
            for obj in rbac:
                await rt.kube.apply(obj)
            others = [obj for obj in workloads if obj["kind"] == "Service"] + stale_deployments
            for applied in await asyncio.gather(*(rt.kube.apply(obj) for obj in others)):
                if applied.get("kind") == "Deployment":
                    live[str(applied["metadata"]["name"])] = applied
        expected = set(builders.expected_workload_names(spec))
        for stale in sorted(set(live) - expected):
            await rt.kube.delete(DEPLOYMENTS, namespace, stale, uid=live[stale]["metadata"].get("uid"))
            live.pop(stale)
        if old_spec is not None and integration is not None:
            await _remove_tenants(rt, probe, old_spec, integration, set(spec.tenant_ids))
    status = builders.build_probe_status(
        probe,
        deployments=live.values(),
        keyring_tenants=keyrings,
        now=datetime.now(UTC),
        problems=problems,
        previous=probe.get("status") or {},
    )
    if problems and not _has_problem_condition(probe.get("status") or {}, problems):
        rt.event(probe, "ConfigurationProblem", "; ".join(problems), warning=True)
    log.info("CanaryProbe %s/%s reconciled: %s workloads ready", namespace, name, status.get("ready"))
    return status, keyrings


async def _ensure_keyrings(
    rt: Runtime, probe: Mapping[str, Any], tenants: Sequence[str], known: set[str]
) -> set[str]:
    """Each tenant's keyring Secret, created with a fresh key only if it does not exist.

    The key is generated here and goes straight into the Secret: it is never logged,
    kept, or regenerated (an existing Secret is immutable and wins).
    """

    async def ensure(tenant: str) -> str:
        secret = builders.build_keyring_secret(probe, tenant, secrets.token_bytes(32))
        await rt.kube.create_if_absent(secret)
        return tenant

    missing = [t for t in tenants if t not in known]
    created = await asyncio.gather(*(ensure(t) for t in missing))
    return {t for t in tenants if t in known} | set(created)


async def _remove_tenants(
    rt: Runtime,
    probe: Mapping[str, Any],
    old_spec: Mapping[str, Any],
    integration: Mapping[str, Any],
    current: set[str],
) -> None:
    """Keyring Secrets and camera Services of tenants the update removed."""
    old_probe = {**probe, "spec": dict(old_spec)}
    try:
        removed = [t for t in builders.parse_probe(old_probe).tenant_ids if t not in current]
    except builders.BuildError:
        return
    namespace = probe["metadata"]["namespace"]
    for tenant in removed:
        await rt.kube.delete(
            SECRETS, namespace, builders.keyring_secret_name(probe["metadata"]["name"], tenant)
        )
        with contextlib.suppress(builders.BuildError):
            service = builders.build_camera_service(old_probe, integration, tenant)
            if service is not None:
                await rt.kube.delete(SERVICES, namespace, service["metadata"]["name"])


def _broken_probe_status(probe: Mapping[str, Any], problem: str) -> dict[str, Any]:
    """The status of a probe the builders cannot even read (the CRD should prevent it)."""
    previous = {c.get("type"): c for c in (probe.get("status") or {}).get("conditions", [])}
    generation = probe.get("metadata", {}).get("generation")
    return {
        "conditions": [
            _condition(
                "Ready", "False", "ConfigurationProblem", "see the Degraded condition", previous, generation
            ),
            _condition("Degraded", "True", "ConfigurationProblem", problem, previous, generation),
        ]
    }


def _degraded(status: Mapping[str, Any]) -> bool:
    conditions = status.get("conditions", [])
    return any(c.get("type") == "Degraded" and c.get("status") == "True" for c in conditions)


def _has_problem_condition(status: Mapping[str, Any], problems: Sequence[str]) -> bool:
    return any(
        c.get("type") == "Degraded" and c.get("status") == "True" and c.get("message") == "; ".join(problems)
        for c in status.get("conditions", [])
    )


async def summarize_probe(
    body: kopf.Body,
    status: Mapping[str, Any],
    patch: kopf.Patch,
    memo: Runtime,
    **kwargs: Any,
) -> None:
    """The periodic status summary: at most one write per probe per interval, none when
    nothing but the summary time would change (and that one is not yet stale)."""
    namespace, name = body["metadata"]["namespace"], body["metadata"]["name"]
    deployments = _lookup(kwargs.get("deployments_by_probe"), (namespace, body["metadata"]["uid"]))
    try:
        spec = builders.parse_probe(body)
    except builders.BuildError:
        return
    problems = []
    if not _lookup(kwargs.get("integrations_by_name"), (namespace, spec.integration)):
        problems.append(f"CameraIntegration {namespace}/{spec.integration} not found")
    counts, last_frame = await _agent_counts(memo, namespace, name, deployments)
    cameras = {d["metadata"]["labels"].get(builders.LABEL_TENANT) for d in deployments}
    keyrings = memo.keyring_tenants or {t for t in spec.tenant_ids if t in cameras}
    summary = builders.build_probe_status(
        body,
        deployments=deployments,
        keyring_tenants=keyrings,
        now=datetime.now(UTC),
        verdict_counts=counts,
        last_frame_time=last_frame,
        problems=problems,
        previous=status,
    )
    last = _epoch(status.get("lastSummaryTime"))
    fresh = last is not None and time.time() - last < 10 * memo.settings.status_interval_seconds
    if _changed(summary, status) or not fresh:
        patch.status.update(summary)


def _changed(status: Mapping[str, Any], previous: Mapping[str, Any]) -> bool:
    """Whether writing ``status`` would change more than its summary time."""
    return any(previous.get(k) != v for k, v in status.items() if k != "lastSummaryTime")


async def _agent_counts(
    rt: Runtime, namespace: str, probe: str, deployments: Sequence[Mapping[str, Any]]
) -> tuple[dict[str, int] | None, datetime | None]:
    """Verdict counts and the last frame time, summed over the ready viewer pods'
    ``/metrics``; (None, None) when no viewer is ready (the previous counts stay)."""
    ready = [
        d
        for d in deployments
        if d["metadata"]["labels"].get(builders.LABEL_ROLE) == builders.AgentRole.VIEWER
        and d["status"].get("readyReplicas", 0) > 0
    ]
    if not ready:
        return None, None
    addresses: list[str] = []
    for deployment in ready:
        selector = ",".join(
            f"{k}={v}" for k, v in (deployment["spec"]["selector"].get("matchLabels") or {}).items()
        )
        for pod in await rt.kube.list_objects(PODS, namespace, label_selector=selector):
            pod_status = pod.get("status") or {}
            if pod_status.get("phase") == "Running" and pod_status.get("podIP"):
                addresses.append(str(pod_status["podIP"]))
    counts: dict[str, int] = {}
    last_frame: float | None = None
    timeout = aiohttp.ClientTimeout(total=_SCRAPE_TIMEOUT)
    async with aiohttp.ClientSession(timeout=timeout) as session:

        async def scrape(address: str) -> str:
            host = f"[{address}]" if ":" in address else address
            async with session.get(f"http://{host}:{builders.METRICS_PORT}/metrics") as response:
                return await response.text() if response.status == 200 else ""

        pages = await asyncio.gather(*(scrape(a) for a in addresses), return_exceptions=True)
    for page in pages:
        if not isinstance(page, str):
            continue  # a pod that went away mid-scrape: its frames show up next time
        for family in text_string_to_metric_families(page):
            for sample in family.samples:
                if sample.labels.get("probe") != probe:
                    continue
                if sample.name == "canarywatch_frames_total":
                    verdict = sample.labels.get("verdict", "")
                    counts[verdict] = counts.get(verdict, 0) + int(sample.value)
                elif sample.name == "canarywatch_viewer_last_frame_timestamp_seconds":
                    last_frame = max(last_frame or 0.0, float(sample.value))
    known = {v.value for v in Verdict}
    counts = {k: v for k, v in counts.items() if k in known}
    return counts, (datetime.fromtimestamp(last_frame, UTC) if last_frame else None)


async def reroll_probes(body: kopf.Body, reason: str, memo: Runtime, **kwargs: Any) -> None:
    """The integration's endpoints changed: rebuild its probes' workloads. Or it was just
    created: reconcile the probes that were waiting for it (Degraded); the ones never
    reconciled yet are their own handlers' business."""
    namespace, name = body["metadata"]["namespace"], body["metadata"]["name"]
    integration = {"metadata": dict(body["metadata"]), "spec": dict(body.get("spec") or {})}
    for probe in await memo.kube.list_objects(CANARY_PROBES, namespace):
        if (probe.get("spec", {}).get("integrationRef") or {}).get("name") != name:
            continue
        if reason == "create" and not _degraded(probe.get("status") or {}):
            continue
        existing = _lookup(kwargs.get("deployments_by_probe"), (namespace, probe["metadata"]["uid"]))
        status, _keyrings = await _reconcile_probe(memo, probe, integration, existing)
        await memo.kube.patch_status(CANARY_PROBES, namespace, probe["metadata"]["name"], status)


# ---------------------------------------------------------------------------------------
# CameraIntegration
# ---------------------------------------------------------------------------------------


async def configure_integration(
    body: kopf.Body, reason: str, diff: kopf.Diff, memo: Runtime, **_: Any
) -> None:
    """Check that the policy, kill switch and pager can run; set phase and conditions."""
    changed = {tuple(d[1]) for d in diff or ()}
    if reason == "update" and changed and changed <= {("spec", "suspended")}:
        return  # suspend_or_resume's business; nothing to re-validate
    namespace, name = body["metadata"]["namespace"], body["metadata"]["name"]
    problems = await _integration_problems(memo, body)
    async with memo.lock(namespace, name):
        fresh = await memo.kube.get(CAMERA_INTEGRATIONS, namespace, name)
        if fresh is None:
            return
        status = fresh.get("status") or {}
        previous = {c.get("type"): c for c in status.get("conditions", [])}
        generation = fresh["metadata"].get("generation")
        if problems:
            degraded = _condition(
                "Degraded", "True", "ConfigurationProblem", "; ".join(problems), previous, generation
            )
        else:
            degraded = _condition(
                "Degraded",
                "False",
                "AsExpected",
                "policy, kill switch and pager are usable",
                previous,
                generation,
            )
        conditions = [c for t, c in previous.items() if t != "Degraded"] + [degraded]
        await _patch_integration(memo, fresh, {"observedGeneration": generation, "conditions": conditions})
    if problems and (previous.get("Degraded") or {}).get("message") != degraded["message"]:
        memo.event(body, "ConfigurationProblem", "; ".join(problems), warning=True)
    memo.metrics.record_suspended(
        integration=name, suspended=(status.get("killSwitch") or {}).get("state") in ENGAGED_STATES
    )


async def _integration_problems(rt: Runtime, integration: Mapping[str, Any]) -> list[str]:
    spec = integration.get("spec") or {}
    problems = []
    try:
        Policy.from_mapping(spec.get("policy"), "spec.policy")
    except PolicyError as error:
        problems.append(str(error))
    try:
        await build_actions(integration, rt.kube)
    except ActionSpecError as error:
        problems.append(str(error))
    pagerduty = spec.get("pagerduty")
    if pagerduty:
        ref = pagerduty.get("routingKeySecretRef") or {}
        try:
            await rt.kube.secret_value(
                integration["metadata"]["namespace"], str(ref.get("name")), str(ref.get("key"))
            )
        except KubeError as error:
            problems.append(f"spec.pagerduty.routingKeySecretRef: {error.message}")
    return problems


async def suspend_or_resume(body: kopf.Body, memo: Runtime, **kwargs: Any) -> None:
    """``spec.suspended`` is the switch: true engages by hand (unless engaged already),
    false resumes whatever is engaged, then resolves incidents once clean."""
    namespace, name = body["metadata"]["namespace"], body["metadata"]["name"]
    async with memo.lock(namespace, name):
        integration = await memo.kube.get(CAMERA_INTEGRATIONS, namespace, name)
        if integration is None:
            return
        wanted = bool(integration.get("spec", {}).get("suspended"))
        state = (integration.get("status") or {}).get("killSwitch", {}).get("state")
        if wanted and state not in ENGAGED_STATES:
            integration, state = await _engage(
                memo,
                integration,
                incident="manual",
                reason="spec.suspended set to true by hand",
                automatic=False,
            )
            if state != SwitchState.ENGAGED:
                raise kopf.TemporaryError(
                    "kill switch incomplete; retrying the failed actions", delay=_RETRY_DELAY
                )
            return
        if wanted or state not in ENGAGED_STATES:
            return
        integration, state = await _resume(memo, integration)
    if state != SwitchState.RESUMED:
        raise kopf.TemporaryError("resume incomplete; retrying the failed steps", delay=_RETRY_DELAY)
    await _resolve_if_clean(memo, kwargs.get("incidents_by_integration"), namespace, name)


async def resolve_incidents(body: kopf.Body, status: Mapping[str, Any], memo: Runtime, **kwargs: Any) -> None:
    """Timer: an active integration with open incidents is checked for a clean run."""
    if not status.get("openIncidents") or status.get("phase") == Phase.SUSPENDED:
        return
    index = kwargs.get("incidents_by_integration")
    await _resolve_if_clean(memo, index, body["metadata"]["namespace"], body["metadata"]["name"])


async def _patch_integration(
    rt: Runtime, integration: Mapping[str, Any], changes: Mapping[str, Any]
) -> dict[str, Any]:
    """Merge ``changes`` into the integration's status, with the phase they imply."""
    meta = integration["metadata"]
    status = _merged(integration.get("status") or {}, changes)
    phase = _phase(status)
    patched = await rt.kube.patch_status(
        CAMERA_INTEGRATIONS, meta["namespace"], meta["name"], {**changes, "phase": phase}
    )
    if (integration.get("status") or {}).get("phase") != phase:
        log.info("CameraIntegration %s/%s is %s", meta["namespace"], meta["name"], phase)
    return dict(patched)


def _phase(status: Mapping[str, Any]) -> Phase:
    if (status.get("killSwitch") or {}).get("state") in ENGAGED_STATES:
        return Phase.SUSPENDED
    return Phase.DEGRADED if _degraded(status) else Phase.ACTIVE


# ---------------------------------------------------------------------------------------
# Kill switch: engage and resume, recorded in the integration's status
# ---------------------------------------------------------------------------------------


async def _engage(
    rt: Runtime,
    integration: dict[str, Any],
    *,
    incident: str,
    reason: str,
    automatic: bool,
    extra: Mapping[str, Any] | None = None,
) -> tuple[dict[str, Any], str]:
    """Switch the integration off for ``incident`` (caller holds its lock).

    Continues an engagement of the same incident that a restart interrupted (Pending
    and Failed actions are run again; recorded ``previous`` values are kept). Returns
    the updated integration and the kill-switch state, or ``"other"`` when another
    incident's engagement holds the integration off. ``extra`` status changes go into
    the first status write.
    """
    meta = integration["metadata"]
    namespace, name = meta["namespace"], meta["name"]
    switch = (integration.get("status") or {}).get("killSwitch") or {}
    state = switch.get("state")
    if (state in ENGAGED_STATES and switch.get("incident") != incident) or state == SwitchState.ENGAGED:
        if extra:
            integration = await _patch_integration(rt, integration, extra)
        return integration, ("other" if switch.get("incident") != incident else SwitchState.ENGAGED)
    continuing = state in (SwitchState.ENGAGING, SwitchState.ENGAGE_FAILED)
    records = [ActionRecord.from_status(a) for a in switch.get("actions", [])] if continuing else []
    now = time.time()
    changes: dict[str, Any] = dict(extra or {})
    if not continuing:
        changes["killSwitch"] = {
            "state": SwitchState.ENGAGING,
            "incident": incident,
            "reason": reason[:1024],
            "engagedAt": _timestamp(now),
            "seconds": 0,
            "actions": [],
            "resumedAt": None,
            "resumeHint": resume_hint(integration, []),
        }
        if automatic:
            window = _policy(integration, rt.settings)[0].kill_cap.window_seconds
            recent = [
                t
                for t in (integration.get("status") or {}).get("recentKills", [])
                if (_epoch(t) or 0) > now - window
            ]
            changes["recentKills"] = [*recent, _timestamp(now)][-100:]
        log.warning("engaging the kill switch of %s/%s for %s: %s", namespace, name, incident, reason)
    writes: list[Awaitable[Any]] = [_patch_integration(rt, integration, changes)] if changes else []
    if integration.get("spec", {}).get("suspended") is not True:
        # Says "switched off" to anyone looking, and setting it back to false resumes.
        writes.append(
            rt.kube.merge_patch(CAMERA_INTEGRATIONS, namespace, name, {"spec": {"suspended": True}})
        )
    written = await asyncio.gather(*writes)
    if changes:
        integration = written[0]
    try:
        actions = await build_actions(integration, rt.kube)
    except ActionSpecError as error:
        integration = await _patch_integration(
            rt,
            integration,
            {"killSwitch": {"state": SwitchState.ENGAGE_FAILED, "reason": f"{reason}; {error}"[:1024]}},
        )
        rt.event(
            integration, "KillSwitchFailed", f"cannot build the kill-switch actions: {error}", warning=True
        )
        return integration, SwitchState.ENGAGE_FAILED

    async def checkpoint(done: Sequence[ActionRecord]) -> None:
        nonlocal integration
        integration = await _patch_integration(rt, integration, {"killSwitch": {"actions": _records(done)}})

    context = ActionContext(name, incident, reason, Step.ENGAGE)
    records = await engage_actions(actions, records, context, checkpoint, _metrics_hook(rt, name))
    failed = [r.name for r in records if r.result is not Result.SUCCEEDED]
    engaged_at = _epoch(((integration.get("status") or {}).get("killSwitch") or {}).get("engagedAt")) or now
    state = SwitchState.ENGAGE_FAILED if failed else SwitchState.ENGAGED
    integration = await _patch_integration(
        rt,
        integration,
        {
            "killSwitch": {
                "state": state,
                "seconds": round(max(0.0, time.time() - engaged_at), 3),
                "resumeHint": resume_hint(integration, records),
            }
        },
    )
    rt.metrics.record_suspended(integration=name, suspended=True)
    if failed:
        message = f"kill switch for {incident} incomplete: {', '.join(failed)} failed; retrying"
        rt.event(integration, "KillSwitchFailed", message, warning=True)
    else:
        done = "; ".join(r.detail for r in records)
        rt.event(integration, "KillSwitchEngaged", f"switched off for {incident}: {done}", warning=True)
    return integration, state


async def _resume(rt: Runtime, integration: dict[str, Any]) -> tuple[dict[str, Any], str]:
    """Undo every recorded action, in reverse order (caller holds the lock)."""
    meta = integration["metadata"]
    name = meta["name"]
    switch = (integration.get("status") or {}).get("killSwitch") or {}
    records = [ActionRecord.from_status(a) for a in switch.get("actions", [])]
    changes: dict[str, Any] = {"state": SwitchState.RESUMING}
    if switch.get("state") not in (SwitchState.RESUMING, SwitchState.RESUME_FAILED):
        changes["resumedAt"] = _timestamp(time.time())
    integration = await _patch_integration(rt, integration, {"killSwitch": changes})
    log.warning("resuming %s/%s (kill switch of %s)", meta["namespace"], name, switch.get("incident"))
    configured: dict[str, KubeAction] = {}
    try:
        configured = {a.name: a for a in await build_actions(integration, rt.kube)}
    except ActionSpecError as error:
        # The Kubernetes actions resume from their records; only webhooks need the spec.
        log.warning("resuming %s without the configured actions: %s", name, error)
    resumers = {r.name: resume_action(r, configured.get(r.name), rt.kube, integration) for r in records}

    async def checkpoint(current: Sequence[ActionRecord]) -> None:
        nonlocal integration
        integration = await _patch_integration(
            rt, integration, {"killSwitch": {"actions": _records(current)}}
        )

    context = ActionContext(
        name, str(switch.get("incident") or "manual"), str(switch.get("reason") or ""), Step.RESUME
    )
    records = await resume_actions(records, resumers, context, checkpoint, _metrics_hook(rt, name))
    failed = [r.name for r in records if r.result is Result.FAILED]
    manual = [r.name for r in records if r.result is Result.SKIPPED]
    state = SwitchState.RESUME_FAILED if failed else SwitchState.RESUMED
    hint = f"undo by hand: {', '.join(manual)}" if manual else "nothing left to undo"
    if failed:
        hint = f"{', '.join(failed)} failed to resume (retrying); " + hint
    integration = await _patch_integration(
        rt, integration, {"killSwitch": {"state": state, "resumeHint": hint}}
    )
    rt.metrics.record_suspended(integration=name, suspended=bool(failed))
    if failed:
        rt.event(integration, "ResumeFailed", hint, warning=True)
    else:
        rt.event(integration, "Resumed", "; ".join(r.detail for r in records) or "nothing to undo")
    return integration, state


def _records(records: Iterable[ActionRecord]) -> list[dict[str, Any]]:
    return [r.to_status() for r in records]


def _metrics_hook(rt: Runtime, integration: str) -> Any:
    def on_result(record: ActionRecord) -> None:
        result = {Result.SUCCEEDED: "succeeded", Result.SKIPPED: "skipped"}.get(record.result, "failed")
        rt.metrics.record_killswitch_action(integration=integration, action=record.step.value, result=result)

    return on_result


# ---------------------------------------------------------------------------------------
# LeakIncident: decide, page, shut down
# ---------------------------------------------------------------------------------------


async def respond_to_incident(body: kopf.Body, memo: Runtime, **kwargs: Any) -> None:
    """Apply the integration's policy to a new LeakIncident (or finish doing so)."""
    incident = dict(body)
    meta, spec = incident["metadata"], incident["spec"]
    status = dict(incident.get("status") or {})
    if status.get("state") == IncidentState.RESOLVED:
        return
    namespace, integration_name = meta["namespace"], spec["integrationRef"]["name"]
    page: asyncio.Task[bool] | None = None
    try:
        async with memo.lock(namespace, integration_name):
            integration = await memo.kube.get(CAMERA_INTEGRATIONS, namespace, integration_name)
            if integration is None:
                raise kopf.TemporaryError(
                    f"CameraIntegration {integration_name} not found; waiting for it", delay=_RETRY_DELAY
                )
            counters: dict[str, Any] | None = None
            if not status.get("decision"):
                views = _incident_views(
                    memo, kwargs.get("incidents_by_integration"), namespace, integration_name
                )
                status, counters = await _decide(memo, incident, integration, views)
            if (status.get("paged") or {}).get("result") in (PageResult.PENDING, PageResult.FAILED):
                # Concurrently with the kill switch: neither may wait for the other.
                page = asyncio.ensure_future(_page(memo, incident, integration, status))
            shut_down = await _shut_down(memo, incident, integration, status, counters)
    finally:
        paged = await page if page is not None else True
    if not (paged and shut_down):
        what = " and ".join(w for w, ok in (("page", paged), ("kill switch", shut_down)) if not ok)
        raise kopf.TemporaryError(f"{what} not complete; retrying", delay=_RETRY_DELAY)


def _policy(integration: Mapping[str, Any], settings: OperatorSettings) -> tuple[Policy, str | None]:
    """The integration's policy with the operator's kill-cap defaults, or (when the spec
    is invalid) alert-only defaults: page, never switch off on a policy nobody can read."""
    raw = dict((integration.get("spec") or {}).get("policy") or {})
    cap = {"maxKills": settings.kill_cap_max_kills, "windowSeconds": settings.kill_cap_window_seconds}
    raw["killCap"] = {**cap, **(raw.get("killCap") or {})}
    try:
        return Policy.from_mapping(raw, "spec.policy"), None
    except PolicyError as error:
        return Policy(mode=Mode.ALERT_ONLY), f"invalid policy ({error}): paging only"


async def _decide(
    rt: Runtime, incident: dict[str, Any], integration: dict[str, Any], views: Sequence[Mapping[str, Any]]
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Decide the response and record it in the incident (caller holds the integration's
    lock); the integration's new counters, for the caller's next write of its status."""
    meta, spec = incident["metadata"], incident["spec"]
    namespace, name = meta["namespace"], meta["name"]
    integration_name = integration["metadata"]["name"]
    istatus = integration.get("status") or {}
    switch = istatus.get("killSwitch") or {}
    verdict = Verdict(spec["observed"]["verdict"])
    policy, policy_problem = _policy(integration, rt.settings)
    # The viewer confirmed the leak (k of its last n frames) before creating this: here
    # one LeakIncident is one confirmed leak.
    policy = dataclasses.replace(
        policy,
        rules={v: dataclasses.replace(r, confirmation=Confirmation()) for v, r in policy.rules.items()},
    )
    others = [v for v in views if v["name"] != name]
    # Incidents still open from before the last resume do not absorb a new leak: if the
    # integration leaks again after being switched back on, it is switched off again.
    resumed_at = _epoch(switch.get("resumedAt")) if switch.get("state") == SwitchState.RESUMED else None
    primaries: dict[Verdict, Mapping[str, Any]] = {}
    for other in others:
        if (
            other["state"] == IncidentState.OPEN
            and other["dedupKey"] == make_dedup_key(integration=integration_name, incident=other["name"])
            and (resumed_at is None or other["created"] > resumed_at)
        ):
            primaries[Verdict(other["verdict"])] = other
    engine = PolicyEngine(
        policy,
        integration=integration_name,
        open_incidents=[
            OpenIncident(IncidentKey(integration_name, v), o["created"], o["occurrences"])
            for v, o in primaries.items()
        ],
        recent_kills=[t for t in (_epoch(s) for s in istatus.get("recentKills", [])) if t is not None],
    )
    decision = engine.decide(name, verdict, time.time())
    primary = primaries.get(verdict)
    status = _incident_status(decision, incident, integration, primary, policy_problem)
    writes = [_patch_incident(rt, incident, status)]
    if decision.incident is not None and not decision.open_incident and primary is not None:
        writes.append(_patch_incident(rt, _view_body(primary), {"occurrences": primary["occurrences"] + 1}))
    incident["status"] = (await asyncio.gather(*writes))[0]
    still_open = sum(1 for o in others if o["state"] == IncidentState.OPEN)
    counters = {
        "incidents": len(others) + 1,
        "openIncidents": still_open + (status["state"] == IncidentState.OPEN),
        "lastIncident": {"name": name, "verdict": verdict.value, "time": spec["times"]["frameReceived"]},
    }
    if decision.open_incident:
        detection = _seconds_between(spec["times"].get("frameReceived"), spec["times"].get("recorded"))
        rt.metrics.record_incident(integration=integration_name, verdict=verdict, detection_seconds=detection)
        who = spec["observed"].get("tenant") or "non-canary content"
        rt.event(
            incident,
            "LeakDetected",
            f"{verdict} via {spec['viewer']['path']}: viewer {spec['viewer']['tenant']} shown {who}; "
            f"{status['decision']}",
            warning=True,
        )
        rt.event(
            integration,
            "LeakDetected",
            f"LeakIncident {name} ({verdict}): {status['decision']}",
            warning=True,
        )
    elif decision.warn:
        rt.event(incident, "LeakWarning", status["decision"], warning=True)
    log.warning("LeakIncident %s/%s (%s): %s", namespace, name, verdict, status["decision"])
    return dict(incident["status"]), counters


def _view_body(view: Mapping[str, Any]) -> dict[str, Any]:
    """Enough of a LeakIncident, from its view, to patch it and post Events about it."""
    return {
        "apiVersion": LEAK_INCIDENTS.api_version,
        "kind": LEAK_INCIDENTS.kind,
        "metadata": {"name": view["name"], "namespace": view["namespace"], "uid": view["uid"]},
        "spec": {"integrationRef": {"name": view["integration"]}},
    }


def _incident_status(
    decision: Decision,
    incident: Mapping[str, Any],
    integration: Mapping[str, Any],
    primary: Mapping[str, Any] | None,
    policy_problem: str | None,
) -> dict[str, Any]:
    """The status recording ``decision``; ``primary`` is the view of the open incident
    of the same verdict that this one attaches to, if any."""
    now = _timestamp(time.time())
    own_key = _dedup_key(incident)
    text = decision.reason if policy_problem is None else f"{policy_problem}; {decision.reason}"
    status: dict[str, Any] = {"decision": text[:1024], "occurrences": 1}
    if decision.incident is None:
        # Counted, or a warning: nothing stays open, nothing to page or switch off.
        why = "a warning only" if decision.warn else "counted only"
        return status | {
            "state": IncidentState.RESOLVED,
            "resolvedAt": now,
            "paged": {"result": PageResult.SKIPPED, "dedupKey": own_key, "detail": f"policy: {why}"},
            "shutdown": {"done": False, "skipped": f"policy: {why}"},
        }
    if not decision.open_incident and primary is not None:
        attached = f"attached to the open incident {primary['name']}"
        return status | {
            "state": IncidentState.OPEN,
            "paged": {"result": PageResult.SKIPPED, "dedupKey": primary["dedupKey"], "detail": attached},
            "shutdown": {"done": False, "skipped": attached},
        }
    paged: dict[str, Any] = {"dedupKey": own_key, "attempts": 0}
    if decision.page and (integration.get("spec") or {}).get("pagerduty"):
        paged["result"] = PageResult.PENDING
    elif decision.page:
        paged |= {"result": PageResult.SKIPPED, "detail": "no spec.pagerduty: recorded and evented only"}
    else:
        paged |= {"result": PageResult.SKIPPED, "detail": decision.reason[:1024]}
    shutdown: dict[str, Any] = {"done": False}
    if not decision.kill:
        if decision.mode is Mode.DRY_RUN:
            shutdown["skipped"] = "dry-run: recorded only"
        elif decision.mode is Mode.ALERT_ONLY and decision.would_kill:
            shutdown["skipped"] = "alert-only: the kill switch is left alone"
        elif decision.kill_capped:
            shutdown["skipped"] = decision.reason[:1024]
        else:
            shutdown["skipped"] = f"the {decision.verdict} rule does not switch off"
    return status | {"state": IncidentState.OPEN, "paged": paged, "shutdown": shutdown}


async def _shut_down(
    rt: Runtime,
    incident: dict[str, Any],
    integration: dict[str, Any],
    status: Mapping[str, Any],
    counters: Mapping[str, Any] | None = None,
) -> bool:
    """Run the kill switch if the decision says so and it has not run; False: retry
    later. ``counters`` (a new decision's) are written to the integration's status in
    the same request that starts the kill switch."""
    shutdown = status.get("shutdown") or {}
    name = incident["metadata"]["name"]
    switch = (integration.get("status") or {}).get("killSwitch") or {}
    resumed = switch.get("incident") == name and switch.get("state") in (
        SwitchState.RESUMING,
        SwitchState.RESUMED,
        SwitchState.RESUME_FAILED,
    )
    if shutdown.get("done") or shutdown.get("skipped") or resumed:
        if counters:
            await _patch_integration(rt, integration, counters)
        if resumed and not (shutdown.get("done") or shutdown.get("skipped")):
            # Resumed by hand before this response finished: that human decision stands.
            held = {"done": False, "skipped": "resumed before it completed"}
            await _patch_incident(rt, incident, {"shutdown": held})
        return True
    reason = f"{incident['spec']['observed']['verdict']}: {status.get('decision', '')}"
    integration, state = await _engage(
        rt, integration, incident=name, reason=reason, automatic=True, extra=counters
    )
    now = time.time()
    if state == "other":
        other = ((integration.get("status") or {}).get("killSwitch") or {}).get("incident")
        skipped = f"already switched off by {other}"
        await _patch_incident(
            rt, incident, {"shutdown": {"done": True, "at": _timestamp(now), "skipped": skipped}}
        )
        return True
    if state != SwitchState.ENGAGED:
        return False
    seconds = max(0.0, now - _recorded(incident))
    await _patch_incident(
        rt, incident, {"shutdown": {"done": True, "at": _timestamp(now), "seconds": round(seconds, 3)}}
    )
    rt.metrics.record_shutdown(integration=integration["metadata"]["name"], seconds=seconds)
    return True


async def _page(
    rt: Runtime, incident: dict[str, Any], integration: dict[str, Any], status: Mapping[str, Any]
) -> bool:
    """Trigger the incident's page, at least once: ``paged`` says Pending (with the
    attempt number) before each attempt and Accepted after. False: retry later."""
    spec = incident["spec"]
    integration_name = integration["metadata"]["name"]
    paged = dict(status.get("paged") or {})
    verdict = Verdict(spec["observed"]["verdict"])
    pagerduty = (integration.get("spec") or {}).get("pagerduty") or {}
    try:
        routing_key = await _routing_key(rt, integration)
    except KubeError as error:
        await _patch_incident(rt, incident, {"paged": {"result": PageResult.FAILED, "detail": error.message}})
        rt.event(incident, "PageFailed", error.message, warning=True)
        return False
    who = spec["observed"].get("tenant") or "non-canary content"
    evidence = spec.get("evidence") or {}
    event = build_event(
        action="trigger",
        routing_key=routing_key,
        dedup_key=str(paged["dedupKey"]),
        summary=(
            f"canarywatch: {verdict} on {integration_name}: viewer {spec['viewer']['tenant']} "
            f"was shown {who} via {spec['viewer']['path']}"
        )[:1024],
        source=f"canarywatch/{incident['metadata']['namespace']}/{integration_name}",
        severity=(pagerduty.get("severity") or {}).get(verdict.value) or severity_for_verdict(verdict),
        component=pagerduty.get("component") or spec["viewer"]["path"],
        group=pagerduty.get("group") or spec["probeRef"]["name"],
        cls=verdict.value,
        timestamp=spec["times"]["frameReceived"],
        # Hashes and names only: a foreign frame may show a stranger's home.
        custom_details={
            "incident": incident["metadata"]["name"],
            "namespace": incident["metadata"]["namespace"],
            "decision": status.get("decision"),
            "viewer_tenant": spec["viewer"]["tenant"],
            "network_profile": spec["viewer"].get("networkProfile"),
            "observed_tenant": spec["observed"].get("tenant"),
            "observed_camera": spec["observed"].get("camera"),
            "evidence_sha256": evidence.get("sha256"),
        },
    )
    attempts = int(paged.get("attempts") or 0)

    async def before(attempt: int) -> None:
        await _patch_incident(rt, incident, {"paged": {"result": PageResult.PENDING, "attempts": attempt}})

    result, attempts = await _deliver(rt, event, _events_url(rt, integration), attempts, before)
    if result.delivered:
        await _patch_incident(
            rt,
            incident,
            {
                "paged": {
                    "result": PageResult.ACCEPTED,
                    "at": _timestamp(time.time()),
                    "attempts": attempts,
                    "detail": f"HTTP {result.status}",
                }
            },
        )
        rt.event(
            incident,
            "Paged",
            f"PagerDuty accepted the page (dedup key {paged['dedupKey']}) after {attempts} attempt(s)",
        )
        return True
    detail = result.reason or f"HTTP {result.status}"
    await _patch_incident(
        rt, incident, {"paged": {"result": PageResult.FAILED, "attempts": attempts, "detail": detail}}
    )
    rt.event(incident, "PageFailed", detail, warning=True)
    # A rejected event (400) will not get better by resending it.
    return result.outcome is Outcome.REJECTED


async def _deliver(
    rt: Runtime,
    event: Mapping[str, Any],
    url: str,
    attempts: int,
    before: Any = None,
) -> tuple[DeliveryResult, int]:
    """Send ``event`` with retries and backoff; ``before(n)`` runs before attempt n.

    One single-attempt client per attempt, so each attempt can be recorded before it is
    made (the client's own retries would hide them from the status)."""
    settings = rt.settings
    action = str(event["event_action"])
    for tries in range(1, settings.pagerduty_max_attempts + 1):
        attempts += 1
        if before is not None:
            await before(attempts)
        async with PagerDutyClient(
            url=url, max_attempts=1, timeout=settings.pagerduty_timeout_seconds
        ) as client:
            result = await client.send(event)
        if result.outcome is not Outcome.FAILED:
            rt.metrics.record_pagerduty_event(action=action, result=result.outcome.value)
            return result, attempts
        final = tries == settings.pagerduty_max_attempts
        rt.metrics.record_pagerduty_event(
            action=action, result=(Outcome.FAILED if final else Outcome.RETRY).value
        )
        if not final:
            await asyncio.sleep(
                backoff_delay(
                    tries,
                    base_delay=settings.pagerduty_retry_seconds,
                    max_delay=30 * settings.pagerduty_retry_seconds,
                )
            )
    return result, attempts


async def _routing_key(rt: Runtime, integration: Mapping[str, Any]) -> str:
    ref = ((integration.get("spec") or {}).get("pagerduty") or {}).get("routingKeySecretRef") or {}
    return await rt.kube.secret_value(
        integration["metadata"]["namespace"], str(ref.get("name")), str(ref.get("key"))
    )


def _events_url(rt: Runtime, integration: Mapping[str, Any]) -> str:
    pagerduty = (integration.get("spec") or {}).get("pagerduty") or {}
    return str(pagerduty.get("url") or rt.settings.pagerduty_events_url)


async def _patch_incident(
    rt: Runtime, incident: Mapping[str, Any], status: Mapping[str, Any]
) -> dict[str, Any]:
    meta = incident["metadata"]
    patched = await rt.kube.patch_status(LEAK_INCIDENTS, meta["namespace"], meta["name"], status)
    rt.written[(meta["namespace"], meta["name"])] = (time.monotonic(), _incident_view(patched))
    return dict(patched.get("status") or {})


# ---------------------------------------------------------------------------------------
# Resolution
# ---------------------------------------------------------------------------------------


async def _resolve_if_clean(
    rt: Runtime, index: kopf.Index[Any, Any] | None, namespace: str, integration_name: str
) -> None:
    """Resolve the integration's open incidents (and their pages) once it has run clean
    (no new LeakIncident, not suspended) for ``spec.resolveAfterCleanSeconds``."""
    async with rt.lock(namespace, integration_name):
        integration = await rt.kube.get(CAMERA_INTEGRATIONS, namespace, integration_name)
        if integration is None:
            return
        status = integration.get("status") or {}
        switch = status.get("killSwitch") or {}
        if switch.get("state") in ENGAGED_STATES:
            return
        incidents = _incident_views(rt, index, namespace, integration_name)
        open_incidents = [i for i in incidents if i["state"] != IncidentState.RESOLVED]
        if not open_incidents:
            if status.get("openIncidents"):
                await _patch_integration(rt, integration, {"openIncidents": 0})
            return
        clean_since = max([i["created"] for i in incidents] + [_epoch(switch.get("resumedAt")) or 0.0])
        clean_for = float((integration.get("spec") or {}).get("resolveAfterCleanSeconds", 300))
        if time.time() - clean_since < clean_for or not all(i["decided"] for i in open_incidents):
            return  # not clean long enough, or a new leak is still being answered
        ready = [i for i in open_incidents if i["paged"] != PageResult.PENDING]  # not with a page in flight
    resolved = 0
    for incident in ready:
        if await _resolve(rt, incident, integration):
            resolved += 1
    async with rt.lock(namespace, integration_name):
        fresh = await rt.kube.get(CAMERA_INTEGRATIONS, namespace, integration_name)
        if fresh is not None:
            await _patch_integration(rt, fresh, {"openIncidents": max(0, len(open_incidents) - resolved)})


async def _resolve(rt: Runtime, incident: Mapping[str, Any], integration: Mapping[str, Any]) -> bool:
    """Resolve one incident (its view): its page first, if it was delivered."""
    body = _view_body(incident)
    changes: dict[str, Any] = {"state": IncidentState.RESOLVED, "resolvedAt": _timestamp(time.time())}
    if incident["paged"] == PageResult.ACCEPTED:
        try:
            routing_key = await _routing_key(rt, integration)
        except KubeError as error:
            log.warning("cannot resolve the page of %s: %s", incident["name"], error)
            return False
        event = build_event(action="resolve", routing_key=routing_key, dedup_key=str(incident["dedupKey"]))
        result, _attempts = await _deliver(rt, event, _events_url(rt, integration), 0)
        if not result.delivered and result.outcome is not Outcome.REJECTED:
            return False  # the next check tries again
        changes["paged"] = {"result": PageResult.RESOLVED}
    await _patch_incident(rt, body, changes)
    rt.event(body, "Resolved", "the integration ran clean; incident resolved")
    return True


# ---------------------------------------------------------------------------------------
# Small helpers
# ---------------------------------------------------------------------------------------


def _condition(
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
        else _timestamp(time.time()),
    }
    if isinstance(generation, int):
        condition["observedGeneration"] = generation
    return condition


def _merged(base: Mapping[str, Any], changes: Mapping[str, Any]) -> dict[str, Any]:
    """RFC 7386 merge of ``changes`` into ``base`` (what the API server will store)."""
    merged = dict(base)
    for key, value in changes.items():
        if value is None:
            merged.pop(key, None)
        elif isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = _merged(merged[key], value)
        else:
            merged[key] = value
    return merged


def _dedup_key(incident: Mapping[str, Any]) -> str:
    return make_dedup_key(
        integration=str(incident["spec"]["integrationRef"]["name"]),
        incident=str(incident["metadata"]["name"]),
    )


def _created(obj: Mapping[str, Any]) -> float:
    return _epoch((obj.get("metadata") or {}).get("creationTimestamp")) or 0.0


def _recorded(incident: Mapping[str, Any]) -> float:
    times = incident["spec"].get("times") or {}
    return _epoch(times.get("recorded")) or _created(incident) or time.time()


def _timestamp(moment: float) -> str:
    return datetime.fromtimestamp(moment, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _epoch(value: object) -> float | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def _seconds_between(start: object, end: object) -> float | None:
    first, last = _epoch(start), _epoch(end)
    return None if first is None or last is None else max(0.0, last - first)
