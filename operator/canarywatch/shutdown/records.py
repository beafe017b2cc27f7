"""The kill switch's one vocabulary: its state, each action's result, and the record
that says what it did and how to undo it.

The values are those of ``CameraIntegration.status.killSwitch`` (the CRD is the
contract): the standalone state file and the operator's status speak the same words.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from enum import StrEnum
from typing import Any

__all__ = [
    "ENGAGED_STATES",
    "ActionRecord",
    "KillSwitchRecord",
    "Result",
    "Step",
    "SwitchState",
]


class Step(StrEnum):
    """Which way an action runs: ``engage`` switches off, ``resume`` restores."""

    ENGAGE = "engage"
    RESUME = "resume"


class SwitchState(StrEnum):
    """``status.killSwitch.state``: where the kill switch of one integration stands."""

    ENGAGING = "Engaging"  # actions running (or a crash stopped them)
    ENGAGED = "Engaged"
    ENGAGE_FAILED = "EngageFailed"  # some action failed: the integration may still be live
    RESUMING = "Resuming"
    RESUMED = "Resumed"
    RESUME_FAILED = "ResumeFailed"  # some resume step failed: partly restored


#: The integration may be (partly) switched off in these states.
ENGAGED_STATES = frozenset(SwitchState) - {SwitchState.RESUMED}


class Result(StrEnum):
    """``status.killSwitch.actions[].result``: how an action's latest step ended."""

    SUCCEEDED = "Succeeded"
    FAILED = "Failed"
    SKIPPED = "Skipped"  # nothing to run: no resume step, or the action is gone
    PENDING = "Pending"  # recorded before it acts; after a crash its effect is unknown

    @property
    def label(self) -> str:
        """The ``result`` label of ``canarywatch_killswitch_actions_total``."""
        return self.value.lower()


@dataclass(frozen=True)
class ActionRecord:
    """The latest step of one action. ``detail`` and ``target`` never hold a secret;
    ``previous`` is what the action replaced, read before it acted (what resume restores)."""

    name: str
    kind: str
    target: str
    step: Step
    result: Result
    detail: str
    attempts: int
    started_at: float
    finished_at: float
    previous: Mapping[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "name": self.name,
            "kind": self.kind,
            "target": self.target,
            "step": self.step.value,
            "result": self.result.value,
            "detail": self.detail,
            "attempts": self.attempts,
            "started_at": self.started_at,
            "finished_at": self.finished_at,
        }
        if self.previous is not None:
            data["previous"] = dict(self.previous)
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ActionRecord:
        previous = data.get("previous")
        plain = {f.name: data[f.name] for f in fields(cls) if f.name in data}
        return cls(
            **plain
            | {
                "target": str(data.get("target", "")),
                "step": Step(data["step"]),
                "result": Result(data["result"]),
                "previous": dict(previous) if isinstance(previous, Mapping) else None,
            }
        )


@dataclass(frozen=True)
class KillSwitchRecord:
    """One engagement of the kill switch, from engage to (possibly) resume.

    ``actions`` holds one entry per action, in the order they were engaged, each with
    its latest step: a resume step replaces the engage step it undid (keeping
    ``previous``). ``seconds`` runs from ``engaged_at`` to the end of the engagement.
    """

    integration: str
    incident: str
    reason: str
    state: SwitchState
    engaged_at: float
    seconds: float = 0.0
    actions: tuple[ActionRecord, ...] = ()
    resumed_at: float | None = None

    @property
    def engaged(self) -> bool:
        """True until a resume has fully succeeded: the integration may be switched off."""
        return self.state in ENGAGED_STATES

    @property
    def engage_results(self) -> tuple[ActionRecord, ...]:
        """Actions whose latest step is the engage step, in engage order."""
        return tuple(a for a in self.actions if a.step is Step.ENGAGE)

    @property
    def resume_results(self) -> tuple[ActionRecord, ...]:
        """Actions whose latest step is the resume step, in resume (reverse) order."""
        return tuple(a for a in reversed(self.actions) if a.step is Step.RESUME)

    @property
    def manual_resume(self) -> tuple[str, ...]:
        """Actions a human has to undo by hand (no resume step, or no longer configured)."""
        return tuple(r.name for r in self.resume_results if r.result is Result.SKIPPED)

    def to_dict(self) -> dict[str, Any]:
        return {
            "integration": self.integration,
            "incident": self.incident,
            "reason": self.reason,
            "state": self.state.value,
            "engaged_at": self.engaged_at,
            "seconds": self.seconds,
            "actions": [a.to_dict() for a in self.actions],
            "resumed_at": self.resumed_at,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> KillSwitchRecord:
        resumed_at = data.get("resumed_at")
        return cls(
            integration=str(data["integration"]),
            incident=str(data["incident"]),
            reason=str(data["reason"]),
            state=SwitchState(data["state"]),
            engaged_at=float(data["engaged_at"]),
            seconds=float(data["seconds"]),
            actions=tuple(ActionRecord.from_dict(a) for a in data.get("actions", ())),
            resumed_at=None if resumed_at is None else float(resumed_at),
        )
