"""Whether a probe's canary cameras run, from the camera Deployments the operator already
watches (the ``deployments_by_probe`` index; no polling): the probe's ``CameraDown``
condition, ``canarywatch_camera_up``, a warning Event when one goes down, and the
probe's ``CameraOutages`` (``canarywatch.outages``), which the LeakIncident handler asks
before it acts on a stale frame.

A camera workload is found by its labels (role ``camera``), not by its name or count:
one Deployment per tenant carries that tenant (its tenant label); one without a tenant
label carries every tenant of the probe. A workload that should run a pod
(``spec.replicas`` > 0) and has none available is down, and so are all the tenants it
carries; one scaled to zero (a maintenance pause) is not expected to run.

A Deployment younger than the start grace (``camera_start_grace_seconds``) that has no
pod available yet is starting, not down: a cold start of many probes would otherwise
flag every new camera (a Warning Event and a status patch each) before its pod could
have started. Its rollout past ``progressDeadlineSeconds`` (``Progressing`` False) is
down at once.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import kopf

from canarywatch.api import LABEL_PROBE, LABEL_ROLE, LABEL_TENANT, AgentRole, label_value
from canarywatch.controller.runtime import Runtime, epoch, status_condition
from canarywatch.outages import CameraOutages
from canarywatch.spec import ProbeSpec
from canarywatch.verdicts import Verdict

__all__ = ["CameraWorkload", "camera_workloads", "observe_cameras", "outages_for", "stale_excuse"]

_COMPONENT = "app.kubernetes.io/component"


@dataclass(frozen=True)
class CameraWorkload:
    """One camera Deployment of a probe, as its status says."""

    name: str
    tenants: tuple[str, ...]
    wanted: int
    available: int
    #: created within the start grace, its rollout not failed: no pod is expected yet
    starting: bool = False

    @property
    def down(self) -> bool:
        return self.wanted > 0 and self.available == 0 and not self.starting

    @property
    def reason(self) -> str:
        return f"Deployment {self.name} has {self.available}/{self.wanted} pods available"


def camera_workloads(
    tenants: Sequence[str],
    deployments: Sequence[Mapping[str, Any]],
    *,
    now: float | None = None,
    start_grace: float = 0.0,
) -> list[CameraWorkload]:
    """The probe's camera workloads among ``deployments`` (its own, as the index keeps
    them), each with the tenants of ``tenants`` it carries; at ``now``, those created less
    than ``start_grace`` seconds before are starting."""
    by_label = {label_value(t): t for t in tenants}
    found = []
    for deployment in deployments:
        meta = deployment.get("metadata") or {}
        labels = meta.get("labels") or {}
        if AgentRole.CAMERA not in (labels.get(LABEL_ROLE), labels.get(_COMPONENT)):
            continue
        tenant = labels.get(LABEL_TENANT)
        carried = tuple(tenants) if tenant is None else ((by_label[tenant],) if tenant in by_label else ())
        if not carried:
            continue  # a tenant the probe no longer has: the reconciler removes it
        found.append(
            CameraWorkload(
                name=str(meta.get("name")),
                tenants=carried,
                wanted=int((deployment.get("spec") or {}).get("replicas", 1) or 0),
                available=int((deployment.get("status") or {}).get("availableReplicas", 0) or 0),
                starting=_starting(deployment, now, start_grace),
            )
        )
    return sorted(found, key=lambda w: w.name)


def _starting(deployment: Mapping[str, Any], now: float | None, start_grace: float) -> bool:
    if now is None or start_grace <= 0:
        return False
    conditions = (deployment.get("status") or {}).get("conditions") or []
    if any(c.get("type") == "Progressing" and c.get("status") == "False" for c in conditions):
        return False  # ProgressDeadlineExceeded: the rollout has failed
    created = epoch((deployment.get("metadata") or {}).get("creationTimestamp"))
    return created is not None and now - created < start_grace


def _down_tenants(workloads: Sequence[CameraWorkload]) -> dict[str, tuple[str, str]]:
    """Each tenant carried by a workload that is down: (the workload, why)."""
    return {t: (w.name, w.reason) for w in workloads if w.down for t in w.tenants}


def outages_for(rt: Runtime, namespace: str, probe: str) -> CameraOutages:
    return rt.outages.setdefault((namespace, probe), CameraOutages())


def observe_cameras(
    rt: Runtime,
    probe: Mapping[str, Any],
    spec: ProbeSpec,
    deployments: Sequence[Mapping[str, Any]],
    summary: Mapping[str, Any],
) -> dict[str, Any]:
    """The probe's cameras now: its outages and gauge updated, a warning Event for each
    camera that went down, and the status fields (the ``CameraDown`` condition)."""
    now = time.time()
    grace = rt.settings.camera_start_grace_seconds
    workloads = camera_workloads(spec.tenant_ids, deployments, now=now, start_grace=grace)
    down = _down_tenants(workloads)
    went_down, _ = outages_for(rt, spec.namespace, spec.name).update(down, now)
    running = {t: t not in down for w in workloads if w.wanted > 0 for t in w.tenants}
    rt.metrics.record_cameras(
        namespace=spec.namespace, integration=spec.integration, probe=spec.name, up=running
    )
    broken = [w for w in workloads if w.down]
    message = "; ".join(f"{w.reason} (tenants {', '.join(w.tenants)})" for w in broken)
    if went_down:
        rt.event(
            probe, "CameraDown", f"{message}: stale frames of these tenants are not alerted on", warning=True
        )
    if broken:
        state = ("True", "CameraUnavailable", message)
    elif not running:
        state = ("False", "NoCameraRunning", "no camera is expected to run (none built yet, or paused)")
    elif any(w.starting and w.available == 0 for w in workloads):
        starting = ", ".join(w.name for w in workloads if w.starting and w.available == 0)
        state = ("False", "CamerasStarting", f"{starting} starting (no pod available yet)")
    else:
        state = ("False", "CamerasAvailable", f"all {len(running)} tenants' cameras are available")
    conditions = {c.get("type"): c for c in summary.get("conditions", [])}
    condition = status_condition("CameraDown", *state, conditions, probe["metadata"].get("generation"))
    kept = [c for t, c in conditions.items() if t != "CameraDown"]
    return {"conditions": [*kept, condition]}


def stale_excuse(
    rt: Runtime, index: kopf.Index[Any, Any] | None, incident: Mapping[str, Any], received_at: float
) -> str | None:
    """Why a LeakIncident's frame (received at ``received_at``) is not acted on because
    its viewer tenant's camera is down (only a stale one; ``canarywatch.outages``), from
    the index as it is now."""
    spec = incident.get("spec") or {}
    namespace = str(incident["metadata"]["namespace"])
    probe = str((spec.get("probeRef") or {}).get("name", ""))
    tenant = str((spec.get("viewer") or {}).get("tenant", ""))
    verdict = str((spec.get("observed") or {}).get("verdict", ""))
    if verdict != Verdict.STALE:
        return None
    outages = outages_for(rt, namespace, probe)
    if outages.explains(verdict, tenant, received_at) is None and index is not None:
        # Fresher than the last summary: the probe's Deployments as the watch has them now.
        owned = [
            dict(d)
            for key in list(index)
            if key[0] == namespace
            for d in index[key]
            if (d.get("metadata") or {}).get("labels", {}).get(LABEL_PROBE) == label_value(probe)
        ]
        if owned:
            grace = rt.settings.camera_start_grace_seconds
            now = time.time()
            seen = _down_tenants(camera_workloads((tenant,), owned, now=now, start_grace=grace))
            outages.update(seen | _others(outages, tenant), time.time())
    return outages.explains(verdict, tenant, received_at)


def _others(outages: CameraOutages, tenant: str) -> dict[str, tuple[str, str]]:
    """The outages of the other tenants, as they were (a refresh for one tenant keeps them)."""
    return {t: (o.camera, o.reason) for t, o in outages.down.items() if t != tenant}
