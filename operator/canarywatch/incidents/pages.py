"""What an incident's page says: the one incident → Events API v2 mapping.

Both shells describe an incident as an ``IncidentPage`` (standalone from its
``IncidentRecord``, the operator from its LeakIncident) and get the same event:
summary, source, severity, component, group, class, time and details are decided
here only. Hashes and names only: a foreign frame may show a stranger's home, so no
pixel, thumbnail or evidence path reaches a pager.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from canarywatch.incidents.events import build_event, make_dedup_key, severity_for_verdict
from canarywatch.incidents.records import IncidentRecord

__all__ = ["IncidentPage", "PageOptions", "resolve_event", "trigger_event"]


@dataclass(frozen=True)
class PageOptions:
    """The integration's choices for its pages (``spec.pagerduty``): ``severity`` per
    verdict overriding the default, ``component`` and ``group`` overriding the viewer
    path and the probe."""

    severity: Mapping[str, str] = field(default_factory=dict)
    component: str | None = None
    group: str | None = None

    @classmethod
    def from_spec(cls, pagerduty: Mapping[str, Any] | None) -> PageOptions:
        spec = pagerduty or {}
        return cls(
            severity={str(k): str(v) for k, v in (spec.get("severity") or {}).items()},
            component=spec.get("component") or None,
            group=spec.get("group") or None,
        )


@dataclass(frozen=True)
class IncidentPage:
    """One incident, as much of it as a page may carry."""

    integration: str
    incident: str
    verdict: str
    viewer_tenant: str
    path: str  # the viewer path the leak came through (snapshot, mjpeg, events…)
    probe: str
    frame_received_at: float  # epoch seconds
    namespace: str | None = None  # operator only
    observed_tenant: str | None = None
    observed_camera: int | str | None = None
    observed_seq: int | None = None
    network_profile: str | None = None
    evidence_sha256: str | None = None
    reason: str | None = None  # why the frame is a leak (the judge's words)
    decision: str | None = None  # what the response policy decided
    mode: str | None = None
    detection_seconds: float | None = None

    @property
    def dedup_key(self) -> str:
        return make_dedup_key(integration=self.integration, incident=self.incident)

    @classmethod
    def from_record(cls, record: IncidentRecord) -> IncidentPage:
        return cls(
            integration=record.integration,
            incident=record.id,
            verdict=record.verdict,
            viewer_tenant=record.viewer_tenant,
            path=record.path,
            probe=record.probe,
            frame_received_at=record.frame_received_at,
            observed_tenant=record.observed_tenant,
            observed_camera=record.observed_camera,
            observed_seq=record.observed_seq,
            network_profile=record.network_profile,
            evidence_sha256=record.evidence.get("sha256"),
            reason=record.reason,
            mode=record.mode,
            detection_seconds=record.detection_seconds,
        )


def trigger_event(
    page: IncidentPage, *, routing_key: str, options: PageOptions | None = None
) -> dict[str, Any]:
    """The ``trigger`` event of ``page``, validated (``InvalidEventError`` otherwise)."""
    options = options or PageOptions()
    who = page.observed_tenant or "non-canary content"
    where = "/".join(part for part in (page.namespace, page.integration) if part)
    return build_event(
        action="trigger",
        routing_key=routing_key,
        dedup_key=page.dedup_key,
        summary=(
            f"canarywatch: {page.verdict} on {page.integration} — viewer {page.viewer_tenant} "
            f"was shown {who} via {page.path}"
        )[:1024],
        source=f"canarywatch/{where}",
        severity=options.severity.get(page.verdict) or severity_for_verdict(page.verdict),
        component=options.component or page.path,
        group=options.group or page.probe,
        cls=page.verdict,
        timestamp=datetime.fromtimestamp(page.frame_received_at, UTC),
        custom_details={
            "incident": page.incident,
            "namespace": page.namespace,
            "reason": page.reason,
            "decision": page.decision,
            "mode": page.mode,
            "viewer_tenant": page.viewer_tenant,
            "network_profile": page.network_profile,
            "observed_tenant": page.observed_tenant,
            "observed_camera": page.observed_camera,
            "observed_seq": page.observed_seq,
            "evidence_sha256": page.evidence_sha256,
            "detection_seconds": page.detection_seconds,
        },
    )


def resolve_event(*, routing_key: str, dedup_key: str) -> dict[str, Any]:
    """The ``resolve`` event closing the page of ``dedup_key``."""
    return build_event(action="resolve", routing_key=routing_key, dedup_key=dedup_key)
