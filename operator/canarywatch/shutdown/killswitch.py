"""The kill switch: run every action to switch an integration off, record it, undo it.

``engage`` runs the actions one after another, in the configured order (an operator may
want traffic blocked before anyone is notified), and ``resume`` runs their resume steps
in reverse order, the way a stack of changes is unwound. Each step's result, attempts
and times are recorded in a ``KillSwitchRecord``, the "what the kill switch did and how
to resume" of an integration's status.

Idempotent: engaging an engaged switch returns the existing record without calling
anything; if some actions failed, engaging again retries only those. Resuming a
resumed switch is likewise a no-op, and retries only failed resume steps.

Durable: with ``state_path`` the record is written to a JSON file (atomically, before
the first action runs and after each one), so a restarted process knows the
integration is switched off and can resume it. A state file that cannot be written
does not stop the actions (stopping a leak comes first): ``KillSwitchStateError`` is
raised once they have all run, and ``record`` holds the result. A record found mid-step
after a crash is loaded with the unfinished actions marked failed ("interrupted"):
their effect is unknown, and failed is the state that gets them retried.
"""

from __future__ import annotations

import asyncio
import enum
import json
import logging
import os
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from canarywatch.files import atomic_write
from canarywatch.shutdown.actions import Action, ActionContext, ActionOutcome, Step

__all__ = [
    "STATE_VERSION",
    "ActionResult",
    "ActionStatus",
    "KillSwitch",
    "KillSwitchError",
    "KillSwitchRecord",
    "KillSwitchStateError",
    "NotEngagedError",
    "Phase",
]

log = logging.getLogger(__name__)

STATE_VERSION = 1
_INTERRUPTED = "interrupted: the process stopped before this action finished; its effect is unknown"


class KillSwitchError(Exception):
    """Base class for kill-switch errors."""


class NotEngagedError(KillSwitchError):
    """``resume()`` was called on a kill switch that was never engaged."""


class KillSwitchStateError(KillSwitchError):
    """The state file cannot be read, written or trusted (the cause is kept)."""


class Phase(enum.StrEnum):
    ENGAGING = "engaging"  # only ever seen in a state file left by a crash
    ENGAGED = "engaged"
    ENGAGE_FAILED = "engage_failed"  # some action failed: the integration may still be live
    RESUMING = "resuming"  # only ever seen in a state file left by a crash
    RESUME_FAILED = "resume_failed"  # some resume step failed: partly restored
    RESUMED = "resumed"


class ActionStatus(enum.StrEnum):
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    SKIPPED = "skipped"  # nothing to run: the action has no resume step (restore by hand)


@dataclass(frozen=True)
class ActionResult:
    """One action's step as it happened. ``detail`` never holds a secret."""

    action: str
    kind: str
    step: Step
    status: ActionStatus
    detail: str
    attempts: int
    started_at: float
    finished_at: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "action": self.action,
            "kind": self.kind,
            "step": self.step.value,
            "status": self.status.value,
            "detail": self.detail,
            "attempts": self.attempts,
            "started_at": self.started_at,
            "finished_at": self.finished_at,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ActionResult:
        return cls(
            action=str(data["action"]),
            kind=str(data["kind"]),
            step=Step(data["step"]),
            status=ActionStatus(data["status"]),
            detail=str(data["detail"]),
            attempts=int(data["attempts"]),
            started_at=float(data["started_at"]),
            finished_at=float(data["finished_at"]),
        )


@dataclass(frozen=True)
class KillSwitchRecord:
    """One engagement of the kill switch, from engage to (possibly) resume.

    ``seconds`` is how long the last engage run took, all actions included (what
    ``canarywatch_shutdown_seconds`` adds the detection delay to).
    """

    integration: str
    incident: str
    reason: str
    phase: Phase
    engaged_at: float
    seconds: float
    engage_results: tuple[ActionResult, ...] = ()
    resumed_at: float | None = None
    resume_results: tuple[ActionResult, ...] = ()

    @property
    def engaged(self) -> bool:
        """True until a resume has fully succeeded: the integration may be switched off."""
        return self.phase is not Phase.RESUMED

    @property
    def manual_resume(self) -> tuple[str, ...]:
        """Actions a human has to undo by hand (no resume step, or no longer configured)."""
        return tuple(r.action for r in self.resume_results if r.status is ActionStatus.SKIPPED)

    def to_dict(self) -> dict[str, Any]:
        return {
            "integration": self.integration,
            "incident": self.incident,
            "reason": self.reason,
            "phase": self.phase.value,
            "engaged_at": self.engaged_at,
            "seconds": self.seconds,
            "engage_results": [r.to_dict() for r in self.engage_results],
            "resumed_at": self.resumed_at,
            "resume_results": [r.to_dict() for r in self.resume_results],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> KillSwitchRecord:
        resumed_at = data.get("resumed_at")
        return cls(
            integration=str(data["integration"]),
            incident=str(data["incident"]),
            reason=str(data["reason"]),
            phase=Phase(data["phase"]),
            engaged_at=float(data["engaged_at"]),
            seconds=float(data["seconds"]),
            engage_results=tuple(ActionResult.from_dict(r) for r in data.get("engage_results", ())),
            resumed_at=None if resumed_at is None else float(resumed_at),
            resume_results=tuple(ActionResult.from_dict(r) for r in data.get("resume_results", ())),
        )


class KillSwitch:
    """The kill switch of one integration: ``engage``, ``resume``, ``record``.

    ``on_action(step, status)`` is called after every action step (for
    ``Metrics.killswitch_hook``); an exception in it is logged and ignored. ``clock``
    gives the recorded timestamps; durations use a monotonic clock.
    """

    def __init__(
        self,
        actions: Sequence[Action],
        *,
        integration: str,
        state_path: str | os.PathLike[str] | None = None,
        on_action: Callable[[str, str], None] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if not isinstance(integration, str) or not integration:
            raise ValueError("integration must be a non-empty string (the integration's name)")
        actions = tuple(actions)
        if not actions:
            raise ValueError("a kill switch needs at least one action")
        names = [action.name for action in actions]
        duplicated = sorted({name for name in names if names.count(name) > 1})
        if duplicated:
            # Results are matched to actions by name across restarts.
            raise ValueError(f"action names must be unique; repeated: {', '.join(duplicated)}")
        self._actions = {action.name: action for action in actions}
        self._integration = integration
        self._state_path = Path(state_path) if state_path is not None else None
        self._on_action = on_action
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
            if current is not None and current.phase is Phase.ENGAGED:
                log.info(
                    "kill switch for %s already engaged (incident %s); not engaging again for %s",
                    self._integration,
                    current.incident,
                    incident_id,
                )
                return current
            if current is not None and current.phase is Phase.ENGAGE_FAILED:
                kept = tuple(r for r in current.engage_results if r.status is ActionStatus.SUCCEEDED)
                done = {r.action for r in kept}
                todo = [action for name, action in self._actions.items() if name not in done]
                record = replace(current, phase=Phase.ENGAGING, engage_results=kept)
            else:
                todo = list(self._actions.values())
                record = KillSwitchRecord(
                    integration=self._integration,
                    incident=incident_id,
                    reason=reason,
                    phase=Phase.ENGAGING,
                    engaged_at=self._clock(),
                    seconds=0.0,
                )
            log.warning(
                "engaging kill switch for %s (incident %s): %s",
                self._integration,
                record.incident,
                record.reason,
            )
            context = ActionContext(self._integration, record.incident, record.reason, Step.ENGAGE)
            started = time.monotonic()
            self._checkpoint(record)
            for action in todo:
                result = await self._run(action, Step.ENGAGE, context)
                record = replace(record, engage_results=(*record.engage_results, result))
                self._checkpoint(record)
            failed = [r.action for r in record.engage_results if r.status is not ActionStatus.SUCCEEDED]
            record = replace(
                record,
                phase=Phase.ENGAGE_FAILED if failed else Phase.ENGAGED,
                seconds=time.monotonic() - started,
            )
            self._save(record)
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
            if current.phase is Phase.RESUMED:
                return current
            if current.phase is Phase.RESUME_FAILED:
                kept = tuple(r for r in current.resume_results if r.status is not ActionStatus.FAILED)
                done = {r.action for r in kept}
                record = replace(current, phase=Phase.RESUMING, resume_results=kept)
            else:
                done = set()
                record = replace(current, phase=Phase.RESUMING, resumed_at=self._clock(), resume_results=())
            # Every action whose engage step ran is resumed, failed ones included: a
            # request that timed out may still have switched the integration off.
            engaged = [r.action for r in current.engage_results]
            todo = [name for name in reversed(engaged) if name not in done]
            log.warning("resuming %s (kill switch of incident %s)", self._integration, record.incident)
            context = ActionContext(self._integration, record.incident, record.reason, Step.RESUME)
            self._checkpoint(record)
            for name in todo:
                result = await self._resume_one(name, context)
                record = replace(record, resume_results=(*record.resume_results, result))
                self._checkpoint(record)
            failed = [r.action for r in record.resume_results if r.status is ActionStatus.FAILED]
            record = replace(record, phase=Phase.RESUME_FAILED if failed else Phase.RESUMED)
            self._save(record)
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

    async def _resume_one(self, name: str, context: ActionContext) -> ActionResult:
        action = self._actions.get(name)
        now = self._clock()
        if action is None:
            # Configuration changed since the engagement: nobody here knows how to undo it.
            result = ActionResult(
                name,
                "unknown",
                Step.RESUME,
                ActionStatus.SKIPPED,
                "action no longer configured; restore by hand",
                0,
                now,
                now,
            )
            self._report(result)
            return result
        if not action.reversible:
            result = ActionResult(
                name,
                action.kind,
                Step.RESUME,
                ActionStatus.SKIPPED,
                "no resume step configured; restore by hand",
                0,
                now,
                now,
            )
            self._report(result)
            return result
        return await self._run(action, Step.RESUME, context)

    async def _run(self, action: Action, step: Step, context: ActionContext) -> ActionResult:
        started_at = self._clock()
        try:
            outcome = await (action.engage(context) if step is Step.ENGAGE else action.resume(context))
        except Exception as error:
            # A bug in one action must not keep the others from switching the integration off.
            log.exception("kill-switch action %r raised during %s", action.name, step)
            outcome = ActionOutcome(False, f"action raised {type(error).__name__}")
        status = ActionStatus.SUCCEEDED if outcome.ok else ActionStatus.FAILED
        result = ActionResult(
            action.name,
            action.kind,
            step,
            status,
            outcome.detail,
            outcome.attempts,
            started_at,
            self._clock(),
        )
        log.log(
            logging.INFO if outcome.ok else logging.ERROR,
            "kill-switch action %r %s %s: %s",
            action.name,
            step,
            status,
            outcome.detail,
        )
        self._report(result)
        return result

    def _report(self, result: ActionResult) -> None:
        if self._on_action is None:
            return
        try:
            self._on_action(result.step.value, result.status.value)
        except Exception:
            log.exception("on_action hook failed for %s/%s", result.step, result.status)

    # -- persistence ----------------------------------------------------------------------

    def _load(self) -> KillSwitchRecord | None:
        path = self._state_path
        if path is None:
            return None
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return None
        except OSError as error:
            raise KillSwitchStateError(f"cannot read kill-switch state {path}: {error}") from error
        try:
            document = json.loads(text)
            if document.get("version") != STATE_VERSION:
                raise ValueError(f"unsupported version {document.get('version')!r}")
            record = KillSwitchRecord.from_dict(document["record"])
        except (ValueError, KeyError, TypeError, AttributeError) as error:
            # Refuse rather than guess: "not engaged" could hide a switched-off integration.
            raise KillSwitchStateError(
                f"kill-switch state {path} is not valid ({error}); inspect it, then move it away"
            ) from error
        if record.integration != self._integration:
            raise KillSwitchStateError(
                f"kill-switch state {path} belongs to integration {record.integration!r}, "
                f"not {self._integration!r}; give each integration its own state file"
            )
        return _after_interruption(record, self._actions, self._clock())

    def _checkpoint(self, record: KillSwitchRecord) -> None:
        """Save progress; a write failure is logged and the actions go on.

        Switching a leaking integration off matters more than recording it: a full disk
        must not stop the kill. The final ``_save`` of the step still raises.
        """
        try:
            self._save(record)
        except KillSwitchStateError:
            log.exception("kill-switch progress for %s not persisted; continuing", self._integration)

    def _save(self, record: KillSwitchRecord) -> None:
        self._record = record
        path = self._state_path
        if path is None:
            return
        document = {"version": STATE_VERSION, "record": record.to_dict()}
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            atomic_write(path, json.dumps(document, indent=2).encode())
        except OSError as error:
            raise KillSwitchStateError(f"cannot write kill-switch state {path}: {error}") from error


def _after_interruption(
    record: KillSwitchRecord, actions: Mapping[str, Action], now: float
) -> KillSwitchRecord:
    """A record loaded mid-step: the actions that did not report are marked failed."""
    if record.phase is Phase.ENGAGING:
        reported = {r.action for r in record.engage_results}
        missing = _interrupted(Step.ENGAGE, (a for n, a in actions.items() if n not in reported), now)
        return replace(record, phase=Phase.ENGAGE_FAILED, engage_results=(*record.engage_results, *missing))
    if record.phase is Phase.RESUMING:
        reported = {r.action for r in record.resume_results}
        pending = [actions[r.action] for r in reversed(record.engage_results) if r.action in actions]
        missing = _interrupted(Step.RESUME, (a for a in pending if a.name not in reported), now)
        return replace(record, phase=Phase.RESUME_FAILED, resume_results=(*record.resume_results, *missing))
    return record


def _interrupted(step: Step, actions: Iterable[Action], now: float) -> tuple[ActionResult, ...]:
    return tuple(
        ActionResult(a.name, a.kind, step, ActionStatus.FAILED, _INTERRUPTED, 0, now, now) for a in actions
    )
