"""``canarywatch bench video`` runs and prints its tables (figures are not asserted:
benchmarks print ratios, tests check behaviour)."""

from __future__ import annotations

import pytest

from canarywatch.bench.video import run_video_benchmark
from streaming import require_binaries


def test_the_video_benchmark_prints_both_tables_and_attributes_nothing_falsely(
    capsys: pytest.CaptureFixture[str],
) -> None:
    require_binaries("ffmpeg")
    assert run_video_benchmark(seconds=4, marker_frames=30, latency_seconds=15) == 0
    printed = capsys.readouterr().out
    rows = ("ffmpeg -f null", "viewer, keyframes only", "viewer, every frame", "640x360", "320x180")
    transports = (
        "mp4 (progressive, live fMP4)",
        "llhls (parts, blocking reloads)",
        "whep (WebRTC, 2 judged/s)",
    )
    for row in (*rows, *transports, "whep (WebRTC, every frame): capture → verdict p50"):
        assert row in printed, printed
    # capture → verdict, p50 and p99, for every path the reference relay serves
    latency = printed.split("Capture → verdict latency per path", 1)[1].splitlines()
    rows = {line.split("  ")[0].strip(): line.split() for line in latency[2:] if line.strip()}
    assert set(rows) == {"snapshot", "mjpeg", "hls", "hub → hls", "hub → rtsp"}, latency
    for row, cells in rows.items():
        assert "too few" not in " ".join(cells), latency
        p50, p99 = float(cells[-2]), float(cells[-1])
        assert 0 <= p50 <= p99, (row, cells)
