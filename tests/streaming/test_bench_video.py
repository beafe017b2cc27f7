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
    assert run_video_benchmark(seconds=4, marker_frames=30) == 0
    printed = capsys.readouterr().out
    rows = ("ffmpeg -f null", "viewer, keyframes only", "viewer, every frame", "640x360", "320x180")
    transports = (
        "mp4 (progressive, live fMP4)",
        "llhls (parts, blocking reloads)",
        "whep (WebRTC, 2 judged/s)",
    )
    for row in (*rows, *transports, "whep (WebRTC, every frame): capture → verdict p50"):
        assert row in printed, printed
