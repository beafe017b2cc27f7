"""Suspending a CameraIntegration: ``shutdown.KillSwitch`` (the one engine) with its
record in ``status.killSwitch`` (``StatusStore``) and the Kubernetes actions of
``controller.actions``; and ``patch_integration``, the status write whose ``phase``
follows it (Suspended while engaged, else Degraded or Active).

Callers hold the integration's lock (``Runtime.lock``)."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Mapping
from dataclasses import replace
from typing import Any

from canarywatch.api import MANUAL_INCIDENT
from canarywatch.controller.actions import ActionSpecError, build_actions, resume_action, resume_hint
from canarywatch.controller.kube import CAMERA_INTEGRATIONS
from canarywatch.controller.mergepatch import merged
from canarywatch.controller.runtime import (
    IntegrationPhase,
    Runtime,
    epoch,
    integration_policy,
    is_degraded,
    kill_switch_scope,
    timestamp,
)
from canarywatch.shutdown import (
    ENGAGED_STATES,
    Action,
    ActionRecord,
    Holding,
    KillSwitch,
    KillSwitchRecord,
    Result,
    Step,
    SwitchState,
)

__all__ = ["StatusStore", "engage", "hold", "patch_integration", "record_integration", "resume"]

log = logging.getLogger(__name__)

_TEXT_LIMIT = 1024  # status.killSwitch.reason / actions[].detail / resumeHint maxLength


async def patch_integration(
    rt: Runtime, integration: Mapping[str, Any], changes: Mapping[str, Any]
) -> dict[str, Any]:
    """Merge ``changes`` into the integration's status, with the phase they imply."""
    meta = integration["metadata"]
    status = merged(integration.get("status") or {}, changes)
    phase = _phase(status)
    patched = await rt.kube.patch_status(
        CAMERA_INTEGRATIONS, meta["namespace"], meta["name"], {**changes, "phase": phase}
    )
    if (integration.get("status") or {}).get("phase") != phase:
        log.info("CameraIntegration %s/%s is %s", meta["namespace"], meta["name"], phase)
    record_integration(rt, integration, status)
    return dict(patched)


_PHASES = {
    SwitchState.ENGAGING: IntegrationPhase.SUSPENDING,
    SwitchState.ENGAGED: IntegrationPhase.SUSPENDED,
    SwitchState.ENGAGE_FAILED: IntegrationPhase.KILL_SWITCH_FAILED,
    SwitchState.RESUMING: IntegrationPhase.RESUMING,
    SwitchState.RESUME_FAILED: IntegrationPhase.RESUME_FAILED,
}


def record_integration(rt: Runtime, integration: Mapping[str, Any], status: Mapping[str, Any]) -> None:
    """The gauges that follow an integration's status: Degraded, and the kill cap."""
    meta = integration["metadata"]
    namespace, name = str(meta["namespace"]), str(meta["name"])
    rt.metrics.record_degraded(namespace=namespace, integration=name, degraded=is_degraded(status))
    kill_cap = integration_policy(integration, rt.settings)[0].kill_cap
    kills = [t for t in (epoch(k) for k in status.get("recentKills") or []) if t is not None]
    until = kill_cap.exhausted_until(kills, time.time())
    rt.metrics.record_kill_cap(namespace=namespace, integration=name, exhausted_until=until)


def _phase(status: Mapping[str, Any]) -> IntegrationPhase:
    state = (status.get("killSwitch") or {}).get("state")
    if state in _PHASES:
        return _PHASES[SwitchState(state)]
    return IntegrationPhase.DEGRADED if is_degraded(status) else IntegrationPhase.ACTIVE


class StatusStore:
    """The kill switch's ``StateStore`` in a cluster: ``status.killSwitch`` of the
    CameraIntegration. ``integration`` is its latest body (each save refreshes it).

    A failed write raises ``KubeError``, which stops the engine: an action must not act
    before what it replaces is recorded (kopf retries the handler). ``extra`` status
    changes, and ``alongside`` requests, go out with the next write; it is sent once
    ``after`` (a write that must land first) is done.
    """

    def __init__(self, rt: Runtime, integration: dict[str, Any]) -> None:
        self.rt = rt
        self.integration = integration
        meta = integration["metadata"]
        self.where = f"CameraIntegration {meta['namespace']}/{meta['name']}"
        self.extra: dict[str, Any] = {}
        self.alongside: list[Awaitable[Any]] = []
        self.after: Awaitable[Any] | None = None

    def load(self) -> KillSwitchRecord | None:
        switch = (self.integration.get("status") or {}).get("killSwitch") or {}
        if not switch.get("state") or not switch.get("incident"):
            return None
        resumed_at = epoch(switch.get("resumedAt"))
        return KillSwitchRecord(
            integration=str(self.integration["metadata"]["name"]),
            incident=str(switch["incident"]),
            reason=str(switch.get("reason") or ""),
            state=SwitchState(switch["state"]),
            engaged_at=epoch(switch.get("engagedAt")) or time.time(),
            seconds=float(switch.get("seconds") or 0),
            actions=tuple(_from_status(a) for a in switch.get("actions", [])),
            resumed_at=resumed_at,
        )

    async def save(self, record: KillSwitchRecord) -> None:
        if self.after is not None:
            await self.after  # its failure stops the engine before anything acts
            self.after = None
        changes = {**self.extra, "killSwitch": self.status_of(record)}
        self.extra = {}
        writes, self.alongside = [patch_integration(self.rt, self.integration, changes), *self.alongside], []
        self.integration = (await asyncio.gather(*writes))[0]

    def status_of(self, record: KillSwitchRecord) -> dict[str, Any]:
        status: dict[str, Any] = {
            "state": record.state.value,
            "incident": record.incident,
            "reason": record.reason[:_TEXT_LIMIT],
            "engagedAt": timestamp(record.engaged_at),
            "seconds": round(record.seconds, 3),
            "actions": [_to_status(a) for a in record.actions],
            "resumedAt": None if record.resumed_at is None else timestamp(record.resumed_at),
        }
        if record.state in (SwitchState.RESUMED, SwitchState.RESUME_FAILED):
            failed = [a.name for a in record.actions if a.result is Result.FAILED]
            hint = f"undo by hand: {', '.join(record.manual_resume)}" if record.manual_resume else ""
            hint = hint or "nothing left to undo"
            if failed:
                hint = f"{', '.join(failed)} failed to resume (retrying); " + hint
            status["resumeHint"] = hint[:_TEXT_LIMIT]
        elif record.state is not SwitchState.RESUMING:
            status["resumeHint"] = resume_hint(
                self.integration, [a.name for a in record.actions], record.incident
            )
        return status


def _to_status(record: ActionRecord) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "name": record.name,
        "type": record.kind,
        "target": record.target[:512],
        "step": record.step.value,
        "result": record.result.value,
        "detail": record.detail[:_TEXT_LIMIT],
        "attempts": record.attempts,
        "at": timestamp(record.finished_at),
    }
    if record.previous is not None:
        entry["previous"] = dict(record.previous)
    return entry


def _from_status(entry: Mapping[str, Any]) -> ActionRecord:
    previous = entry.get("previous")
    at = epoch(entry.get("at")) or 0.0
    return ActionRecord(
        name=str(entry.get("name", "")),
        kind=str(entry.get("type", "")),
        target=str(entry.get("target", "")),
        step=Step(entry.get("step", Step.ENGAGE.value)),
        result=Result(entry.get("result", Result.PENDING.value)),
        detail=str(entry.get("detail", "")),
        attempts=int(entry.get("attempts") or 0),
        started_at=at,
        finished_at=at,
        previous=dict(previous) if isinstance(previous, Mapping) else None,
    )


def _kill_switch(
    rt: Runtime, store: StatusStore, actions: list[Action], integration: Mapping[str, Any]
) -> KillSwitch:
    def resumer(record: ActionRecord, configured: Action | None) -> Action | None:
        return resume_action(record, configured, rt.kube, store.integration)

    return KillSwitch(
        actions,
        integration=str(integration["metadata"]["name"]),
        store=store,
        resumer=resumer,
        on_action=rt.metrics.killswitch_hook(
            namespace=str(integration["metadata"]["namespace"]),
            integration=str(integration["metadata"]["name"]),
        ),
        allow_empty=True,
    )


async def engage(
    rt: Runtime,
    integration: dict[str, Any],
    *,
    incident: str,
    reason: str,
    automatic: bool,
    extra: Mapping[str, Any] | None = None,
    after: Awaitable[Any] | None = None,
) -> tuple[dict[str, Any], str]:
    """Switch the integration off for ``incident`` (caller holds its lock).

    Continues an engagement of the same incident that a restart interrupted (Pending
    and Failed actions are run again; recorded ``previous`` values are kept). Returns
    the updated integration and the kill-switch state, or ``"other"`` when another
    incident's engagement holds the integration off. ``extra`` status changes go into
    the first status write, which waits for ``after`` (a write still under way that
    must land first: the actions' snapshots are read meanwhile).
    """
    meta = integration["metadata"]
    namespace, name = meta["namespace"], meta["name"]
    switch = (integration.get("status") or {}).get("killSwitch") or {}
    state = switch.get("state")
    if (state in ENGAGED_STATES and switch.get("incident") != incident) or state == SwitchState.ENGAGED:
        changes = dict(extra or {})
        if automatic and switch.get("incident") == MANUAL_INCIDENT and state in ENGAGED_STATES:
            # A leak while switched off by hand: from now on the switch holds for the
            # leak, so spec.suspended set back to false (say, by a GitOps sync) cannot
            # switch a live leak back on; only the resume annotation naming it can.
            taken = f"{reason} (already switched off by hand)"
            changes["killSwitch"] = {"incident": incident, "reason": taken[:_TEXT_LIMIT]}
            changes["killSwitch"]["resumeHint"] = resume_hint(
                integration, [str(a.get("name")) for a in switch.get("actions", [])], incident
            )
        if changes:
            if after is not None:
                await after
            integration = await patch_integration(rt, integration, changes)
        return integration, ("other" if switch.get("incident") != incident else SwitchState.ENGAGED)
    store = StatusStore(rt, integration)
    store.extra = dict(extra or {})
    store.after = after
    if state not in (SwitchState.ENGAGING, SwitchState.ENGAGE_FAILED):
        rt.holdings.pop((namespace, name), None)  # a new engagement: re-assert at once if it leaks
        now = time.time()
        if automatic:
            window = integration_policy(integration, rt.settings)[0].kill_cap.window_seconds
            recent = [
                t
                for t in (integration.get("status") or {}).get("recentKills", [])
                if (epoch(t) or 0) > now - window
            ]
            store.extra["recentKills"] = [*recent, timestamp(now)][-100:]
        log.warning("engaging the kill switch of %s/%s for %s: %s", namespace, name, incident, reason)
    try:
        actions: list[Action] = list(
            await build_actions(integration, rt.kube, may_act_in=kill_switch_scope(rt, integration))
        )
    except ActionSpecError as error:
        failed = _kill_switch(rt, store, [], integration).record or KillSwitchRecord(
            name, incident, reason, SwitchState.ENGAGE_FAILED, time.time()
        )
        await store.save(replace(failed, state=SwitchState.ENGAGE_FAILED, reason=f"{reason}; {error}"))
        rt.event(
            store.integration,
            "KillSwitchFailed",
            f"cannot build the kill-switch actions: {error}",
            warning=True,
        )
        return store.integration, SwitchState.ENGAGE_FAILED
    record = await _kill_switch(rt, store, actions, integration).engage(incident, reason[:_TEXT_LIMIT])
    integration = store.integration
    rt.metrics.record_suspended(namespace=namespace, integration=name, suspended=True)
    if record.state is SwitchState.ENGAGE_FAILED:
        failed_names = [a.name for a in record.actions if a.result is not Result.SUCCEEDED]
        message = f"kill switch for {incident} incomplete: {', '.join(failed_names)} failed; retrying"
        rt.event(integration, "KillSwitchFailed", message, warning=True)
    else:
        done = "; ".join(a.detail for a in record.actions)
        rt.event(integration, "KillSwitchEngaged", f"switched off for {incident}: {done}", warning=True)
    return integration, record.state


async def hold(
    rt: Runtime, integration: dict[str, Any], *, leaked_at: float, fresh: bool, reassert: bool = True
) -> tuple[dict[str, Any], bool]:
    """A leak reported (at ``leaked_at``) while the kill switch holds the integration off,
    or should: the kill does not hold (caller holds the lock).

    Engaged: a ``fresh`` report of a frame received after the engagement completed is
    counted in ``canarywatch_leaked_frames_while_suspended_total`` and, when the pacing
    (``shutdown.Holding``) allows, every action runs again (``KillSwitch.reassert``).
    Engaging or EngageFailed: the engagement is completed. ``reassert=False`` (dry-run,
    alert-only) only counts. Returns the integration and False while the kill switch is
    not Engaged (the caller retries).
    """
    meta = integration["metadata"]
    namespace, name = meta["namespace"], meta["name"]
    switch = (integration.get("status") or {}).get("killSwitch") or {}
    state = switch.get("state")
    holding = rt.holdings.setdefault((namespace, name), Holding())
    if state == SwitchState.ENGAGED:
        engaged_until = (epoch(switch.get("engagedAt")) or 0.0) + float(switch.get("seconds") or 0)
        if not (fresh and holding.leaked_while_engaged(received_at=leaked_at, engaged_until=engaged_until)):
            return integration, True
        rt.metrics.record_leaked_while_suspended(namespace=namespace, integration=name)
        now = time.monotonic()
        if not (reassert and holding.due(now)):
            return integration, True
        holding.note(now)
    elif state not in (SwitchState.ENGAGING, SwitchState.ENGAGE_FAILED) or not reassert:
        return integration, True  # resumed, or being resumed: a human decided
    store = StatusStore(rt, integration)
    try:
        actions: list[Action] = list(
            await build_actions(integration, rt.kube, may_act_in=kill_switch_scope(rt, integration))
        )
    except ActionSpecError as error:
        message = f"cannot build the kill-switch actions: {error}"
        rt.event(integration, "KillSwitchFailed", message, warning=True)
        return integration, False
    record = await _kill_switch(rt, store, actions, integration).reassert()
    integration = store.integration
    if record.state is SwitchState.ENGAGED:
        done = "; ".join(a.detail for a in record.actions)
        message = f"leaked frames arrived while switched off for {record.incident}: actions run again: {done}"
        rt.event(integration, "KillSwitchReasserted", message[:_TEXT_LIMIT], warning=True)
        return integration, True
    failed_names = [a.name for a in record.actions if a.result is not Result.SUCCEEDED]
    message = f"kill switch for {record.incident} does not hold: {', '.join(failed_names)} failed; retrying"
    rt.event(integration, "KillSwitchFailed", message, warning=True)
    return integration, False


async def resume(rt: Runtime, integration: dict[str, Any]) -> tuple[dict[str, Any], str]:
    """Undo every recorded action, in reverse order (caller holds the lock)."""
    meta = integration["metadata"]
    name = meta["name"]
    rt.holdings.pop((meta["namespace"], name), None)
    store = StatusStore(rt, integration)
    configured: list[Action] = []
    try:
        configured = list(
            await build_actions(integration, rt.kube, may_act_in=kill_switch_scope(rt, integration))
        )
    except ActionSpecError as error:
        # The Kubernetes actions resume from their records; only webhooks need the spec.
        log.warning("resuming %s without the configured actions: %s", name, error)
    record = await _kill_switch(rt, store, configured, integration).resume()
    integration = store.integration
    failed = record.state is SwitchState.RESUME_FAILED
    rt.metrics.record_suspended(namespace=meta["namespace"], integration=name, suspended=failed)
    if failed:
        rt.event(integration, "ResumeFailed", str(store.status_of(record)["resumeHint"]), warning=True)
    else:
        rt.event(integration, "Resumed", "; ".join(a.detail for a in record.actions) or "nothing to undo")
    return integration, record.state
