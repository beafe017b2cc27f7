"""`canarywatch.bench.pipeline` runs end to end with tiny parameters.

Counts only: every injected leak is detected, paged and switched off, the viewers
judge frames, the no-fault soak raises nothing. Timings are printed by the benchmark,
never asserted (DESIGN.md: benchmarks print figures).
"""

from __future__ import annotations

import pytest

from canarywatch.bench import pipeline as bench
from canarywatch.bench.harness import percentile
from canarywatch.bench.pipeline import LeakReport, SoakReport, ThroughputRow


@pytest.fixture(scope="module")
def leaks() -> LeakReport:
    # good networks only: a lost request on `poor` waits out a 10-30 s timeout
    return bench.leak_benchmark(3, profiles=("good",))


@pytest.fixture(scope="module")
def throughput() -> list[ThroughputRow]:
    return bench.throughput_benchmark((10,), 2.0)


@pytest.fixture(scope="module")
def soak() -> SoakReport:
    return bench.soak_benchmark(2.0)


def test_every_injected_leak_is_detected_paged_and_switched_off(leaks: LeakReport) -> None:
    assert leaks.injected == 3
    assert leaks.detected == 3
    assert leaks.missed == 0
    assert leaks.incidents == 3
    assert leaks.unexpected == 0
    assert leaks.switched_off == 3
    assert leaks.paged == 3
    assert leaks.pagerduty_events == 3
    assert len(leaks.samples) == 3
    assert len(leaks.recoveries) + leaks.recovery_timeouts == 3
    for sample in leaks.samples:
        assert sample.detect >= 0
        assert sample.switch_off > 0
        assert sample.received_to_off >= sample.switch_off
        assert sample.page is not None
        assert sample.path in {"snapshot", "mjpeg"}


def test_viewer_throughput_counts_verdicts_cpu_and_memory(throughput: list[ThroughputRow]) -> None:
    (row,) = throughput
    assert row.streams == 10
    assert row.verdicts > 0
    assert set(row.verdict_counts) == {"ok"}
    assert row.cpu_seconds > 0
    assert row.wall_seconds > 0
    assert row.rss_after > 0
    assert row.rss_before > 0
    assert row.window[1] > row.window[0]


def test_no_fault_soak_on_degraded_networks_raises_no_incident(soak: SoakReport) -> None:
    assert soak.incidents == 0
    assert soak.frames > 0
    assert sum(soak.verdicts.values()) == soak.frames
    assert soak.streams > 0
    assert {key.split("/")[1] for key in soak.by_path} <= {"poor", "extreme"}


def test_the_tables_print(
    leaks: LeakReport,
    throughput: list[ThroughputRow],
    soak: SoakReport,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setattr(bench, "leak_benchmark", lambda leaks_, **_: leaks)
    monkeypatch.setattr(bench, "throughput_benchmark", lambda *_, **__: throughput)
    monkeypatch.setattr(bench, "soak_benchmark", lambda *_: soak)
    assert bench.run_pipeline_benchmark(leaks=3, streams=(10,), seconds=2.0, soak_seconds=2.0) == 0
    out = capsys.readouterr().out
    assert "leaks detected 3 of 3" in out
    assert "switched off 3" in out
    assert "about 7 days" in out
    assert "p99 <= 250.0 ms" in out
    assert "verdicts/CPU-s" in out
    assert "incidents 0 (expected 0)" in out


def test_percentile_is_nearest_rank() -> None:
    values = [float(v) for v in range(1, 21)]
    assert percentile(values, 50) == 10.0
    assert percentile(values, 99) == 20.0
    assert percentile([3.0], 99) == 3.0
