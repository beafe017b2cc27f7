"""Detection power (canarywatch.coverage): exact where it claims to be, never optimistic."""

from __future__ import annotations

import math
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from canarywatch.coverage import (
    DEFAULT_TARGET,
    CoverageError,
    CoverageMeter,
    CoverageTarget,
    FetchCounts,
    assess,
    detection_probability,
    detection_seconds,
    fetch_counts,
    fetch_rates,
    required_fetch_rate,
    summarize,
)
from canarywatch.incidents.policy import KillCap
from canarywatch.metrics import Metrics

rates = st.floats(min_value=0.01, max_value=50.0)
leak_rates = st.floats(min_value=1e-4, max_value=0.5)
confidences = st.floats(min_value=0.5, max_value=0.9999)


def test_one_frame_proof_is_the_geometric_law() -> None:
    # 2 fetches/s for 40 s = 80 fetches; a 1 % leak is missed by all of them with 0.99^80.
    p = detection_probability(fetches_per_second=2.0, leak_rate=0.01, seconds=40)
    assert p == pytest.approx(1 - 0.99**80, rel=1e-12)


def test_the_issue_example_reads_as_a_sentence() -> None:
    target = CoverageTarget(leak_rate=0.01, detect_within_seconds=40, confidence=0.99)
    (row,) = assess([("snapshot", "poor", 12.0, 4)], target)
    # 459 fetches reach 99 % for a 1 % leak: 459 / 12 per second = 38.25 s
    assert row.seconds == pytest.approx(459 / 12.0)
    assert row.sufficient
    assert row.statement() == (
        "a leak affecting 1 % of fetches on the poor-network snapshot path is detected "
        "within 39 s with 99 % probability"
    )


def test_a_probe_too_small_for_its_target_says_so() -> None:
    target = CoverageTarget(leak_rate=0.01, detect_within_seconds=40, confidence=0.99)
    (row,) = assess([("mjpeg", "good", 2.0, 1)], target)
    assert not row.sufficient
    assert row.required_fetches_per_second == pytest.approx(459 / 40)
    assert row.seconds == pytest.approx(459 / 2.0)


def test_no_fetches_is_never() -> None:
    target = CoverageTarget(leak_rate=0.01, detect_within_seconds=40)
    (row,) = assess([("events", "good", 0.0, 1)], target)
    assert row.probability == 0.0 and math.isinf(row.seconds) and not row.sufficient
    assert "never detected" in row.statement()


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"leak_rate": 0.0, "detect_within_seconds": 40}, "leakRate"),
        ({"leak_rate": 1.5, "detect_within_seconds": 40}, "leakRate"),
        ({"leak_rate": 0.01, "detect_within_seconds": 0}, "detectWithinSeconds"),
        ({"leak_rate": 0.01, "detect_within_seconds": 40, "confidence": 1.0}, "confidence"),
    ],
)
def test_bad_targets_name_their_field(kwargs: dict[str, float], field: str) -> None:
    with pytest.raises(CoverageError) as caught:
        CoverageTarget(**kwargs)
    assert caught.value.field == field


def test_bad_confirmation_is_refused() -> None:
    with pytest.raises(CoverageError, match="confirmation"):
        detection_probability(fetches_per_second=1, leak_rate=0.1, seconds=10, frames=4, of_last=3)


@given(rate=rates, leak=leak_rates, confidence=confidences)
def test_detection_seconds_is_the_first_time_the_confidence_is_reached(
    rate: float, leak: float, confidence: float
) -> None:
    seconds = detection_seconds(fetches_per_second=rate, leak_rate=leak, confidence=confidence)
    assert math.isfinite(seconds)
    at = detection_probability(fetches_per_second=rate, leak_rate=leak, seconds=seconds)
    assert at >= confidence
    one_fetch_less = seconds - 1.0 / rate
    assert detection_probability(fetches_per_second=rate, leak_rate=leak, seconds=one_fetch_less) < confidence


@given(leak=leak_rates, confidence=confidences, within=st.floats(min_value=1, max_value=3600))
def test_the_required_rate_meets_the_target(leak: float, confidence: float, within: float) -> None:
    target = CoverageTarget(leak_rate=leak, detect_within_seconds=within, confidence=confidence)
    rate = required_fetch_rate(target)
    (row,) = assess([("snapshot", "good", rate, 1)], target)
    assert row.sufficient


@given(
    rate=rates,
    leak=leak_rates,
    seconds=st.floats(min_value=1, max_value=600),
    frames=st.integers(min_value=1, max_value=5),
    extra=st.integers(min_value=0, max_value=5),
    streams=st.integers(min_value=1, max_value=8),
)
def test_power_grows_with_time_and_shrinks_with_stricter_confirmation(
    rate: float, leak: float, seconds: float, frames: int, extra: int, streams: int
) -> None:
    def power(t: float, k: int) -> float:
        return detection_probability(
            fetches_per_second=rate,
            leak_rate=leak,
            seconds=t,
            frames=k,
            of_last=frames + extra,
            streams=streams,
        )

    now = power(seconds, frames)
    assert 0.0 <= now <= 1.0
    # monotone up to floating-point rounding (probabilities near 0 or 1)
    assert power(seconds * 2, frames) >= now - 1e-12
    if frames > 1:
        assert power(seconds, frames - 1) >= now - 1e-12


@settings(max_examples=20, deadline=None)
@given(
    leak=st.floats(min_value=0.05, max_value=0.4),
    fetches=st.integers(min_value=5, max_value=60),
    frames=st.integers(min_value=2, max_value=4),
    extra=st.integers(min_value=0, max_value=3),
    seed=st.integers(min_value=0, max_value=2**32 - 1),
)
def test_the_k_of_n_bound_is_never_above_what_a_simulated_policy_does(
    leak: float, fetches: int, frames: int, extra: int, seed: int
) -> None:
    # The promise is a lower bound: simulate the sliding k-of-n window the policy runs
    # and check the bound is below the simulated rate (with a sampling margin).
    of_last = frames + extra
    rng = random.Random(seed)
    trials = 2000
    hits = 0
    for _ in range(trials):
        window: list[bool] = []
        for _fetch in range(fetches):
            window = [*window, rng.random() < leak][-of_last:]
            if sum(window) >= frames:
                hits += 1
                break
    bound = detection_probability(
        fetches_per_second=1.0, leak_rate=leak, seconds=fetches, frames=frames, of_last=of_last
    )
    margin = 4 * math.sqrt(0.25 / trials)
    assert bound <= hits / trials + margin


def test_fetch_counts_and_rates_from_viewer_samples() -> None:
    def frames(path: str, profile: str, tenant: str, value: float) -> tuple[str, dict[str, str], float]:
        labels = {"probe": "p", "tenant": tenant, "path": path, "network_profile": profile, "verdict": "ok"}
        return "canarywatch_frames_total", labels, value

    def seen(path: str, tenant: str, camera: str) -> tuple[str, dict[str, str], float]:
        labels = {"probe": "p", "tenant": tenant, "camera": camera, "path": path, "network_profile": "poor"}
        return "canarywatch_viewer_last_frame_timestamp_seconds", labels, 1.0

    other_probe = (
        "canarywatch_frames_total",
        {"probe": "q", "path": "snapshot", "network_profile": "poor"},
        1e6,
    )
    before = fetch_counts([frames("snapshot", "poor", "a", 100), other_probe], probe="p", at=1000.0)
    after = fetch_counts(
        [
            frames("snapshot", "poor", "a", 150),
            frames("snapshot", "poor", "b", 30),  # a new viewer: counted from zero
            seen("snapshot", "a", "0"),
            seen("snapshot", "a", "1"),
            seen("snapshot", "b", "0"),
            other_probe,
        ],
        probe="p",
        at=1010.0,
    )
    assert fetch_rates(before, after) == [("snapshot", "poor", 8.0, 3)]
    # a viewer restarted (its counter went down): its frames count from zero
    restarted = fetch_counts([frames("snapshot", "poor", "a", 20)], probe="p", at=1020.0)
    assert fetch_rates(after, restarted) == [("snapshot", "poor", 2.0, 1)]
    assert fetch_rates(None, after) == []


def test_the_meter_assesses_from_the_second_summary_on() -> None:
    meter = CoverageMeter()
    target = CoverageTarget(leak_rate=0.01, detect_within_seconds=40)
    first = FetchCounts(0.0, {("snapshot", "poor"): 0.0}, {("snapshot", "poor"): 1})
    assert meter.update("uid", first, target) is None
    rows = meter.update("uid", FetchCounts(10.0, {("snapshot", "poor"): 120.0}), target)
    assert rows is not None and [r.fetches_per_second for r in rows] == [12.0]
    assert summarize(rows) == "39 s (snapshot/poor)"
    slow = meter.update("uid", FetchCounts(20.0, {("snapshot", "poor"): 130.0}), target)
    assert slow is not None and summarize(slow) == "8 min (snapshot/poor); too slow for the target"
    assert slow[0].to_status()["sufficient"] is False


def test_the_default_target_reads_from_an_empty_spec_and_names_bad_fields() -> None:
    assert CoverageTarget.from_spec(None) == DEFAULT_TARGET
    with pytest.raises(CoverageError) as caught:
        CoverageTarget.from_spec({"leakRate": 2}, "spec.coverageTarget")
    assert caught.value.field == "spec.coverageTarget.leakRate"


@pytest.mark.parametrize(
    ("kills", "until"),
    [
        ([], None),
        ([100.0, 200.0], None),
        ([100.0, 200.0, 300.0], 3700.0),  # the first kill leaves the window at 3700
        ([10.0, 100.0, 200.0, 300.0], 3700.0),  # 10 is outside the window already
    ],
)
def test_the_kill_cap_says_until_when_it_is_used_up(kills: list[float], until: float | None) -> None:
    assert KillCap(max_kills=3, window_seconds=3600).exhausted_until(kills, now=3650.0) == until
    # maxKills 0 never kills automatically: a choice, not an exhausted cap to alert on
    assert KillCap(max_kills=0).exhausted_until(kills, now=3650.0) is None


def test_the_shortfall_is_what_a_path_lacks_to_meet_its_target_and_only_with_a_target() -> None:
    target = CoverageTarget(leak_rate=0.01, detect_within_seconds=60, confidence=0.99)
    short, enough = assess([("mjpeg", "poor", 0.5, 1), ("snapshot", "good", 10.0, 1)], target)
    assert not short.sufficient and enough.sufficient
    assert short.shortfall == pytest.approx(short.required_fetches_per_second - 0.5)
    assert enough.shortfall == 0
    metrics = Metrics()
    probe = {"namespace": "cameras", "integration": "relay", "probe": "p"}
    labels = probe | {"path": "mjpeg", "network_profile": "poor"}
    name = "canarywatch_coverage_shortfall_fetches_per_second"
    metrics.record_coverage(**probe, rows=[short, enough])
    assert metrics.sample(name, labels) is None  # no coverageTarget: nothing promised
    metrics.record_coverage(**probe, rows=[short, enough], targeted=True)
    assert metrics.sample(name, labels) == pytest.approx(short.shortfall)
    metrics.forget_probe(**probe)
    assert metrics.sample(name, labels) is None
