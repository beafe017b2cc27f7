"""What an incident's page says: the one incident → Events API v2 mapping.

Both shells describe an incident as an ``IncidentPage`` (standalone from its
``IncidentRecord``, the operator from its LeakIncident) and get the same event:
summary, source, severity, component, group, class, time and details are decided
here only. Hashes and names only: a foreign frame may show a stranger's home, so no
pixel, thumbnail or evidence path reaches a pager.

A page tells the responder where to go next: ``links`` to the verdict's runbook and to
the dashboard, ``client``/``client_url`` naming canarywatch, the cluster in ``source``,
what the kill switch did (or is doing) and the ``kubectl describe`` of the incident in
``custom_details`` (Events v2 links must be http(s) URLs, so the command cannot be one).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

from canarywatch.incidents.events import build_event, make_dedup_key, severity_for_verdict
from canarywatch.incidents.records import IncidentRecord

__all__ = [
    "CLIENT",
    "RUNBOOKS",
    "IncidentPage",
    "PageOptions",
    "kill_switch_outcome",
    "resolve_event",
    "runbook_url",
    "trigger_event",
]

CLIENT = "canarywatch"
# The README's runbook of the alert that fires for the same verdict (charts' rules).
README_URL = "https://github.com/canarywatch/canarywatch/blob/main/README.md"
RUNBOOKS: Mapping[str, str] = {
    "cross_tenant": "CanarywatchCrossTenantLeak",
    "foreign": "CanarywatchForeignFrames",
    "misrouted": "CanarywatchMisroutedFrames",
    "forged": "CanarywatchForgedFrames",
    "stale": "CanarywatchStaleFrames",
}


@dataclass(frozen=True)
class PageOptions:
    """The integration's choices for its pages (``spec.pagerduty``): ``severity`` per
    verdict overriding the default, ``component`` and ``group`` overriding the viewer
    path and the probe, ``runbook_url`` overriding the README's runbook, a
    ``dashboard_url`` (``{namespace}``, ``{integration}``, ``{probe}``, ``{path}`` and
    ``{network_profile}`` are filled in), ``auto_resolve`` (False: a human resolves the
    page in PagerDuty) and the ``cluster`` the operator runs in (its own setting)."""

    severity: Mapping[str, str] = field(default_factory=dict)
    component: str | None = None
    group: str | None = None
    runbook_url: str | None = None
    dashboard_url: str | None = None
    auto_resolve: bool = True
    cluster: str | None = None

    @classmethod
    def from_spec(cls, pagerduty: Mapping[str, Any] | None, *, cluster: str | None = None) -> PageOptions:
        spec = pagerduty or {}
        return cls(
            severity={str(k): str(v) for k, v in (spec.get("severity") or {}).items()},
            component=spec.get("component") or None,
            group=spec.get("group") or None,
            runbook_url=spec.get("runbookUrl") or None,
            dashboard_url=spec.get("dashboardUrl") or None,
            auto_resolve=spec.get("autoResolve", True) is not False,
            cluster=cluster or None,
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
    kill_switch: str | None = None  # what the kill switch did, or is doing, when paged

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
            kill_switch=kill_switch_outcome(
                done=record.shutdown.done, seconds=record.shutdown.seconds, skipped=record.shutdown.skipped
            ),
        )


def kill_switch_outcome(*, done: bool, seconds: float | None = None, skipped: str | None = None) -> str:
    """The kill switch as a page tells it: done (and how fast), skipped (and why), or
    still running; a page goes out while the switch-off runs, never after it."""
    if skipped:
        return f"not engaged: {skipped}"
    if done:
        return "engaged" if seconds is None else f"engaged in {seconds:.3f} s"
    return "engaging (the page does not wait for it; the integration's status tells the outcome)"


def runbook_url(verdict: str, options: PageOptions | None = None) -> str:
    """The runbook a page links to: the integration's own, or the README's for the verdict."""
    if options is not None and options.runbook_url:
        return options.runbook_url
    alert = RUNBOOKS.get(verdict)
    return f"{README_URL}#runbook-{alert.lower()}" if alert else f"{README_URL}#runbooks"


def _dashboard_url(template: str, page: IncidentPage) -> str:
    values = {
        "namespace": page.namespace or "",
        "integration": page.integration,
        "probe": page.probe,
        "path": page.path,
        "network_profile": page.network_profile or "",
    }
    url = template
    for name, value in values.items():
        url = url.replace("{" + name + "}", quote(value, safe=""))
    return url


def trigger_event(
    page: IncidentPage, *, routing_key: str, options: PageOptions | None = None
) -> dict[str, Any]:
    """The ``trigger`` event of ``page``, validated (``InvalidEventError`` otherwise)."""
    options = options or PageOptions()
    who = page.observed_tenant or "non-canary content"
    where = "/".join(part for part in (options.cluster, page.namespace, page.integration) if part)
    links = [{"href": runbook_url(page.verdict, options), "text": f"Runbook: {page.verdict}"}]
    if options.dashboard_url:
        dashboard = _dashboard_url(options.dashboard_url, page)
        links.append({"href": dashboard, "text": f"Dashboard: {page.integration}"})
    describe = (
        f"kubectl -n {page.namespace} describe leakincident {page.incident}" if page.namespace else None
    )
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
        client=CLIENT,
        client_url=links[-1]["href"],
        links=links,
        custom_details={
            "incident": page.incident,
            "cluster": options.cluster,
            "namespace": page.namespace,
            "kill_switch": page.kill_switch,
            "describe": describe,
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
