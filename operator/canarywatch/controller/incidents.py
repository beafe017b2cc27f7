"""LeakIncident handling: the integration's policy decides (``respond_to_incident``),
the page and the kill switch run concurrently and are finished after a restart, and
``resolve_if_clean`` resolves the open incidents (and their pages) once the integration
has run clean."""

from __future__ import annotations

import asyncio
import inspect
import logging
import time
from collections import Counter
from collections.abc import Awaitable, Mapping, Sequence
from dataclasses import replace
from typing import Any

import kopf

from canarywatch.controller import manifests, paging
from canarywatch.controller.cameras import stale_excuse
from canarywatch.controller.indexes import incident_views, patch_incident
from canarywatch.controller.kube import CAMERA_INTEGRATIONS, LEAK_INCIDENTS, KubeError
from canarywatch.controller.mergepatch import merged
from canarywatch.controller.runtime import (
    RETRY_DELAY,
    IncidentState,
    PageResult,
    Runtime,
    creation_time,
    epoch,
    integration_policy,
    is_open,
    timestamp,
)
from canarywatch.controller.suspension import engage, hold, patch_integration
from canarywatch.controller.trust import Trust, verify_incident
from canarywatch.incidents.client import Outcome
from canarywatch.incidents.events import make_dedup_key
from canarywatch.incidents.pages import resolve_event
from canarywatch.incidents.policy import (
    Decision,
    IncidentKey,
    Mode,
    OpenIncident,
    PolicyEngine,
)
from canarywatch.shutdown import ENGAGED_STATES, SwitchState
from canarywatch.verdicts import Verdict

__all__ = ["prune_history", "record_open_incidents", "resolve_if_clean", "respond_to_incident"]

log = logging.getLogger(__name__)


async def respond_to_incident(body: kopf.Body, memo: Runtime, **kwargs: Any) -> None:
    """Apply the integration's policy to a new LeakIncident (or finish doing so); a
    write the API server refused is retried with the rest of the response."""
    try:
        await _respond(body, memo, **kwargs)
    except KubeError as error:
        raise kopf.TemporaryError(f"response not complete: {error}; retrying", delay=RETRY_DELAY) from error


async def _respond(body: kopf.Body, memo: Runtime, **kwargs: Any) -> None:
    incident = dict(body)
    meta, spec = incident["metadata"], incident["spec"]
    status = dict(incident.get("status") or {})
    if status.get("state") in (IncidentState.RESOLVED, IncidentState.UNTRUSTED):
        return
    namespace, integration_name = meta["namespace"], spec["integrationRef"]["name"]
    trust = None
    page: asyncio.Task[bool] | None = None
    recording: asyncio.Future[Any] | None = None
    announce: list[_Announcement] = []
    try:
        # Probes' reconciles wait meanwhile (``controller.urgency``); the page does not hold them.
        async with memo.kube.urgency.urgent(), memo.lock(namespace, integration_name):
            reading = memo.kube.get(CAMERA_INTEGRATIONS, namespace, integration_name)
            if status.get("decision"):
                integration = await reading
            else:
                # The evidence and the integration are read at once: each round trip to
                # the API server is time the leak goes on.
                trust, integration = await asyncio.gather(verify_incident(memo.kube, incident), reading)
                if not trust.verified:
                    await _distrust(memo, incident, trust, integration)
                    return
            if integration is None:
                raise kopf.TemporaryError(
                    f"CameraIntegration {integration_name} not found; waiting for it", delay=RETRY_DELAY
                )
            counters: dict[str, Any] | None = None
            if not status.get("decision"):
                views = incident_views(
                    memo, kwargs.get("incidents_by_integration"), namespace, integration_name
                )
                cameras = kwargs.get("deployments_by_probe")
                status, counters, recording, announce = _decide(
                    memo, incident, integration, views, trust, cameras
                )
            if (status.get("paged") or {}).get("result") in (PageResult.PENDING, PageResult.FAILED):
                # Concurrently with the kill switch: neither may wait for the other (the
                # page writes its progress after the decision, whose write sets it up).
                page = asyncio.ensure_future(
                    _after(recording, paging.trigger(memo, incident, integration, status))
                )
            shut_down = await _shut_down(memo, incident, integration, status, counters, recording)
    finally:
        # The decision's Events go out once the kill switch has acted: not in its way.
        # (A failed decision write fails ``_shut_down``, which awaits it: kopf retries.)
        if recording is not None and await _succeeded(recording):
            for about, reason, message, warning in announce:
                memo.event(about, reason, message, warning=warning)
        paged = await page if page is not None else True
    if not (paged and shut_down):
        what = " and ".join(w for w, ok in (("page", paged), ("kill switch", shut_down)) if not ok)
        raise kopf.TemporaryError(f"{what} not complete; retrying", delay=RETRY_DELAY)


async def _distrust(
    rt: Runtime, incident: dict[str, Any], trust: Trust, integration: Mapping[str, Any] | None
) -> None:
    """Record an incident whose creator or evidence did not verify (``controller.trust``):
    never paged (anyone able to create one could page the on-call at will) and never
    acted on; a Warning Event on it and its integration says why."""
    why = f"untrusted: {trust.reason}"[:1024]
    await patch_incident(
        rt,
        incident,
        {
            "state": IncidentState.UNTRUSTED,
            "decision": why,
            "verification": trust.to_status(),
            "paged": {"result": PageResult.SKIPPED, "detail": why},
            "shutdown": {"done": False, "skipped": why},
        },
    )
    rt.event(incident, "UntrustedIncident", f"{why}; not paged, nothing switched off", warning=True)
    if integration is not None:
        rt.event(
            integration,
            "UntrustedIncident",
            f"LeakIncident {incident['metadata']['name']} ignored: {why}",
            warning=True,
        )
    log.warning("LeakIncident %s/%s %s", incident["metadata"]["namespace"], incident["metadata"]["name"], why)


#: An Event to post once the response is under way: (about, reason, message, warning).
_Announcement = tuple[Mapping[str, Any], str, str, bool]


async def _after(first: Awaitable[Any] | None, then: Awaitable[bool]) -> bool:
    """``then``, started once ``first`` is done (``first``'s failure is ``then``'s)."""
    try:
        if first is not None:
            await first
    except BaseException:
        if inspect.iscoroutine(then):
            then.close()
        raise
    return await then


async def _succeeded(write: asyncio.Future[Any]) -> bool:
    try:
        await write
    except Exception:
        return False
    return True


def _decide(
    rt: Runtime,
    incident: dict[str, Any],
    integration: dict[str, Any],
    views: Sequence[Mapping[str, Any]],
    trust: Trust | None,
    cameras: kopf.Index[Any, Any] | None = None,
) -> tuple[dict[str, Any], dict[str, Any], asyncio.Future[Any], list[_Announcement]]:
    """Decide the response (caller holds the integration's lock): the incident's status
    as recorded, the integration's new counters (for the caller's next write of its
    status), the write recording the decision in the incident (under way: the kill
    switch reads what it replaces meanwhile, and its first write waits for it, so the
    decision is on record before the engagement, as the engagement is before any action)
    and the Events to post once the response is under way."""
    meta, spec = incident["metadata"], incident["spec"]
    namespace, name = meta["namespace"], meta["name"]
    integration_name = integration["metadata"]["name"]
    istatus = integration.get("status") or {}
    switch = istatus.get("killSwitch") or {}
    verdict = Verdict(spec["observed"]["verdict"])
    # The viewer confirmed the leak (k of its last n frames) before creating this: here
    # one LeakIncident is one confirmed leak.
    policy, policy_problem = integration_policy(integration, rt.settings, confirmed=True)
    others = [v for v in views if v["name"] != name]
    # Incidents still open from before the last resume do not absorb a new leak: if the
    # integration leaks again after being switched back on, it is switched off again.
    resumed_at = epoch(switch.get("resumedAt")) if switch.get("state") == SwitchState.RESUMED else None
    primaries: dict[Verdict, Mapping[str, Any]] = {}
    for other in others:
        if (
            is_open(other["state"])
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
        recent_kills=[t for t in (epoch(s) for s in istatus.get("recentKills", [])) if t is not None],
    )
    decision = engine.decide(name, verdict, time.time())
    # A planned pause: the frame is on record, nobody is paged, nothing is switched off.
    # Likewise a stale frame while its camera is known down: the camera is the news.
    held = manifests.maintenance_reason({}, integration)
    received = epoch(spec["times"].get("frameReceived")) or time.time()
    excused = None if held is not None else stale_excuse(rt, cameras, incident, received)
    if held is not None or excused is not None:
        decision = replace(decision, incident=None, open_incident=False, warn=False, page=False, kill=False)
    primary = primaries.get(verdict)
    status = _incident_status(decision, incident, integration, primary, policy_problem, held, excused)
    if trust is not None:
        status["verification"] = trust.to_status()
    writes = [patch_incident(rt, incident, status)]
    if decision.incident is not None and not decision.open_incident and primary is not None:
        writes.append(patch_incident(rt, _view_body(primary), {"occurrences": primary["occurrences"] + 1}))
    recording = asyncio.ensure_future(asyncio.gather(*writes))
    incident["status"] = merged(incident.get("status") or {}, status)
    still_open = sum(1 for o in others if is_open(o["state"]))
    counters = {
        "incidents": len(others) + 1,
        "openIncidents": still_open + is_open(status["state"]),
        "lastIncident": {"name": name, "verdict": verdict.value, "time": spec["times"]["frameReceived"]},
    }
    record_open_incidents(
        rt, [*others, {"verdict": verdict.value, "state": status["state"]}], namespace, integration_name
    )
    if decision.open_incident:
        detection = _seconds_between(spec["times"].get("frameReceived"), spec["times"].get("recorded"))
        rt.metrics.record_incident(
            namespace=namespace, integration=integration_name, verdict=verdict, detection_seconds=detection
        )
    log.warning("LeakIncident %s/%s (%s): %s", namespace, name, verdict, status["decision"])
    return (
        dict(incident["status"]),
        counters,
        recording,
        _announcements(decision, incident, integration, status, held, excused),
    )


def _announcements(
    decision: Decision,
    incident: Mapping[str, Any],
    integration: Mapping[str, Any],
    status: Mapping[str, Any],
    held: str | None,
    excused: str | None,
) -> list[_Announcement]:
    """The Events saying what was decided about ``incident``."""
    spec, text = incident["spec"], str(status["decision"])
    verdict = spec["observed"]["verdict"]
    if decision.open_incident:
        who = spec["observed"].get("tenant") or "non-canary content"
        return [
            (
                incident,
                "LeakDetected",
                f"{verdict} via {spec['viewer']['path']}: "
                f"viewer {spec['viewer']['tenant']} shown {who}; {text}",
                True,
            ),
            (
                integration,
                "LeakDetected",
                f"LeakIncident {incident['metadata']['name']} ({verdict}): {text}",
                True,
            ),
        ]
    if decision.warn:
        return [(incident, "LeakWarning", text, True)]
    if held is not None:
        return [(incident, "LeakDuringMaintenance", text, True)]
    if excused is not None:
        return [(incident, "StaleWhileCameraDown", text, False)]
    return []


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
    held: str | None = None,
    excused: str | None = None,
) -> dict[str, Any]:
    """The status recording ``decision``; ``primary`` is the view of the open incident
    of the same verdict that this one attaches to, if any; ``held``: why the integration
    is in maintenance, ``excused``: why its camera explains the frame (either way the
    decision is then recorded only)."""
    now = timestamp(time.time())
    own_key = _dedup_key(incident)
    text = decision.reason if policy_problem is None else f"{policy_problem}; {decision.reason}"
    if held is not None:
        text = f"maintenance ({held}): recorded only; the policy would have said: {text}"
    elif excused is not None:
        text = f"{excused}: recorded only; the policy would have said: {text}"
    status: dict[str, Any] = {"decision": text[:1024], "occurrences": 1}
    if decision.incident is None:
        # Counted, a warning, or maintenance: nothing stays open, nothing to page or switch off.
        why = (
            f"maintenance: {held}"
            if held is not None
            else excused
            if excused is not None
            else "a warning only"
            if decision.warn
            else "counted only"
        )
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
    recording: Awaitable[Any] | None = None,
) -> bool:
    """Run the kill switch if the decision says so and it has not run; False: retry
    later. ``counters`` (a new decision's) are written to the integration's status in
    the same request that starts the kill switch; ``recording`` (the decision's write)
    is awaited before any write here."""
    shutdown = status.get("shutdown") or {}
    name = incident["metadata"]["name"]
    switch = (integration.get("status") or {}).get("killSwitch") or {}
    resumed = switch.get("incident") == name and switch.get("state") in (
        SwitchState.RESUMING,
        SwitchState.RESUMED,
        SwitchState.RESUME_FAILED,
    )
    if shutdown.get("done") or shutdown.get("skipped") or resumed:
        if recording is not None:
            await recording
        if counters:
            integration = await patch_integration(rt, integration, counters)
        if resumed and not (shutdown.get("done") or shutdown.get("skipped")):
            # Resumed by hand before this response finished: that human decision stands.
            held = {"done": False, "skipped": "resumed before it completed"}
            await patch_incident(rt, incident, {"shutdown": held})
            return True
        return await _hold(rt, incident, integration, status, fresh=counters is not None)
    reason = f"{incident['spec']['observed']['verdict']}: {status.get('decision', '')}"
    integration, state = await engage(
        rt, integration, incident=name, reason=reason, automatic=True, extra=counters, after=recording
    )
    if recording is not None:
        await recording  # engage() wrote nothing when another incident holds the switch
    now = time.time()
    if state == "other":
        other = ((integration.get("status") or {}).get("killSwitch") or {}).get("incident")
        skipped = f"already switched off by {other}"
        if other == name:
            skipped = "already switched off by hand; the kill switch now holds for this incident"
        await patch_incident(
            rt, incident, {"shutdown": {"done": True, "at": timestamp(now), "skipped": skipped}}
        )
        return await _hold(rt, incident, integration, status, fresh=counters is not None)
    if state != SwitchState.ENGAGED:
        return False
    seconds = max(0.0, now - _recorded(incident))
    await patch_incident(
        rt, incident, {"shutdown": {"done": True, "at": timestamp(now), "seconds": round(seconds, 3)}}
    )
    rt.metrics.record_shutdown(
        namespace=integration["metadata"]["namespace"],
        integration=integration["metadata"]["name"],
        seconds=seconds,
    )
    return True


async def _hold(
    rt: Runtime,
    incident: Mapping[str, Any],
    integration: dict[str, Any],
    status: Mapping[str, Any],
    *,
    fresh: bool,
) -> bool:
    """An open leak while another incident's kill switch holds the integration off (or
    should): it does not hold. Re-asserted under ``enforce`` only (dry-run and
    alert-only run no action); False: retry later."""
    switch = (integration.get("status") or {}).get("killSwitch") or {}
    if not is_open(status.get("state")) or switch.get("incident") == incident["metadata"]["name"]:
        return True
    enforce = integration_policy(integration, rt.settings)[0].mode is Mode.ENFORCE
    leaked_at = epoch((incident["spec"].get("times") or {}).get("frameReceived")) or time.time()
    return (await hold(rt, integration, leaked_at=leaked_at, fresh=fresh, reassert=enforce))[1]


async def resolve_if_clean(
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
        # An untrusted incident was never acted on: it must not hold the resolution back.
        incidents = [
            i
            for i in incident_views(rt, index, namespace, integration_name)
            if i["state"] != IncidentState.UNTRUSTED
        ]
        open_incidents = [i for i in incidents if is_open(i["state"])]
        if not open_incidents:
            if status.get("openIncidents"):
                await patch_integration(rt, integration, {"openIncidents": 0})
            return
        clean_since = max([i["created"] for i in incidents] + [epoch(switch.get("resumedAt")) or 0.0])
        clean_for = float((integration.get("spec") or {}).get("resolveAfterCleanSeconds", 300))
        if time.time() - clean_since < clean_for or not all(i["decided"] for i in open_incidents):
            return  # not clean long enough, or a new leak is still being answered
        # Not with a page in flight or still to be retried: resolving under it would leave
        # the PagerDuty incident that the retry opens open for good.
        ready = [i for i in open_incidents if not page_outstanding(i)]
    for incident in ready:
        await _resolve(rt, incident, integration)
    async with rt.lock(namespace, integration_name):
        # Counted afresh: a leak decided while the resolve events were out is open too.
        views = incident_views(rt, index, namespace, integration_name)
        record_open_incidents(rt, views, namespace, integration_name)
        still_open = sum(1 for i in views if is_open(i["state"]))
        fresh = await rt.kube.get(CAMERA_INTEGRATIONS, namespace, integration_name)
        if fresh is not None:
            await patch_integration(rt, fresh, {"openIncidents": still_open})


async def prune_history(
    rt: Runtime, index: kopf.Index[Any, Any] | None, integration: Mapping[str, Any]
) -> int:
    """Delete the oldest finished (Resolved or Untrusted) LeakIncidents of the
    integration beyond ``spec.incidentHistoryLimit``; how many were deleted. Open ones
    are never deleted: they are what resolution and PagerDuty still refer to. (In
    alert-only mode each viewer reports a leak still going on again every few minutes,
    each incident up to 64 KiB of evidence: without a limit they pile up in etcd.)"""
    meta = integration["metadata"]
    namespace, name = meta["namespace"], meta["name"]
    limit = int((integration.get("spec") or {}).get("incidentHistoryLimit", 50))
    finished = [
        v
        for v in incident_views(rt, index, namespace, name)
        if v["state"] in (IncidentState.RESOLVED, IncidentState.UNTRUSTED)
    ]
    pruned = 0
    for view in finished[: max(0, len(finished) - limit)]:  # oldest first
        try:
            await rt.kube.delete(LEAK_INCIDENTS, namespace, view["name"], uid=view["uid"])
        except KubeError as error:
            log.warning("cannot delete LeakIncident %s/%s: %s", namespace, view["name"], error)
            continue
        rt.written.pop((namespace, view["name"]), None)
        pruned += 1
    if pruned:
        log.info(
            "deleted %d finished LeakIncidents of %s/%s (history limit %d)", pruned, namespace, name, limit
        )
    return pruned


def record_open_incidents(
    rt: Runtime, views: Sequence[Mapping[str, Any]], namespace: str, integration: str
) -> None:
    """``canarywatch_open_incidents`` of one integration, by verdict, from its incidents."""
    by_verdict = Counter(str(v["verdict"]) for v in views if is_open(v["state"]))
    rt.metrics.record_open_incidents(namespace=namespace, integration=integration, by_verdict=by_verdict)


def page_outstanding(view: Mapping[str, Any]) -> bool:
    """The incident's page is being sent, or failed and will be sent again."""
    paged = view["paged"]
    return paged == PageResult.PENDING or (paged == PageResult.FAILED and bool(view["pageRetrying"]))


async def _resolve(rt: Runtime, incident: Mapping[str, Any], integration: Mapping[str, Any]) -> bool:
    """Resolve one incident (its view): its page first, if it was delivered."""
    body = _view_body(incident)
    changes: dict[str, Any] = {"state": IncidentState.RESOLVED, "resolvedAt": timestamp(time.time())}
    if incident["paged"] == PageResult.ACCEPTED and paging.page_options(rt, integration).auto_resolve:
        try:
            routing_key = await paging.read_routing_key(rt, integration)
        except KubeError as error:
            log.warning("cannot resolve the page of %s: %s", incident["name"], error)
            return False
        event = resolve_event(routing_key=routing_key, dedup_key=str(incident["dedupKey"]))
        result = await paging.deliver(rt, event, paging.events_url(rt, integration))
        if not result.delivered and result.outcome is not Outcome.REJECTED:
            return False  # the next check tries again
        changes["paged"] = {"result": PageResult.RESOLVED}
    await patch_incident(rt, body, changes)
    left = "" if "paged" in changes or incident["paged"] != PageResult.ACCEPTED else "; its page stays open"
    rt.event(body, "Resolved", f"the integration ran clean; incident resolved{left}")
    return True


def _dedup_key(incident: Mapping[str, Any]) -> str:
    return make_dedup_key(
        integration=str(incident["spec"]["integrationRef"]["name"]),
        incident=str(incident["metadata"]["name"]),
    )


def _recorded(incident: Mapping[str, Any]) -> float:
    times = incident["spec"].get("times") or {}
    return epoch(times.get("recorded")) or creation_time(incident) or time.time()


def _seconds_between(start: object, end: object) -> float | None:
    first, last = epoch(start), epoch(end)
    return None if first is None or last is None else max(0.0, last - first)
