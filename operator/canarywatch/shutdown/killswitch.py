"""The kill switch: run every action to switch an integration off, record it, undo it.

One engine for both shells; only where the record lives differs (a ``StateStore``: a
JSON file standalone, the CameraIntegration's status in the operator).

``engage`` runs the actions one after another, in the configured order (an operator may
want traffic blocked before anyone is notified), and ``resume`` runs their resume steps
in reverse order, the way a stack of changes is unwound. Each action's latest step is
recorded in the ``KillSwitchRecord``: "what the kill switch did and how to resume".

Idempotent: engaging an engaged switch returns the existing record without calling
anything; if some actions failed, engaging again (for any incident) completes the
original engagement, running only what did not succeed. Resuming a resumed switch is
likewise a no-op, and retries only failed resume steps. ``reassert`` is the one way to
call actions again on an engaged switch: leaked frames arriving while it is engaged mean
the kill does not hold (``shutdown.holding`` paces how often). Every action whose engage step
ran is resumed, failed ones included: a request that timed out may still have switched
the integration off.

Durable: the record is saved before the first action, before each action acts (as
``Pending``, with what the action replaces: ``snapshot()``, for actions that have one)
and after each one. A record loaded mid-engagement after a crash has its ``Pending``
actions marked failed ("interrupted": their effect is unknown, and failed is what gets
them retried); a ``previous`` once recorded is never read again (the first reading is
the original, not the kill's own change). A store that cannot write
(``KillSwitchStateError``) does not stop the actions (stopping a leak comes first): the
error is raised once they have all run, and ``record`` holds the result.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from canarywatch.shutdown.actions import Action, ActionContext, ActionOutcome, Step
from canarywatch.shutdown.records import ActionRecord, KillSwitchRecord, Result, SwitchState
from canarywatch.shutdown.state import (
    FileStore,
    KillSwitchError,
    KillSwitchStateError,
    MemoryStore,
    StateStore,
)

__all__ = ["KillSwitch", "NotEngagedError", "Resumer", "Snapshotting"]

log = logging.getLogger(__name__)

_INTERRUPTED = "interrupted: the process stopped before this action finished; its effect is unknown"

#: What undoes a recorded action, given the configured one of that name (None: not
#: configured). None back: nobody knows how to undo it (restore by hand).
Resumer = Callable[[ActionRecord, Action | None], Action | None]


class NotEngagedError(KillSwitchError):
    """``resume()`` was called on a kill switch that was never engaged."""


@runtime_checkable
class Snapshotting(Protocol):
    """An action that can read what its engage step will replace, before it acts."""

    async def snapshot(self) -> Mapping[str, Any]: ...


class KillSwitch:
    """The kill switch of one integration: ``engage``, ``resume``, ``record``.

    ``store`` keeps the record (``state_path`` is short for a ``FileStore``; neither:
    memory). ``on_action(step, result)`` is called after every action step with the
    metric labels (``Metrics.killswitch_hook``); an exception in it is logged and
    ignored. ``resumer`` rebuilds the action that undoes a record (the operator's
    Kubernetes actions resume from what they recorded). ``clock`` gives the recorded
    times. ``allow_empty``: no actions is a valid configuration (the operator's
    ``spec.suspended`` is itself the switch).
    """

    def __init__(
        self,
        actions: Sequence[Action],
        *,
        integration: str,
        store: StateStore | None = None,
        state_path: str | Path | None = None,
        on_action: Callable[[str, str], None] | None = None,
        resumer: Resumer | None = None,
        clock: Callable[[], float] = time.time,
        allow_empty: bool = False,
    ) -> None:
        if not isinstance(integration, str) or not integration:
            raise ValueError("integration must be a non-empty string (the integration's name)")
        if store is not None and state_path is not None:
            raise ValueError("pass store or state_path, not both")
        actions = tuple(actions)
        if not actions and not allow_empty:
            raise ValueError("a kill switch needs at least one action")
        names = [action.name for action in actions]
        duplicated = sorted({name for name in names if names.count(name) > 1})
        if duplicated:
            # Records are matched to actions by name across restarts.
            raise ValueError(f"action names must be unique; repeated: {', '.join(duplicated)}")
        self._actions = {action.name: action for action in actions}
        self._integration = integration
        if store is None:
            store = FileStore(state_path) if state_path is not None else MemoryStore()
        self._store = store
        self._on_action = on_action
        self._resumer = resumer
        self._clock = clock
        self._lock = asyncio.Lock()
        self._record = self._load()

    @property
    def integration(self) -> str:
        return self._integration

    @property
    def record(self) -> KillSwitchRecord | None:
        """The latest engagement (resumed or not), or None if never engaged."""
        return self._record

    @property
    def engaged(self) -> bool:
        return self._record is not None and self._record.engaged

    def describe(self) -> dict[str, Any]:
        """The configured actions and current state, safe for status and logs."""
        return {
            "integration": self._integration,
            "actions": [action.describe() for action in self._actions.values()],
            "record": None if self._record is None else self._record.to_dict(),
        }

    async def engage(self, incident_id: str, reason: str) -> KillSwitchRecord:
        """Switch the integration off for ``incident_id``; see the module docstring."""
        if not incident_id:
            raise ValueError("incident_id must be a non-empty string")
        async with self._lock:
            current = self._record
            if current is not None and current.state is SwitchState.ENGAGED:
                log.info(
                    "kill switch for %s already engaged (incident %s); not engaging again for %s",
                    self._integration,
                    current.incident,
                    incident_id,
                )
                return current
            return await self._engage(current, incident_id, reason, again=False)

    async def reassert(self) -> KillSwitchRecord:
        """Run every action's engage step again: the integration leaks while recorded as
        switched off (a GitOps revert scaled it back up, a webhook's effect was undone).

        Keeps the engagement's incident, ``engaged_at``, ``seconds`` and every recorded
        ``previous`` (no new snapshot: what an action finds now is the kill's own change,
        or the revert), so resume still restores the original. An engagement that is not
        complete (``EngageFailed``, interrupted) is completed instead. ``NotEngagedError``
        when there is no engagement to hold.
        """
        async with self._lock:
            current = self._record
            if current is None or current.state not in (
                SwitchState.ENGAGED,
                SwitchState.ENGAGING,
                SwitchState.ENGAGE_FAILED,
            ):
                raise NotEngagedError(f"the kill switch for {self._integration} is not engaged")
            again = current.state is SwitchState.ENGAGED
            return await self._engage(current, current.incident, current.reason, again=again)

    async def _engage(
        self, current: KillSwitchRecord | None, incident_id: str, reason: str, *, again: bool
    ) -> KillSwitchRecord:
        """The engage step under the lock; ``again``: re-run actions that succeeded too."""
        carried: dict[str, Mapping[str, Any]] = {}
        if current is not None and (
            again or current.state in (SwitchState.ENGAGING, SwitchState.ENGAGE_FAILED)
        ):
            record = replace(current, state=SwitchState.ENGAGING)
        else:
            if current is not None:
                # Engaged again before a resume finished: what an action has not
                # restored yet, its first reading still describes.
                carried = {
                    a.name: a.previous
                    for a in current.actions
                    if a.previous is not None and not (a.step is Step.RESUME and a.result is Result.SUCCEEDED)
                }
            record = KillSwitchRecord(
                integration=self._integration,
                incident=incident_id,
                reason=reason,
                state=SwitchState.ENGAGING,
                engaged_at=self._clock(),
            )
        log.warning(
            "%s kill switch for %s (incident %s): %s",
            "re-asserting the" if again else "engaging",
            self._integration,
            record.incident,
            record.reason,
        )
        context = ActionContext(self._integration, record.incident, record.reason, Step.ENGAGE)
        recorded = {a.name: a for a in record.actions}
        # Recorded actions no longer configured were engaged before the others.
        order = [name for name in recorded if name not in self._actions] + list(self._actions)
        entries = dict(recorded)

        def listed() -> tuple[ActionRecord, ...]:
            return tuple(entries[name] for name in order if name in entries)

        def done(name: str) -> bool:
            prior = entries.get(name)
            return prior is not None and prior.step is Step.ENGAGE and prior.result is Result.SUCCEEDED

        # The engagement is recorded with the first action to run, after its snapshot (a
        # read: nothing has acted yet), so the integration stays on one write less long;
        # with none to run, now.
        if not again and all(done(name) for name in self._actions):
            await self._checkpoint(record)
        for action in self._actions.values():
            prior = entries.get(action.name)
            succeeded = done(action.name)
            if succeeded and not again:
                continue
            attempts = prior.attempts if prior is not None else 0
            previous = prior.previous if prior is not None else carried.get(action.name)
            if previous is None and isinstance(action, Snapshotting) and not succeeded:
                previous = await self._snapshot(action)
            now = self._clock()
            entries[action.name] = ActionRecord(
                action.name, action.kind, _target(action), Step.ENGAGE, Result.PENDING,
                "recorded; acting", attempts, now, now, previous,
            )  # fmt: skip
            record = replace(record, actions=listed())
            await self._checkpoint(record)
            entries[action.name] = await self._run(
                action, Step.ENGAGE, context, replace(entries[action.name], attempts=attempts)
            )
            record = replace(record, actions=listed())
            await self._checkpoint(record)
        failed = [
            name
            for name in self._actions
            if entries[name].step is not Step.ENGAGE or entries[name].result is not Result.SUCCEEDED
        ]
        record = replace(
            record,
            state=SwitchState.ENGAGE_FAILED if failed else SwitchState.ENGAGED,
            # a re-assertion keeps how long the engagement itself took
            seconds=record.seconds if again else round(max(0.0, self._clock() - record.engaged_at), 6),
        )
        await self._save(record)
        if failed:
            log.error(
                "kill switch for %s incomplete: %s failed; engage again to retry them",
                self._integration,
                ", ".join(failed),
            )
        else:
            log.warning("kill switch for %s engaged in %.3fs", self._integration, record.seconds)
        return record

    async def resume(self) -> KillSwitchRecord:
        """Undo the engagement: resume steps in reverse order; see the module docstring."""
        async with self._lock:
            current = self._record
            if current is None:
                raise NotEngagedError(f"the kill switch for {self._integration} was never engaged")
            if current.state is SwitchState.RESUMED:
                return current
            continuing = current.state in (SwitchState.RESUMING, SwitchState.RESUME_FAILED)
            resumed_at = current.resumed_at if continuing and current.resumed_at else self._clock()
            record = replace(current, state=SwitchState.RESUMING, resumed_at=resumed_at)
            log.warning("resuming %s (kill switch of incident %s)", self._integration, record.incident)
            context = ActionContext(self._integration, record.incident, record.reason, Step.RESUME)
            await self._checkpoint(record)
            entries = list(record.actions)
            for position in reversed(range(len(entries))):
                entry = entries[position]
                if entry.step is Step.RESUME and entry.result in (Result.SUCCEEDED, Result.SKIPPED):
                    continue
                entries[position] = await self._resume_one(entry, context)
                record = replace(record, actions=tuple(entries))
                await self._checkpoint(record)
            failed = [a.name for a in entries if a.result is Result.FAILED]
            record = replace(record, state=SwitchState.RESUME_FAILED if failed else SwitchState.RESUMED)
            await self._save(record)
            if failed:
                log.error(
                    "resume of %s incomplete: %s failed; resume again to retry them",
                    self._integration,
                    ", ".join(failed),
                )
            if record.manual_resume:
                log.warning(
                    "%s: no resume step for %s; restore by hand",
                    self._integration,
                    ", ".join(record.manual_resume),
                )
            return record

    async def _resume_one(self, entry: ActionRecord, context: ActionContext) -> ActionRecord:
        configured = self._actions.get(entry.name)
        action = configured if self._resumer is None else self._resumer(entry, configured)
        if action is None or not action.reversible:
            # Configuration changed since the engagement, or there is no resume step:
            # nobody here knows how to undo it.
            now = self._clock()
            detail = (
                "action no longer configured; restore by hand"
                if action is None
                else "no resume step configured; restore by hand"
            )
            skipped = replace(
                entry, step=Step.RESUME, result=Result.SKIPPED, detail=detail, attempts=0,
                started_at=now, finished_at=now,
            )  # fmt: skip
            self._report(skipped)
            return skipped
        return await self._run(action, Step.RESUME, context, replace(entry, attempts=0))

    async def _run(
        self, action: Action, step: Step, context: ActionContext, entry: ActionRecord
    ) -> ActionRecord:
        started_at = self._clock()
        try:
            outcome = await (action.engage(context) if step is Step.ENGAGE else action.resume(context))
        except Exception as error:
            # A bug in one action must not keep the others from switching the integration off.
            log.exception("kill-switch action %r raised during %s", action.name, step)
            outcome = ActionOutcome(False, f"action raised {type(error).__name__}")
        result = Result.SUCCEEDED if outcome.ok else Result.FAILED
        done = replace(
            entry,
            step=step,
            result=result,
            detail=outcome.detail,
            attempts=entry.attempts + outcome.attempts,
            started_at=started_at,
            finished_at=self._clock(),
        )
        log.log(
            logging.INFO if outcome.ok else logging.ERROR,
            "kill-switch action %r %s %s: %s",
            action.name,
            step,
            result,
            outcome.detail,
        )
        self._report(done)
        return done

    async def _snapshot(self, action: Snapshotting) -> dict[str, Any] | None:
        try:
            return dict(await action.snapshot())
        except Exception as error:
            log.warning("kill-switch action %r: snapshot failed: %s", getattr(action, "name", "?"), error)
            return None

    def _report(self, record: ActionRecord) -> None:
        if self._on_action is None:
            return
        try:
            self._on_action(record.step.value, record.result.label)
        except Exception:
            log.exception("on_action hook failed for %s/%s", record.step, record.result)

    # -- persistence ----------------------------------------------------------------------

    def _load(self) -> KillSwitchRecord | None:
        record = self._store.load()
        if record is None:
            return None
        if record.integration != self._integration:
            raise KillSwitchStateError(
                f"kill-switch state {self._store.where} belongs to integration {record.integration!r}, "
                f"not {self._integration!r}; give each integration its own state"
            )
        return _after_interruption(record)

    async def _checkpoint(self, record: KillSwitchRecord) -> None:
        """Save progress; a ``KillSwitchStateError`` is logged and the actions go on.

        Switching a leaking integration off matters more than recording it: a full disk
        must not stop the kill. The final ``_save`` of the step still raises.
        """
        try:
            await self._save(record)
        except KillSwitchStateError:
            log.exception("kill-switch progress for %s not persisted; continuing", self._integration)

    async def _save(self, record: KillSwitchRecord) -> None:
        self._record = record
        await self._store.save(record)


def _after_interruption(record: KillSwitchRecord) -> KillSwitchRecord:
    """A record loaded mid-step: Pending actions are marked failed, the step failed."""
    if record.state is SwitchState.ENGAGING:
        actions = tuple(
            replace(a, result=Result.FAILED, detail=_INTERRUPTED) if a.result is Result.PENDING else a
            for a in record.actions
        )
        return replace(record, state=SwitchState.ENGAGE_FAILED, actions=actions)
    if record.state is SwitchState.RESUMING:
        return replace(record, state=SwitchState.RESUME_FAILED)
    return record


def _resumed(record: ActionRecord) -> bool:
    return record.step is Step.RESUME and record.result is Result.SUCCEEDED


def _target(action: Action) -> str:
    target = getattr(action, "target", None)
    return target if isinstance(target, str) else ""
