"""Suspending a CameraIntegration: the kill switch engaged and resumed, its progress in
``status.killSwitch``, and ``patch_integration``, the status write whose ``phase``
follows it (Suspended while engaged, else Degraded or Active).

Callers hold the integration's lock (``Runtime.lock``)."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Iterable, Mapping, Sequence
from typing import Any

from canarywatch.controller.actions import (
    ActionRecord,
    ActionSpecError,
    KubeAction,
    Result,
    build_actions,
    engage_actions,
    resume_action,
    resume_actions,
    resume_hint,
)
from canarywatch.controller.kube import CAMERA_INTEGRATIONS
from canarywatch.controller.runtime import (
    ENGAGED_STATES,
    Phase,
    Runtime,
    SwitchState,
    epoch,
    integration_policy,
    is_degraded,
    timestamp,
)
from canarywatch.shutdown import ActionContext, Step

__all__ = ["engage", "patch_integration", "resume"]

log = logging.getLogger(__name__)


async def patch_integration(
    rt: Runtime, integration: Mapping[str, Any], changes: Mapping[str, Any]
) -> dict[str, Any]:
    """Merge ``changes`` into the integration's status, with the phase they imply."""
    meta = integration["metadata"]
    status = _merged(integration.get("status") or {}, changes)
    phase = _phase(status)
    patched = await rt.kube.patch_status(
        CAMERA_INTEGRATIONS, meta["namespace"], meta["name"], {**changes, "phase": phase}
    )
    if (integration.get("status") or {}).get("phase") != phase:
        log.info("CameraIntegration %s/%s is %s", meta["namespace"], meta["name"], phase)
    return dict(patched)


def _phase(status: Mapping[str, Any]) -> Phase:
    if (status.get("killSwitch") or {}).get("state") in ENGAGED_STATES:
        return Phase.SUSPENDED
    return Phase.DEGRADED if is_degraded(status) else Phase.ACTIVE


def _merged(base: Mapping[str, Any], changes: Mapping[str, Any]) -> dict[str, Any]:
    """RFC 7386 merge of ``changes`` into ``base`` (what the API server will store)."""
    merged = dict(base)
    for key, value in changes.items():
        if value is None:
            merged.pop(key, None)
        elif isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = _merged(merged[key], value)
        else:
            merged[key] = value
    return merged


async def engage(
    rt: Runtime,
    integration: dict[str, Any],
    *,
    incident: str,
    reason: str,
    automatic: bool,
    extra: Mapping[str, Any] | None = None,
) -> tuple[dict[str, Any], str]:
    """Switch the integration off for ``incident`` (caller holds its lock).

    Continues an engagement of the same incident that a restart interrupted (Pending
    and Failed actions are run again; recorded ``previous`` values are kept). Returns
    the updated integration and the kill-switch state, or ``"other"`` when another
    incident's engagement holds the integration off. ``extra`` status changes go into
    the first status write.
    """
    meta = integration["metadata"]
    namespace, name = meta["namespace"], meta["name"]
    switch = (integration.get("status") or {}).get("killSwitch") or {}
    state = switch.get("state")
    if (state in ENGAGED_STATES and switch.get("incident") != incident) or state == SwitchState.ENGAGED:
        if extra:
            integration = await patch_integration(rt, integration, extra)
        return integration, ("other" if switch.get("incident") != incident else SwitchState.ENGAGED)
    continuing = state in (SwitchState.ENGAGING, SwitchState.ENGAGE_FAILED)
    records = [ActionRecord.from_status(a) for a in switch.get("actions", [])] if continuing else []
    now = time.time()
    changes: dict[str, Any] = dict(extra or {})
    if not continuing:
        changes["killSwitch"] = {
            "state": SwitchState.ENGAGING,
            "incident": incident,
            "reason": reason[:1024],
            "engagedAt": timestamp(now),
            "seconds": 0,
            "actions": [],
            "resumedAt": None,
            "resumeHint": resume_hint(integration, []),
        }
        if automatic:
            window = integration_policy(integration, rt.settings)[0].kill_cap.window_seconds
            recent = [
                t
                for t in (integration.get("status") or {}).get("recentKills", [])
                if (epoch(t) or 0) > now - window
            ]
            changes["recentKills"] = [*recent, timestamp(now)][-100:]
        log.warning("engaging the kill switch of %s/%s for %s: %s", namespace, name, incident, reason)
    writes: list[Awaitable[Any]] = [patch_integration(rt, integration, changes)] if changes else []
    if integration.get("spec", {}).get("suspended") is not True:
        # Says "switched off" to anyone looking, and setting it back to false resumes.
        writes.append(
            rt.kube.merge_patch(CAMERA_INTEGRATIONS, namespace, name, {"spec": {"suspended": True}})
        )
    written = await asyncio.gather(*writes)
    if changes:
        integration = written[0]
    try:
        actions = await build_actions(integration, rt.kube)
    except ActionSpecError as error:
        integration = await patch_integration(
            rt,
            integration,
            {"killSwitch": {"state": SwitchState.ENGAGE_FAILED, "reason": f"{reason}; {error}"[:1024]}},
        )
        rt.event(
            integration, "KillSwitchFailed", f"cannot build the kill-switch actions: {error}", warning=True
        )
        return integration, SwitchState.ENGAGE_FAILED

    async def checkpoint(done: Sequence[ActionRecord]) -> None:
        nonlocal integration
        integration = await patch_integration(rt, integration, {"killSwitch": {"actions": _records(done)}})

    context = ActionContext(name, incident, reason, Step.ENGAGE)
    records = await engage_actions(actions, records, context, checkpoint, _metrics_hook(rt, name))
    failed = [r.name for r in records if r.result is not Result.SUCCEEDED]
    engaged_at = epoch(((integration.get("status") or {}).get("killSwitch") or {}).get("engagedAt")) or now
    state = SwitchState.ENGAGE_FAILED if failed else SwitchState.ENGAGED
    integration = await patch_integration(
        rt,
        integration,
        {
            "killSwitch": {
                "state": state,
                "seconds": round(max(0.0, time.time() - engaged_at), 3),
                "resumeHint": resume_hint(integration, records),
            }
        },
    )
    rt.metrics.record_suspended(integration=name, suspended=True)
    if failed:
        message = f"kill switch for {incident} incomplete: {', '.join(failed)} failed; retrying"
        rt.event(integration, "KillSwitchFailed", message, warning=True)
    else:
        done = "; ".join(r.detail for r in records)
        rt.event(integration, "KillSwitchEngaged", f"switched off for {incident}: {done}", warning=True)
    return integration, state


async def resume(rt: Runtime, integration: dict[str, Any]) -> tuple[dict[str, Any], str]:
    """Undo every recorded action, in reverse order (caller holds the lock)."""
    meta = integration["metadata"]
    name = meta["name"]
    switch = (integration.get("status") or {}).get("killSwitch") or {}
    records = [ActionRecord.from_status(a) for a in switch.get("actions", [])]
    changes: dict[str, Any] = {"state": SwitchState.RESUMING}
    if switch.get("state") not in (SwitchState.RESUMING, SwitchState.RESUME_FAILED):
        changes["resumedAt"] = timestamp(time.time())
    integration = await patch_integration(rt, integration, {"killSwitch": changes})
    log.warning("resuming %s/%s (kill switch of %s)", meta["namespace"], name, switch.get("incident"))
    configured: dict[str, KubeAction] = {}
    try:
        configured = {a.name: a for a in await build_actions(integration, rt.kube)}
    except ActionSpecError as error:
        # The Kubernetes actions resume from their records; only webhooks need the spec.
        log.warning("resuming %s without the configured actions: %s", name, error)
    resumers = {r.name: resume_action(r, configured.get(r.name), rt.kube, integration) for r in records}

    async def checkpoint(current: Sequence[ActionRecord]) -> None:
        nonlocal integration
        integration = await patch_integration(rt, integration, {"killSwitch": {"actions": _records(current)}})

    context = ActionContext(
        name, str(switch.get("incident") or "manual"), str(switch.get("reason") or ""), Step.RESUME
    )
    records = await resume_actions(records, resumers, context, checkpoint, _metrics_hook(rt, name))
    failed = [r.name for r in records if r.result is Result.FAILED]
    manual = [r.name for r in records if r.result is Result.SKIPPED]
    state = SwitchState.RESUME_FAILED if failed else SwitchState.RESUMED
    hint = f"undo by hand: {', '.join(manual)}" if manual else "nothing left to undo"
    if failed:
        hint = f"{', '.join(failed)} failed to resume (retrying); " + hint
    integration = await patch_integration(
        rt, integration, {"killSwitch": {"state": state, "resumeHint": hint}}
    )
    rt.metrics.record_suspended(integration=name, suspended=bool(failed))
    if failed:
        rt.event(integration, "ResumeFailed", hint, warning=True)
    else:
        rt.event(integration, "Resumed", "; ".join(r.detail for r in records) or "nothing to undo")
    return integration, state


def _records(records: Iterable[ActionRecord]) -> list[dict[str, Any]]:
    return [r.to_status() for r in records]


def _metrics_hook(rt: Runtime, integration: str) -> Any:
    def on_result(record: ActionRecord) -> None:
        result = {Result.SUCCEEDED: "succeeded", Result.SKIPPED: "skipped"}.get(record.result, "failed")
        rt.metrics.record_killswitch_action(integration=integration, action=record.step.value, result=result)

    return on_result
