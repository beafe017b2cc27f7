"""Which incident `canarywatch resume` may resume (pure; the component tier runs it)."""

from __future__ import annotations

from canarywatch.incidents.records import IncidentRecord
from canarywatch.shutdown import KillSwitchRecord, SwitchState
from canarywatch.standalone.resume import resume_refusal


def _record(incident: str, state: str = "Open") -> IncidentRecord:
    return IncidentRecord(
        id=incident, integration="leaky", probe="p", verdict="cross_tenant", reason="r",
        viewer_tenant="acme-7", viewer_camera=0, stream="s", path="snapshot", network_profile="good",
        observed_tenant="bravo-2", observed_camera=0, observed_seq=1, observed_time=1.0,
        frame_received_at=1.0, recorded_at=1.0, detection_seconds=0.0, mode="enforce", state=state,
    )  # fmt: skip


def _switch(incident: str, state: SwitchState) -> KillSwitchRecord:
    return KillSwitchRecord(integration="leaky", incident=incident, reason="r", state=state, engaged_at=1.0)


def test_while_the_switch_holds_only_its_incident_resumes_it() -> None:
    records = [_record("old", "Resolved"), _record("new")]
    for state in (SwitchState.ENGAGED, SwitchState.ENGAGE_FAILED, SwitchState.RESUME_FAILED):
        switch = _switch("new", state)
        assert resume_refusal("new", integration="leaky", switch=switch, records=records) is None
        refusal = resume_refusal("old", integration="leaky", switch=switch, records=records)
        assert refusal is not None and "pass --incident new" in refusal


def test_without_a_holding_switch_a_known_incident_resumes_and_an_unknown_one_is_refused() -> None:
    records = [_record("a", "Resolved"), _record("b")]
    for switch in (None, _switch("a", SwitchState.RESUMED)):
        assert resume_refusal("a", integration="leaky", switch=switch, records=records) is None
        assert resume_refusal("b", integration="leaky", switch=switch, records=records) is None
        refusal = resume_refusal("zz", integration="leaky", switch=switch, records=records)
        assert refusal is not None and "no such incident" in refusal and "open incidents: b" in refusal
    assert resume_refusal("b", integration="other", switch=None, records=records) is not None
