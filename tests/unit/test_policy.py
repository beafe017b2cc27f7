"""Response policy: defaults, modes, k-of-n confirmation, incident dedup, kill cap, config errors."""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from canarywatch.incidents.policy import (
    DEFAULT_RULES,
    Confirmation,
    Decision,
    IncidentKey,
    KillCap,
    Mode,
    OpenIncident,
    Policy,
    PolicyEngine,
    PolicyError,
    Rule,
)
from canarywatch.verdicts import LEAK_VERDICTS, Verdict

V = Verdict
ALL_VERDICTS = list(Verdict)


def run(
    engine: PolicyEngine, verdicts: Iterable[Verdict], *, stream: str = "viewer-1", start: float = 0.0
) -> list[Decision]:
    return [engine.decide(stream, verdict, start + i) for i, verdict in enumerate(verdicts)]


def engine_for(mode: Mode = Mode.ENFORCE, **policy: Any) -> PolicyEngine:
    return PolicyEngine(Policy(mode=mode, **policy), integration="relay")


# --- defaults -------------------------------------------------------------------------


def test_defaults_follow_the_design_table() -> None:
    assert DEFAULT_RULES[V.CROSS_TENANT] == Rule(incident=True, page=True, kill=True)
    assert DEFAULT_RULES[V.FOREIGN] == Rule(
        incident=True, page=True, kill=True, confirmation=Confirmation(frames=3, of_last=5)
    )
    assert DEFAULT_RULES[V.MISROUTED] == Rule(incident=True, page=True)
    assert DEFAULT_RULES[V.FORGED] == Rule(incident=True, page=True)
    assert DEFAULT_RULES[V.STALE] == Rule(warn=True, confirmation=Confirmation(frames=3, of_last=5))
    for verdict in (V.OK, V.DEGRADED, V.UNDECODABLE):
        assert not DEFAULT_RULES[verdict].acts
    # Every verdict that opens an incident by default is one the verdict module calls a leak.
    assert {v for v, rule in DEFAULT_RULES.items() if rule.incident} == LEAK_VERDICTS
    assert set(DEFAULT_RULES) == set(Verdict)
    assert Policy().kill_cap == KillCap(max_kills=3, window_seconds=3600.0)


# --- every verdict × mode -------------------------------------------------------------

# (opens incident, pages, kills, warns) under enforce, once confirmed
ENFORCE = {
    V.CROSS_TENANT: (True, True, True, False),
    V.FOREIGN: (True, True, True, False),
    V.MISROUTED: (True, True, False, False),
    V.FORGED: (True, True, False, False),
    V.STALE: (False, False, False, True),
    V.OK: (False, False, False, False),
    V.DEGRADED: (False, False, False, False),
    V.UNDECODABLE: (False, False, False, False),
}


@pytest.mark.parametrize("mode", list(Mode))
@pytest.mark.parametrize("verdict", ALL_VERDICTS)
def test_every_verdict_in_every_mode(verdict: Verdict, mode: Mode) -> None:
    decisions = run(engine_for(mode), [verdict] * 10)
    opened = [d for d in decisions if d.open_incident]
    paged = [d for d in decisions if d.page]
    killed = [d for d in decisions if d.kill]
    warned = [d for d in decisions if d.warn]
    incident, page, kill, warn = ENFORCE[verdict]
    # Recording happens in every mode; a storm is one incident (or one warning).
    assert len(opened) == int(incident)
    assert len(warned) == int(warn)
    if mode is Mode.ENFORCE:
        assert (len(paged), len(killed)) == (int(page), int(kill))
    elif mode is Mode.ALERT_ONLY:
        assert (len(paged), len(killed)) == (int(page), 0)
    else:
        assert (len(paged), len(killed)) == (0, 0)
        assert all(d.dry_run for d in decisions)
        for first in (opened or warned)[:1]:
            # A dry run reports what enforce would have done.
            assert (first.would_page, first.would_kill) == (page, kill)
            assert first.reason.startswith("dry-run:")
    if mode is Mode.ALERT_ONLY and kill:
        assert "alert-only" in opened[0].reason


def test_alert_only_pages_a_cross_tenant_leak_but_never_kills() -> None:
    (decision,) = run(engine_for(Mode.ALERT_ONLY), [V.CROSS_TENANT])
    assert decision.open_incident and decision.page and not decision.kill
    assert decision.would_kill


# --- confirmation -----------------------------------------------------------------------


def test_one_cross_tenant_frame_is_proof() -> None:
    decision = engine_for().decide("viewer-1", V.CROSS_TENANT, 0.0)
    assert decision.kill and decision.page and decision.open_incident


def test_foreign_needs_three_of_the_last_five_frames() -> None:
    decisions = run(engine_for(), [V.FOREIGN, V.OK, V.FOREIGN, V.OK, V.FOREIGN])
    assert [d.kill for d in decisions] == [False, False, False, False, True]
    assert "1 of the last 5 frames" in decisions[0].reason


def test_scattered_garbled_frames_never_switch_an_integration_off() -> None:
    # Two foreign frames in any five: a flaky network, not a leak.
    decisions = run(engine_for(), [V.FOREIGN, V.OK, V.OK, V.FOREIGN, V.OK, V.OK] * 10)
    assert not any(d.open_incident or d.page or d.kill for d in decisions)


def test_confirmation_counts_one_viewer_stream_only() -> None:
    engine = engine_for()
    for i, stream in enumerate(["a", "b", "a", "b", "c", "c"]):
        decision = engine.decide(stream, V.FOREIGN, float(i))
        assert not decision.open_incident, "two frames per stream must not add up across streams"
    assert engine.decide("a", V.FOREIGN, 10.0).open_incident


def test_stale_warns_after_confirmation_and_never_pages() -> None:
    decisions = run(engine_for(), [V.STALE, V.OK, V.STALE, V.STALE, V.STALE])
    assert [d.warn for d in decisions] == [False, False, False, True, False]
    assert not any(d.page or d.kill or d.open_incident for d in decisions)
    assert decisions[4].incident == IncidentKey("relay", V.STALE)
    assert decisions[4].occurrences == 2


def reference_first_confirmation(
    verdicts: list[Verdict], target: Verdict, frames: int, of_last: int
) -> int | None:
    window: deque[Verdict] = deque(maxlen=of_last)
    for index, verdict in enumerate(verdicts):
        window.append(verdict)
        if verdict is target and sum(v is target for v in window) >= frames:
            return index
    return None


@settings(max_examples=200, deadline=None)
@given(st.lists(st.sampled_from([V.OK, V.FOREIGN, V.DEGRADED, V.UNDECODABLE]), max_size=40))
def test_foreign_opens_exactly_when_the_reference_model_confirms(verdicts: list[Verdict]) -> None:
    decisions = run(engine_for(), verdicts)
    opened = [i for i, d in enumerate(decisions) if d.open_incident]
    expected = reference_first_confirmation(verdicts, V.FOREIGN, 3, 5)
    assert opened == ([] if expected is None else [expected])
    # Only the opening frame kills; the rest of the storm attaches.
    assert [i for i, d in enumerate(decisions) if d.kill] == opened


# --- dedup -------------------------------------------------------------------------------


def test_a_leak_storm_is_one_incident_with_occurrences() -> None:
    engine = engine_for()
    decisions = [engine.decide(f"viewer-{i % 7}", V.CROSS_TENANT, float(i)) for i in range(100)]
    assert sum(d.open_incident for d in decisions) == 1
    assert sum(d.page for d in decisions) == 1
    assert sum(d.kill for d in decisions) == 1
    assert [d.occurrences for d in decisions] == list(range(1, 101))
    assert decisions[-1].reason == "attached to the open cross_tenant incident (occurrence 100)"
    (open_incident,) = engine.open_incidents
    assert open_incident == OpenIncident(IncidentKey("relay", V.CROSS_TENANT), opened_at=0.0, occurrences=100)


def test_different_verdicts_are_separate_incidents() -> None:
    engine = engine_for()
    assert engine.decide("a", V.MISROUTED, 0.0).open_incident
    assert engine.decide("a", V.CROSS_TENANT, 1.0).open_incident
    assert not engine.decide("b", V.MISROUTED, 2.0).open_incident


def test_resolving_lets_the_next_leak_open_a_new_incident() -> None:
    engine = engine_for()
    assert engine.decide("a", V.FORGED, 0.0).open_incident
    assert not engine.decide("a", V.FORGED, 1.0).page
    resolved = engine.resolve(V.FORGED)
    assert resolved is not None and resolved.occurrences == 2
    assert engine.resolve(V.FORGED) is None
    again = engine.decide("a", V.FORGED, 2.0)
    assert again.open_incident and again.page and again.occurrences == 1


def test_restart_with_an_open_incident_does_not_page_again() -> None:
    known = OpenIncident(IncidentKey("relay", V.CROSS_TENANT), opened_at=0.0, occurrences=5)
    engine = PolicyEngine(Policy(), integration="relay", open_incidents=[known])
    decision = engine.decide("a", V.CROSS_TENANT, 10.0)
    assert not decision.page and not decision.kill and decision.occurrences == 6


def test_open_incident_of_another_integration_is_refused() -> None:
    other = OpenIncident(IncidentKey("other", V.FOREIGN), opened_at=0.0, occurrences=1)
    with pytest.raises(ValueError, match="another integration"):
        PolicyEngine(Policy(), integration="relay", open_incidents=[other])


# --- kill cap ---------------------------------------------------------------------------


def leak_then_resolve(engine: PolicyEngine, at: float) -> Decision:
    decision = engine.decide("a", V.CROSS_TENANT, at)
    engine.resolve(V.CROSS_TENANT)
    return decision


def test_kill_cap_pages_instead_of_killing() -> None:
    engine = engine_for()
    decisions = [leak_then_resolve(engine, 60.0 * i) for i in range(5)]
    assert [d.kill for d in decisions] == [True, True, True, False, False]
    capped = decisions[3]
    assert capped.page and capped.open_incident and capped.kill_capped
    assert "kill cap reached" in capped.reason
    # An hour after the first kill, one slot is free again.
    later = leak_then_resolve(engine, 3600.0 + 1.0)
    assert later.kill and not later.kill_capped


def test_kill_cap_survives_a_restart() -> None:
    engine = PolicyEngine(Policy(), integration="relay", recent_kills=[100.0, 200.0, 300.0])
    assert leak_then_resolve(engine, 400.0).kill_capped
    assert engine.recent_kills(400.0) == (100.0, 200.0, 300.0)


def test_zero_cap_never_kills_automatically() -> None:
    engine = engine_for(kill_cap=KillCap(max_kills=0))
    decision = engine.decide("a", V.CROSS_TENANT, 0.0)
    assert decision.page and not decision.kill and decision.kill_capped


frames = st.tuples(
    st.sampled_from(["a", "b", "c"]),
    st.sampled_from(ALL_VERDICTS),
    st.floats(min_value=0.0, max_value=900.0),  # seconds since the previous frame
    st.booleans(),  # resolve this verdict's incident afterwards
)


@settings(max_examples=150, deadline=None)
@given(st.sampled_from(list(Mode)), st.lists(frames, max_size=80))
def test_invariants_hold_for_any_frame_sequence(
    mode: Mode, sequence: list[tuple[str, Verdict, float, bool]]
) -> None:
    engine = engine_for(mode)
    cap = engine.policy.kill_cap
    now = 0.0
    kills: list[float] = []
    open_now: set[Verdict] = set()
    for stream, verdict, gap, resolve in sequence:
        now += gap
        decision = engine.decide(stream, verdict, now)
        rule = engine.policy.rule(verdict)
        if decision.kill:
            kills.append(now)
            assert mode is Mode.ENFORCE and rule.kill and decision.page
        if decision.page:
            assert mode is not Mode.DRY_RUN and rule.page and decision.open_incident
        if decision.open_incident:
            assert verdict not in open_now, "a second incident opened while one is open"
            open_now.add(verdict)
        if not rule.acts:
            assert decision == Decision(verdict, mode, False, False, False, False, "counted only")
        if resolve:
            engine.resolve(verdict)
            open_now.discard(verdict)
        in_window = [t for t in kills if t > now - cap.window_seconds]
        assert len(in_window) <= cap.max_kills


# --- policy changes ----------------------------------------------------------------------


def test_switching_policy_keeps_windows_and_open_incidents() -> None:
    engine = engine_for(Mode.DRY_RUN)
    run(engine, [V.FOREIGN, V.FOREIGN])
    engine.policy = Policy(mode=Mode.ENFORCE)
    decision = engine.decide("viewer-1", V.FOREIGN, 5.0)
    assert decision.open_incident and decision.kill


# --- configuration -----------------------------------------------------------------------


def test_from_mapping_none_is_the_default_policy() -> None:
    assert Policy.from_mapping(None) == Policy()
    assert Policy.from_mapping({}) == Policy()


def test_from_mapping_overrides_only_what_it_names() -> None:
    policy = Policy.from_mapping(
        {
            "mode": "alert-only",
            "killCap": {"maxKills": 1},
            "verdicts": {
                "foreign": {"confirmation": {"frames": 2}},
                "misrouted": {"kill": True},
                "stale": {"warn": False},
            },
        }
    )
    assert policy.mode is Mode.ALERT_ONLY
    assert policy.kill_cap == KillCap(max_kills=1, window_seconds=3600.0)
    assert policy.rule(V.FOREIGN) == Rule(
        incident=True, page=True, kill=True, confirmation=Confirmation(frames=2, of_last=5)
    )
    assert policy.rule(V.MISROUTED).kill
    assert not policy.rule(V.STALE).acts
    assert policy.rule(V.CROSS_TENANT) == DEFAULT_RULES[V.CROSS_TENANT]


@given(
    mode=st.sampled_from(list(Mode)),
    max_kills=st.integers(min_value=0, max_value=10),
    window=st.floats(min_value=1.0, max_value=86400.0),
    of_last=st.integers(min_value=1, max_value=10),
    data=st.data(),
)
def test_to_mapping_round_trips(
    mode: Mode, max_kills: int, window: float, of_last: int, data: st.DataObject
) -> None:
    frames_needed = data.draw(st.integers(min_value=1, max_value=of_last))
    confirmation = Confirmation(frames=frames_needed, of_last=of_last)
    policy = Policy(
        mode=mode,
        rules={V.FOREIGN: Rule(incident=True, page=True, kill=True, confirmation=confirmation)},
        kill_cap=KillCap(max_kills=max_kills, window_seconds=window),
    )
    assert Policy.from_mapping(policy.to_mapping()) == policy


@pytest.mark.parametrize(
    ("spec", "field", "hint"),
    [
        ("enforce", "integration.policy", "expected a mapping"),
        ({"mode": "panic"}, "integration.policy.mode", "accepted: enforce, alert-only, dry-run"),
        ({"modes": "enforce"}, "integration.policy.modes", "accepted: mode, killCap, verdicts"),
        ({"verdicts": {"leaked": {}}}, "integration.policy.verdicts.leaked", "accepted: ok, cross_tenant"),
        ({"verdicts": {"foreign": {"kil": True}}}, "integration.policy.verdicts.foreign.kil", "accepted"),
        (
            {"verdicts": {"foreign": {"kill": "yes"}}},
            "integration.policy.verdicts.foreign.kill",
            "true or false",
        ),
        (
            {"verdicts": {"foreign": {"confirmation": {"frames": 6}}}},
            "integration.policy.verdicts.foreign.confirmation.frames",
            "from 1 to ofLast (5)",
        ),
        (
            {"verdicts": {"foreign": {"confirmation": {"frames": 1, "ofLast": 0}}}},
            "integration.policy.verdicts.foreign.confirmation.ofLast",
            "from 1 to 100",
        ),
        ({"verdicts": {"stale": {"page": True}}}, "integration.policy.verdicts.stale.page", "incident: true"),
        (
            {"verdicts": {"forged": {"page": False, "kill": True}}},
            "integration.policy.verdicts.forged.kill",
            "someone must be told",
        ),
        (
            {"verdicts": {"stale": {"incident": True}}},
            "integration.policy.verdicts.stale.warn",
            "without an incident",
        ),
        ({"verdicts": {"ok": {"warn": True}}}, "integration.policy.verdicts.ok", "healthy case"),
        ({"killCap": {"maxKills": -1}}, "integration.policy.killCap.maxKills", ">= 0"),
        ({"killCap": {"windowSeconds": 0}}, "integration.policy.killCap.windowSeconds", "> 0"),
        ({"killCap": {"windowSeconds": "1h"}}, "integration.policy.killCap.windowSeconds", "a number"),
        ({"killCap": {"maxKills": True}}, "integration.policy.killCap.maxKills", "an integer"),
    ],
)
def test_from_mapping_errors_name_the_field(spec: object, field: str, hint: str) -> None:
    with pytest.raises(PolicyError) as caught:
        Policy.from_mapping(spec)
    assert caught.value.field == field
    assert str(caught.value).startswith(f"{field}: ")
    assert hint in str(caught.value)


def test_where_prefixes_error_paths() -> None:
    with pytest.raises(PolicyError, match=r"^spec\.policy\.mode: "):
        Policy.from_mapping({"mode": "x"}, where="spec.policy")


def test_rules_built_in_code_are_checked_too() -> None:
    with pytest.raises(PolicyError) as caught:
        Rule(kill=True)
    assert caught.value.field == "kill"
    with pytest.raises(PolicyError, match=r"^rules\.ok: "):
        Policy(rules={V.OK: Rule(warn=True)})
    with pytest.raises(PolicyError, match=r"^mode: "):
        Policy(mode="strict")  # type: ignore[arg-type]
    assert Policy(mode="dry-run").mode is Mode.DRY_RUN  # type: ignore[arg-type]
