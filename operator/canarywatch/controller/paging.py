"""Paging: a LeakIncident's PagerDuty event triggered at least once, each attempt
recorded in ``status.paged`` before it is made, and ``deliver`` (retries, backoff,
metrics) for the trigger and the later resolve."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from typing import Any

from canarywatch.controller.indexes import patch_incident
from canarywatch.controller.kube import KubeError
from canarywatch.controller.runtime import PageResult, Runtime, timestamp
from canarywatch.incidents.pagerduty import (
    DeliveryResult,
    Outcome,
    PagerDutyClient,
    build_event,
    severity_for_verdict,
)
from canarywatch.retrying import backoff_delay
from canarywatch.verdicts import Verdict

__all__ = ["deliver", "events_url", "read_routing_key", "trigger"]


async def trigger(
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
        routing_key = await read_routing_key(rt, integration)
    except KubeError as error:
        failed = {"result": PageResult.FAILED, "detail": error.message, "retrying": True}
        await patch_incident(rt, incident, {"paged": failed})
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
        await patch_incident(rt, incident, {"paged": {"result": PageResult.PENDING, "attempts": attempt}})

    result, attempts = await deliver(rt, event, events_url(rt, integration), attempts, before)
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
            f"PagerDuty accepted the page (dedup key {paged['dedupKey']}) after {attempts} attempt(s)",
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


async def read_routing_key(rt: Runtime, integration: Mapping[str, Any]) -> str:
    ref = ((integration.get("spec") or {}).get("pagerduty") or {}).get("routingKeySecretRef") or {}
    return await rt.kube.secret_value(
        integration["metadata"]["namespace"], str(ref.get("name")), str(ref.get("key"))
    )


def events_url(rt: Runtime, integration: Mapping[str, Any]) -> str:
    pagerduty = (integration.get("spec") or {}).get("pagerduty") or {}
    return str(pagerduty.get("url") or rt.settings.pagerduty_events_url)
