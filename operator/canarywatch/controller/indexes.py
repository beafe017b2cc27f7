"""The kopf indexes (owned Deployments, integrations, LeakIncident views) and reading
them: ``lookup``, and ``incident_views``, which overlays the LeakIncident status this
process wrote (``patch_incident``) that the watch may not have delivered yet."""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

import kopf

from canarywatch import api
from canarywatch.controller.kube import LEAK_INCIDENTS
from canarywatch.controller.ownership import HANDOVER, pending_handover
from canarywatch.controller.runtime import IncidentState, PageResult, Runtime, creation_time

__all__ = [
    "awaits_response",
    "deployments_by_probe",
    "incident_views",
    "incidents_by_integration",
    "integrations_by_name",
    "lookup",
    "patch_incident",
    "probes_by_name",
]


def deployments_by_probe(body: kopf.Body, **_: Any) -> dict[tuple[str, str], dict[str, Any]]:
    """The Deployments a CanaryProbe owns, trimmed to what its status needs (and
    whether its next apply must first hand over what a create set: ``ownership``)."""
    meta, spec, status = body.get("metadata", {}), body.get("spec", {}), body.get("status", {})
    owner = next(
        (
            ref
            for ref in meta.get("ownerReferences") or []
            if ref.get("kind") == api.KIND_PROBE and ref.get("controller")
        ),
        None,
    )
    if owner is None:
        return {}
    # What the status summaries read (``build_probe_status``, ``cameras.camera_workloads``:
    # a camera younger than its start grace, whose rollout has not failed, is starting).
    trimmed = {
        "metadata": {
            "name": meta.get("name"),
            "creationTimestamp": meta.get("creationTimestamp"),
            "generation": meta.get("generation", 0),
            "labels": dict(meta.get("labels") or {}),
            "annotations": {
                api.CONFIG_HASH_ANNOTATION: (meta.get("annotations") or {}).get(api.CONFIG_HASH_ANNOTATION)
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
        }
        | {"conditions": [c for c in status.get("conditions") or [] if c.get("type") == "Progressing"]},
        # Created with a POST and not applied since: its next apply hands it over first.
        HANDOVER: pending_handover(meta),
    }
    return {(str(meta.get("namespace")), str(owner.get("uid"))): trimmed}


def probes_by_name(body: kopf.Body, **_: Any) -> dict[tuple[str, str], dict[str, Any]]:
    """CanaryProbes, for the status summaries: what ``summarize_probe`` reads (kopf's
    own state in the status left out)."""
    meta = body.get("metadata", {})
    status = {k: v for k, v in (body.get("status") or {}).items() if k != "kopf"}
    trimmed = {
        "metadata": {k: meta.get(k) for k in ("name", "namespace", "uid", "generation")},
        "spec": dict(body.get("spec") or {}),
        "status": status,
    }
    return {(str(meta.get("namespace")), str(meta.get("name"))): trimmed}


def integrations_by_name(body: kopf.Body, **_: Any) -> dict[tuple[str, str], dict[str, Any]]:
    meta = body.get("metadata", {})
    key = (str(meta.get("namespace")), str(meta.get("name")))
    return {key: {"metadata": dict(meta), "spec": dict(body.get("spec") or {})}}


def incidents_by_integration(body: kopf.Body, **_: Any) -> dict[tuple[str, str], dict[str, Any]]:
    """LeakIncidents by integration, as the few fields decisions and resolution read
    (the evidence, thumbnails included, stays out of memory)."""
    view = _incident_view(body)
    return {(view["namespace"], view["integration"]): view}


def awaits_response(body: Mapping[str, Any]) -> bool:
    """Whether ``body`` is a LeakIncident the operator has not yet decided on (its
    response, kill switch included, is about to run)."""
    if body.get("kind") != api.KIND_INCIDENT or body.get("metadata", {}).get("deletionTimestamp"):
        return False
    status = body.get("status") or {}
    return not status.get("decision") and status.get("state") not in (
        IncidentState.RESOLVED,
        IncidentState.UNTRUSTED,
    )


def _incident_view(body: Mapping[str, Any]) -> dict[str, Any]:
    meta, spec, status = body.get("metadata", {}), body.get("spec", {}), body.get("status") or {}
    paged = status.get("paged") or {}
    return {
        "name": meta.get("name"),
        "namespace": meta.get("namespace"),
        "uid": meta.get("uid"),
        "integration": (spec.get("integrationRef") or {}).get("name"),
        "verdict": (spec.get("observed") or {}).get("verdict"),
        "created": creation_time(body),
        "state": status.get("state"),
        "decided": bool(status.get("decision")),
        "dedupKey": paged.get("dedupKey"),
        "paged": paged.get("result"),
        "pageRetrying": bool(paged.get("retrying")),
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


def incident_views(
    rt: Runtime, index: kopf.Index[Any, Any] | None, namespace: str, integration: str
) -> list[dict[str, Any]]:
    """The integration's LeakIncidents: the index (fed by the watch) merged with what
    this process wrote since, which the watch may not have delivered yet. The operator
    is the only writer of their status, so the further-along state of the two is right."""
    views = {v["name"]: v for v in lookup(index, (namespace, integration))}
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
            # What this process wrote last is newer than the watch's copy.
            "pageRetrying": view["pageRetrying"]
            if view["paged"] == PageResult.FAILED
            else seen["pageRetrying"],
            "occurrences": max(seen["occurrences"], view["occurrences"]),
        }
    return sorted(views.values(), key=lambda v: (v["created"], v["name"]))


def _page_rank(result: object) -> int:
    return _PAGE_PROGRESS.index(result) if result in _PAGE_PROGRESS else 0


def lookup(index: kopf.Index[Any, Any] | None, key: tuple[str, str]) -> list[dict[str, Any]]:
    if index is None or key not in index:
        return []
    return [dict(item) for item in index[key]]


async def patch_incident(
    rt: Runtime, incident: Mapping[str, Any], status: Mapping[str, Any]
) -> dict[str, Any]:
    meta = incident["metadata"]
    patched = await rt.kube.patch_status(LEAK_INCIDENTS, meta["namespace"], meta["name"], status)
    rt.written[(meta["namespace"], meta["name"])] = (time.monotonic(), _incident_view(patched))
    return dict(patched.get("status") or {})
