"""The CanaryProbe's ``status``, from what exists in the cluster."""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from canarywatch.controller.manifests.names import camera_name, expected_workload_names
from canarywatch.controller.manifests.probe import builder, parse_probe
from canarywatch.verdicts import Verdict

__all__ = ["build_probe_status"]


@builder
def build_probe_status(
    probe: Mapping[str, Any],
    *,
    deployments: Iterable[Mapping[str, Any]],
    keyring_tenants: Collection[str],
    now: datetime,
    verdict_counts: Mapping[str, int] | None = None,
    last_frame_time: datetime | None = None,
    problems: Sequence[str] = (),
    previous: Mapping[str, Any] | None = None,
    maintenance: str | None = None,
) -> dict[str, Any]:
    """The CanaryProbe's ``status`` from what exists in the cluster.

    ``maintenance``: why the probe is paused (``workloads.maintenance_reason``), shown
    as the condition Paused.

    ``deployments`` are the live Deployments labelled with the probe (others and stale
    ones are ignored); ``keyring_tenants`` the tenants whose keyring Secret exists;
    ``verdict_counts`` the totals aggregated from the agents (None keeps the previous
    counts); ``problems`` what stops the probe from running as specified (a missing
    integration, a ``BuildError``'s message). ``previous`` is the current status:
    conditions keep their ``lastTransitionTime`` while their status holds, and
    ``lastFrameTime`` never moves backwards.
    """
    spec = parse_probe(probe)
    previous = previous or {}
    expected = expected_workload_names(spec)
    live = {d.get("metadata", {}).get("name"): d for d in deployments}
    ready = [name for name in expected if name in live and _deployment_ready(live[name])]
    waiting = [name for name in expected if name not in ready]
    # A tenant is up once its key exists and the camera pod (all tenants') is deployed.
    camera_up = camera_name(spec.name) in live
    tenants_up = sum(1 for t in spec.tenant_ids if t in keyring_tenants) if camera_up else 0
    generation = probe.get("metadata", {}).get("generation")

    status: dict[str, Any] = {
        "tenants": tenants_up,
        "workloads": {"desired": len(expected), "ready": len(ready)},
        "ready": f"{len(ready)}/{len(expected)}",
        "lastSummaryTime": _timestamp(now),
    }
    if isinstance(generation, int):
        status["observedGeneration"] = generation
    counts = _verdict_counts(verdict_counts) if verdict_counts is not None else previous.get("verdictCounts")
    if counts is not None:
        status["verdictCounts"] = dict(counts)
    last_frame = _latest(last_frame_time, previous.get("lastFrameTime"))
    if last_frame is not None:
        status["lastFrameTime"] = last_frame

    conditions = {c.get("type"): c for c in previous.get("conditions", []) if isinstance(c, Mapping)}
    if problems:
        degraded = ("True", "ConfigurationProblem", "; ".join(problems))
    else:
        degraded = ("False", "AsExpected", "the probe runs as specified")
    if problems:
        readiness = ("False", "ConfigurationProblem", "workloads cannot be built: see the Degraded condition")
    elif not waiting:
        readiness = ("True", "WorkloadsReady", f"all {len(expected)} workloads are ready")
    else:
        shown = ", ".join(waiting[:5]) + (f" and {len(waiting) - 5} more" if len(waiting) > 5 else "")
        readiness = ("False", "WorkloadsNotReady", f"{len(ready)}/{len(expected)} ready; waiting for {shown}")
    status["conditions"] = [
        _condition("Ready", *readiness, previous=conditions.get("Ready"), now=now, generation=generation),
        _condition(
            "Degraded", *degraded, previous=conditions.get("Degraded"), now=now, generation=generation
        ),
        _condition(
            "Paused",
            *(
                ("True", "Maintenance", maintenance)
                if maintenance
                else ("False", "Running", "the probe runs")
            ),
            previous=conditions.get("Paused"),
            now=now,
            generation=generation,
        ),
        # Conditions other summaries own (CoverageSufficient) stay as they were.
        *(c for t, c in conditions.items() if t not in ("Ready", "Degraded", "Paused")),
    ]
    return status


def _deployment_ready(deployment: Mapping[str, Any]) -> bool:
    """Rolled out and available, as ``kubectl rollout status`` judges it."""
    meta, spec, status = (deployment.get(k) or {} for k in ("metadata", "spec", "status"))
    wanted = spec.get("replicas", 1)
    return bool(
        status.get("observedGeneration", 0) >= meta.get("generation", 0)
        and status.get("updatedReplicas", 0) >= wanted
        and status.get("replicas", 0) <= status.get("updatedReplicas", 0)
        and status.get("availableReplicas", 0) >= wanted
    )


def _verdict_counts(counts: Mapping[str, int]) -> dict[str, int]:
    known = {v.value for v in Verdict}
    unknown = sorted(set(counts) - known)
    if unknown:
        raise ValueError(f"unknown verdicts in verdict_counts: {', '.join(unknown)}")
    return {verdict: int(counts[verdict]) for verdict in sorted(counts)}


def _condition(
    kind: str,
    status: str,
    reason: str,
    message: str,
    *,
    previous: Mapping[str, Any] | None,
    now: datetime,
    generation: object,
) -> dict[str, Any]:
    unchanged = (
        previous is not None and previous.get("status") == status and previous.get("lastTransitionTime")
    )
    condition: dict[str, Any] = {
        "type": kind,
        "status": status,
        "reason": reason,
        "message": message[:1024],
        "lastTransitionTime": previous["lastTransitionTime"] if unchanged and previous else _timestamp(now),
    }
    if isinstance(generation, int):
        condition["observedGeneration"] = generation
    return condition


def _timestamp(moment: datetime) -> str:
    if moment.tzinfo is None:
        raise ValueError("timestamps must be timezone-aware (use datetime.now(UTC))")
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _latest(new: datetime | None, old: object) -> str | None:
    candidates = [] if new is None else [_timestamp(new)]
    if isinstance(old, str):
        candidates.append(old)
    # RFC 3339 in UTC with a fixed width compares correctly as text.
    return max(candidates) if candidates else None
