"""The operator's kill-switch store: the engine's record in ``status.killSwitch``, in the
CRD's shape, and back."""

from __future__ import annotations

from typing import Any, cast

from canarywatch.controller.runtime import Runtime
from canarywatch.controller.settings import OperatorSettings
from canarywatch.controller.suspension import StatusStore
from canarywatch.metrics import Metrics
from canarywatch.shutdown import ActionRecord, KillSwitchRecord, Result, Step, SwitchState

T0 = 1_780_000_000.5


def integration(status: dict[str, Any] | None = None) -> dict[str, Any]:
    webhook = {"url": "https://ops.example/kill"}
    return {
        "metadata": {"name": "relay", "namespace": "shop"},
        "spec": {
            "killSwitch": {
                "actions": [
                    {"name": "scale-relay", "type": "scale", "scale": {"name": "relay"}},
                    {"name": "notify-ops", "type": "webhook", "webhook": webhook},
                ]
            }
        },
        "status": status or {},
    }


def store(body: dict[str, Any]) -> StatusStore:
    rt = Runtime(settings=OperatorSettings(leader_election=False), kube=cast(Any, None), metrics=Metrics())
    return StatusStore(rt, body)


def engaged() -> KillSwitchRecord:
    scale = ActionRecord(
        "scale-relay", "scale", "Deployment shop/relay", Step.ENGAGE, Result.SUCCEEDED,
        "scaled to 0", 1, T0 + 0.25, T0 + 0.25, {"replicas": 3},
    )  # fmt: skip
    hook = ActionRecord(
        "notify-ops", "webhook", "POST https://ops.example", Step.ENGAGE, Result.PENDING,
        "recorded; acting", 0, T0 + 0.5, T0 + 0.5,
    )  # fmt: skip
    return KillSwitchRecord(
        "relay", "relay-leak-1", "cross_tenant", SwitchState.ENGAGING, T0, 0.5, (scale, hook)
    )


def test_the_record_round_trips_through_the_status() -> None:
    record = engaged()
    status = store(integration()).status_of(record)
    assert status["state"] == "Engaging" and status["engagedAt"] == "2026-05-28T20:26:40.500000Z"
    assert [(a["name"], a["type"], a["step"], a["result"]) for a in status["actions"]] == [
        ("scale-relay", "scale", "engage", "Succeeded"),
        ("notify-ops", "webhook", "engage", "Pending"),
    ]
    assert status["actions"][0]["previous"] == {"replicas": 3} and "previous" not in status["actions"][1]
    assert store(integration({"killSwitch": status})).load() == record


def test_the_hint_names_what_must_be_undone_by_hand_while_engaged() -> None:
    # The old hint looked for "no resume" in the engage step's detail, which never says
    # so: a one-way webhook was only named once a resume had skipped it.
    hint = store(integration()).status_of(engaged())["resumeHint"]
    # A switch-off for a leak resumes by the annotation naming it, never by spec.suspended.
    assert "kill-switch.canarywatch.io/resume=relay-leak-1" in hint and "suspended" not in hint
    assert hint.endswith("undo by hand: notify-ops")


def test_after_a_resume_the_hint_says_what_is_left() -> None:
    record = engaged()
    scale, hook = record.actions
    resumed = KillSwitchRecord(
        "relay", "relay-leak-1", "cross_tenant", SwitchState.RESUMED, T0, 0.5,
        (
            ActionRecord(**{**scale.__dict__, "step": Step.RESUME, "detail": "restored 3"}),
            ActionRecord(**{**hook.__dict__, "step": Step.RESUME, "result": Result.SKIPPED}),
        ),
        T0 + 60,
    )  # fmt: skip
    status = store(integration()).status_of(resumed)
    assert status["resumeHint"] == "undo by hand: notify-ops"
    assert status["resumedAt"] == "2026-05-28T20:27:40.500000Z"
