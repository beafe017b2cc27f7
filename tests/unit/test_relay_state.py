"""Kill switch and outage cycle as a function of time."""

from __future__ import annotations

import pytest

from canarywatch.relay.config import Fault
from canarywatch.relay.state import KillRecord, Phase, RelayState


def state() -> RelayState:
    return RelayState(fault=Fault.NONE, recovery_window_seconds=60.0)


def test_kill_is_idempotent_and_keeps_the_first_record() -> None:
    relay = state()
    assert relay.kill(actor="canarywatch", reason="cross_tenant", now=10.0) is True
    assert relay.kill(actor="human", reason="double-check", now=20.0) is False
    assert relay.kill_record == KillRecord("canarywatch", "cross_tenant", 10.0)
    assert relay.enabled is False


def test_resume_is_idempotent() -> None:
    relay = state()
    assert relay.resume() is False
    relay.kill(actor="a", reason="r", now=0.0)
    assert relay.resume() is True
    assert relay.resume() is False
    assert relay.enabled and relay.kill_record is None


def test_outage_then_recovery_window_then_serving() -> None:
    relay = state()
    assert relay.phase(0.0) is Phase.SERVING
    assert relay.start_outage(10.0, now=100.0) == 110.0
    assert relay.phase(100.0) is Phase.OUTAGE
    assert relay.outage_remaining(104.0) == 6.0
    assert relay.phase(110.0) is Phase.RECOVERING
    assert relay.phase(169.9) is Phase.RECOVERING
    assert relay.phase(170.0) is Phase.SERVING
    assert relay.recovery_ends_at() == 170.0
    assert relay.counters.outages == 1


def test_a_shorter_outage_does_not_cut_a_running_one_short() -> None:
    relay = state()
    relay.start_outage(30.0, now=0.0)
    assert relay.start_outage(5.0, now=10.0) == 30.0
    assert relay.start_outage(50.0, now=10.0) == 60.0


@pytest.mark.parametrize("seconds", [0.0, -1.0, float("nan"), float("inf"), 3601.0])
def test_outage_duration_must_be_sensible(seconds: float) -> None:
    with pytest.raises(ValueError, match="outage seconds"):
        state().start_outage(seconds, now=0.0)


def test_set_fault_reports_change() -> None:
    relay = state()
    assert relay.set_fault(Fault.IDOR) is True
    assert relay.set_fault(Fault.IDOR) is False
    assert relay.fault is Fault.IDOR
