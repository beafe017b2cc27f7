"""Paging: a LeakIncident's page, triggered at least once through the one delivery path
(``incidents.client``), each attempt recorded in ``status.paged`` before it is made.

The event is ``incidents.pages``'s, the same as standalone mode's; only where delivery
is recorded differs: ``PagedStatus``, an outbox whose record is the incident's status."""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from canarywatch.controller.indexes import patch_incident
from canarywatch.controller.kube import KubeError
from canarywatch.controller.runtime import PageResult, Runtime, epoch, integration_policy, timestamp
from canarywatch.incidents.client import DeliveryResult, Outcome, PagerDutyClient
from canarywatch.incidents.outbox import MemoryOutbox, OutboxEntry, OutboxStore
from canarywatch.incidents.pages import IncidentPage, PageOptions, kill_switch_outcome, trigger_event

__all__ = [
    "PagedStatus",
    "deliver",
    "events_url",
    "incident_page",
    "page_options",
    "read_routing_key",
    "trigger",
]


class PagedStatus(MemoryOutbox):
    """The outbox of one LeakIncident's page: before each attempt, ``status.paged``
    says Pending with the attempt number (counting the attempts made before: by an
    earlier kopf retry, or an operator that crashed)."""

    def __init__(self, rt: Runtime, incident: dict[str, Any], attempts_before: int) -> None:
        super().__init__()
        self.rt = rt
        self.incident = incident
        self.attempts_before = attempts_before

    async def attempting(self, entry: OutboxEntry, attempt: int) -> None:
        pending = {"result": PageResult.PENDING, "attempts": self.attempts_before + attempt}
        await patch_incident(self.rt, self.incident, {"paged": pending})


def incident_page(
    rt: Runtime, incident: Mapping[str, Any], integration: Mapping[str, Any], status: Mapping[str, Any]
) -> IncidentPage:
    """A LeakIncident as the page mapping sees it."""
    spec, meta = incident["spec"], incident["metadata"]
    observed, viewer, times = spec["observed"], spec["viewer"], spec.get("times") or {}
    shutdown = status.get("shutdown") or {}
    received, recorded = epoch(times.get("frameReceived")), epoch(times.get("recorded"))
    return IncidentPage(
        integration=str(integration["metadata"]["name"]),
        incident=str(meta["name"]),
        namespace=str(meta["namespace"]),
        verdict=str(observed["verdict"]),
        viewer_tenant=str(viewer["tenant"]),
        path=str(viewer["path"]),
        probe=str(spec["probeRef"]["name"]),
        frame_received_at=received if received is not None else time.time(),
        observed_tenant=observed.get("tenant"),
        observed_camera=observed.get("camera"),
        observed_seq=observed.get("seq"),
        network_profile=viewer.get("networkProfile"),
        evidence_sha256=(spec.get("evidence") or {}).get("sha256"),
        reason=observed.get("reason"),
        decision=status.get("decision"),
        mode=integration_policy(integration, rt.settings)[0].mode.value,
        detection_seconds=None if received is None or recorded is None else max(0.0, recorded - received),
        kill_switch=kill_switch_outcome(
            done=bool(shutdown.get("done")), seconds=shutdown.get("seconds"), skipped=shutdown.get("skipped")
        ),
    )


def page_options(rt: Runtime, integration: Mapping[str, Any]) -> PageOptions:
    """The integration's ``spec.pagerduty`` choices, with the operator's cluster name."""
    pagerduty = (integration.get("spec") or {}).get("pagerduty") or {}
    return PageOptions.from_spec(pagerduty, cluster=rt.settings.cluster_name)


async def trigger(
    rt: Runtime, incident: dict[str, Any], integration: dict[str, Any], status: Mapping[str, Any]
) -> bool:
    """Trigger the incident's page, at least once: ``paged`` says Pending (with the
    attempt number) before each attempt and Accepted after. False: retry later."""
    paged = dict(status.get("paged") or {})
    try:
        routing_key = await read_routing_key(rt, integration)
    except KubeError as error:
        failed = {"result": PageResult.FAILED, "detail": error.message, "retrying": True}
        await patch_incident(rt, incident, {"paged": failed})
        rt.event(incident, "PageFailed", error.message, warning=True)
        return False
    event = trigger_event(
        incident_page(rt, incident, integration, status),
        routing_key=routing_key,
        options=page_options(rt, integration),
    )
    store = PagedStatus(rt, incident, int(paged.get("attempts") or 0))
    result = await deliver(rt, event, events_url(rt, integration), store)
    attempts = store.attempts_before + result.attempts
    if result.delivered:
        await patch_incident(
            rt,
            incident,
            {
                "paged": {
                    "result": PageResult.ACCEPTED,
                    "at": timestamp(time.time()),
                    "attempts": attempts,
                    "detail": f"HTTP {result.status}",
                    "retrying": None,
                }
            },
        )
        rt.event(
            incident,
            "Paged",
            f"PagerDuty accepted the page (dedup key {event['dedup_key']}) after {attempts} attempt(s)",
        )
        return True
    detail = result.reason or f"HTTP {result.status}"
    # A rejected event (400) will not get better by resending it; anything else is retried,
    # and an incident whose page is still to be retried is not resolved under it.
    final = result.outcome is Outcome.REJECTED
    failed = {"result": PageResult.FAILED, "attempts": attempts, "detail": detail, "retrying": not final}
    await patch_incident(rt, incident, {"paged": failed})
    rt.event(incident, "PageFailed", detail, warning=True)
    return final


async def deliver(
    rt: Runtime, event: Mapping[str, Any], url: str, outbox: OutboxStore | None = None
) -> DeliveryResult:
    """Send ``event`` through the one delivery path: retries and backoff as the
    operator's settings say, metrics as standalone mode counts them."""
    settings = rt.settings
    async with PagerDutyClient(
        url=url,
        outbox=outbox if outbox is not None else MemoryOutbox(),
        timeout=settings.pagerduty_timeout_seconds,
        max_attempts=settings.pagerduty_max_attempts,
        base_delay=settings.pagerduty_retry_seconds,
        max_delay=30 * settings.pagerduty_retry_seconds,
        on_result=rt.metrics.pagerduty_hook(),
    ) as client:
        return await client.send(event)


async def read_routing_key(rt: Runtime, integration: Mapping[str, Any]) -> str:
    ref = ((integration.get("spec") or {}).get("pagerduty") or {}).get("routingKeySecretRef") or {}
    return await rt.kube.secret_value(
        integration["metadata"]["namespace"], str(ref.get("name")), str(ref.get("key"))
    )


def events_url(rt: Runtime, integration: Mapping[str, Any]) -> str:
    pagerduty = (integration.get("spec") or {}).get("pagerduty") or {}
    return str(pagerduty.get("url") or rt.settings.pagerduty_events_url)
