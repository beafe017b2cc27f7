"""CameraIntegration handlers: validation of its policy, kill switch and pager (phase
Active or Degraded, the Degraded condition), the user's levers on the kill switch
(``spec.suspended`` by hand, the resume annotation), and the timer that resolves its
incidents once it runs clean."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import kopf

from canarywatch.api import MANUAL_INCIDENT, RESUME_ANNOTATION
from canarywatch.controller import manifests
from canarywatch.controller.actions import ActionSpecError, build_actions
from canarywatch.controller.incidents import prune_history, record_open_incidents, resolve_if_clean
from canarywatch.controller.indexes import incident_views
from canarywatch.controller.kube import CAMERA_INTEGRATIONS, KubeError
from canarywatch.controller.runtime import (
    RETRY_DELAY,
    IntegrationPhase,
    Runtime,
    kill_switch_scope,
    status_condition,
)
from canarywatch.controller.suspension import engage, patch_integration, resume
from canarywatch.incidents.policy import Policy, PolicyError
from canarywatch.shutdown import ENGAGED_STATES, SwitchState

__all__ = [
    "configure_integration",
    "levers_pending",
    "recheck_degraded",
    "resolve_incidents",
    "suspend_or_resume",
    "suspend_or_resume_on_event",
]

#: an engagement under way or left incomplete: ``engage`` continues it
_ENGAGING = (SwitchState.ENGAGING, SwitchState.ENGAGE_FAILED)


async def configure_integration(
    body: kopf.Body, reason: str, diff: kopf.Diff, memo: Runtime, **_: Any
) -> None:
    """Check that the policy, kill switch and pager can run; set phase and conditions."""
    changed = {tuple(d[1]) for d in diff or ()}
    if reason == "update" and changed and changed <= {("spec", "suspended")}:
        return  # suspend_or_resume's business; nothing to re-validate
    await _validate(body, memo)


async def _validate(body: kopf.Body, memo: Runtime) -> None:
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
            degraded = status_condition(
                "Degraded", "True", "ConfigurationProblem", "; ".join(problems), previous, generation
            )
        else:
            degraded = status_condition(
                "Degraded",
                "False",
                "AsExpected",
                "policy, kill switch and pager are usable",
                previous,
                generation,
            )
        held = manifests.maintenance_reason({}, fresh)
        if held:
            paused = status_condition("Maintenance", "True", "Paused", held, previous, generation)
        else:
            paused = status_condition(
                "Maintenance", "False", "Running", "no maintenance pause", previous, generation
            )
        kept = [c for t, c in previous.items() if t not in ("Degraded", "Maintenance")]
        conditions = [*kept, degraded, paused]
        await patch_integration(memo, fresh, {"observedGeneration": generation, "conditions": conditions})
    if problems and (previous.get("Degraded") or {}).get("message") != degraded["message"]:
        memo.event(body, "ConfigurationProblem", "; ".join(problems), warning=True)
    memo.metrics.prime_responses(namespace=namespace, integration=name)
    memo.metrics.record_maintenance(namespace=namespace, integration=name, paused=held is not None)
    memo.metrics.record_suspended(
        namespace=namespace,
        integration=name,
        suspended=(status.get("killSwitch") or {}).get("state") in ENGAGED_STATES,
    )
    # primed at 0: the first leaked frame through an engaged switch is a visible step
    memo.metrics.record_leaked_while_suspended(namespace=namespace, integration=name, frames=0)


async def _integration_problems(rt: Runtime, integration: Mapping[str, Any]) -> list[str]:
    spec = integration.get("spec") or {}
    problems = []
    try:
        Policy.from_mapping(spec.get("policy"), "spec.policy")
    except PolicyError as error:
        problems.append(str(error))
    try:
        await build_actions(integration, rt.kube, may_act_in=kill_switch_scope(rt, integration))
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
    """The user's two levers on the kill switch, whose latch is ``status.killSwitch``:

    - ``spec.suspended: true`` switches off by hand (unless switched off already);
      setting it back to false resumes only that hand-made switch-off;
    - the annotation ``kill-switch.canarywatch.io/resume=<incident>`` resumes a switch-off for a
      leak, when it names the incident the switch holds for (a stale one in Git cannot
      resume the next leak), and ``spec.suspended`` is not true.

    The operator never writes ``spec``: a GitOps sync of ``suspended: false`` is a no-op
    for a live leak. After a resume, incidents are resolved once the integration runs clean.
    """
    namespace, name = body["metadata"]["namespace"], body["metadata"]["name"]
    async with memo.lock(namespace, name):
        integration = await memo.kube.get(CAMERA_INTEGRATIONS, namespace, name)
        if integration is None:
            return
        by_hand = bool(integration.get("spec", {}).get("suspended"))
        switch = (integration.get("status") or {}).get("killSwitch") or {}
        state = switch.get("state")
        if by_hand and levers_pending(integration, retrying=True):  # not engaged, or unfinished
            integration, state = await engage(
                memo,
                integration,
                incident=MANUAL_INCIDENT,
                reason="spec.suspended set to true by hand",
                automatic=False,
            )
            if state != SwitchState.ENGAGED:
                raise kopf.TemporaryError(
                    "kill switch incomplete; retrying the failed actions", delay=RETRY_DELAY
                )
            return
        if state not in ENGAGED_STATES or not _resume_requested(memo, integration, by_hand=by_hand):
            return
        integration, state = await resume(memo, integration)
    if state != SwitchState.RESUMED:
        raise kopf.TemporaryError("resume incomplete; retrying the failed steps", delay=RETRY_DELAY)
    await resolve_if_clean(memo, kwargs.get("incidents_by_integration"), namespace, name)


async def suspend_or_resume_on_event(
    body: kopf.Body, memo: Runtime, type: str | None = None, **kwargs: Any
) -> None:
    """``suspend_or_resume`` on any watch event whose object asks for what its switch has
    not done (``levers_pending``): the levers' level, not only their edges.

    kopf runs a field handler when it sees the field differ from the last-handled
    configuration. While an object's earlier handlers still run (kopf runs one per
    cycle, each on the newest body), a change that lands is folded into that
    configuration unseen: ``spec.suspended: true`` set while the operator was still
    handling the integration's creation was never acted on."""
    if type == "DELETED" or not levers_pending(body):
        return
    await suspend_or_resume(body=body, memo=memo, **kwargs)


def levers_pending(integration: Mapping[str, Any], *, retrying: bool = False) -> bool:
    """Whether the integration asks its kill switch for what it has not done: switched off
    by hand but not engaged, or engaged and asked to resume (``spec.suspended`` back to
    false for a switch-off by hand, or the annotation naming the incident it holds for).
    ``retrying``: also a switch-off by hand or a resume that an action's failure or a
    restart left unfinished (never on every event: a failing action would loop). Pure;
    ``suspend_or_resume`` decides on a fresh read."""
    by_hand = bool((integration.get("spec") or {}).get("suspended"))
    switch = (integration.get("status") or {}).get("killSwitch") or {}
    state, holder = switch.get("state"), switch.get("incident")
    if by_hand:
        unfinished = holder == MANUAL_INCIDENT and state in _ENGAGING
        return state not in ENGAGED_STATES or (retrying and unfinished)
    if state != SwitchState.ENGAGED and not (retrying and state in ENGAGED_STATES):
        return False
    requested = ((integration.get("metadata") or {}).get("annotations") or {}).get(RESUME_ANNOTATION)
    return holder == MANUAL_INCIDENT or (bool(requested) and requested == holder)


def _resume_requested(rt: Runtime, integration: Mapping[str, Any], *, by_hand: bool) -> bool:
    """Whether the user asked to resume what the kill switch holds for (see
    ``suspend_or_resume``); a request that does not match is answered with an Event."""
    holder = ((integration.get("status") or {}).get("killSwitch") or {}).get("incident")
    if holder == MANUAL_INCIDENT:
        return not by_hand
    requested = ((integration.get("metadata") or {}).get("annotations") or {}).get(RESUME_ANNOTATION)
    if not requested:
        return False
    if requested != holder:
        rt.event(
            integration,
            "ResumeIgnored",
            f"{RESUME_ANNOTATION}={requested} does not name the incident the kill switch holds "
            f"for ({holder}); set it to {holder} to resume",
            warning=True,
        )
        return False
    if by_hand:
        rt.event(
            integration,
            "ResumeIgnored",
            f"spec.suspended is true: the integration is also switched off by hand; set it to "
            f"false to resume {holder}",
            warning=True,
        )
        return False
    return True


async def resolve_incidents(body: kopf.Body, status: Mapping[str, Any], memo: Runtime, **kwargs: Any) -> None:
    """Timer: a lever the kill switch has not followed is acted on (what the event
    handler could not finish: kopf does not retry event handlers); finished incidents
    beyond the history limit are deleted; an active integration with open incidents is
    checked for a clean run. Every integration's open-incidents gauge is refreshed here
    (after a restart, too)."""
    if levers_pending(body, retrying=True):
        await suspend_or_resume(body=body, memo=memo, **kwargs)
    await prune_history(memo, kwargs.get("incidents_by_integration"), body)
    index = kwargs.get("incidents_by_integration")
    namespace, name = body["metadata"]["namespace"], body["metadata"]["name"]
    record_open_incidents(memo, incident_views(memo, index, namespace, name), namespace, name)
    if not status.get("openIncidents") or (status.get("killSwitch") or {}).get("state") in ENGAGED_STATES:
        return
    await resolve_if_clean(memo, index, namespace, name)


async def recheck_degraded(body: kopf.Body, status: Mapping[str, Any], memo: Runtime, **_: Any) -> None:
    """Timer: what made an integration Degraded is often outside it (a Secret not created
    yet, a ConfigMap its patch action needs), and fixing that changes nothing kopf
    watches here; so a Degraded integration is validated again now and then."""
    if status.get("phase") != IntegrationPhase.DEGRADED:
        return
    await _validate(body, memo)
