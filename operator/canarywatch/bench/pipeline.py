"""The pipeline benchmark (``run_pipeline_benchmark``, for a ``canarywatch bench pipeline``
command): how fast a leak is caught and switched off, what a viewer costs, and how quiet
the pipeline stays when nothing leaks.

Three measurements, each printed as a small table (figures, never assertions):

1. **Detect and switch off.** The standalone ``Pipeline`` watches the reference relay
   over loopback, pages the local PagerDuty Events v2 receiver and switches the relay
   off through its real admin webhook. Leaks are injected the way a misrouting bug
   produces them: another tenant's signed canary frame is uploaded into a victim
   camera's ingest. After each incident the kill switch is resumed (relay admin
   resume), the victim's viewers are seen to be back on their own frames, the policy
   engine's incident is resolved, and the next leak goes in.
2. **Viewer throughput and memory.** N snapshot viewers (the production transport,
   judge and monitor) poll 640×360 canary frames from the relay over loopback, in a
   fresh process of their own, so that process CPU time and RSS are the viewers'
   alone (the relay and the cameras run in the parent).
3. **False positives.** The pipeline against the relay with no fault, every viewer on
   the ``poor`` or ``extreme`` profile (slow viewers that send client hints get the
   relay's q30 low-bandwidth variant; the table counts who did), over snapshots, MJPEG,
   event thumbnails and authorization probes. An incident is counted, then resumed and
   resolved, so the soak watches a live integration for its whole duration.

One module per measurement (``leaks``, ``throughput``, ``soak``); what they share is in
``harness``. The viewers are the production ones (``viewer.runner``) throughout.
"""

from __future__ import annotations

from canarywatch.bench.leaks import LeakReport, LeakSample, leak_benchmark, print_leak_report
from canarywatch.bench.soak import SoakReport, print_soak, soak_benchmark
from canarywatch.bench.throughput import ThroughputRow, print_throughput, throughput_benchmark

__all__ = [
    "LeakReport",
    "LeakSample",
    "SoakReport",
    "ThroughputRow",
    "leak_benchmark",
    "print_leak_report",
    "print_soak",
    "print_throughput",
    "run_pipeline_benchmark",
    "soak_benchmark",
    "throughput_benchmark",
]


def run_pipeline_benchmark(
    *,
    leaks: int = 20,
    streams: tuple[int, ...] = (100, 500),
    seconds: float = 10.0,
    soak_seconds: float = 60.0,
) -> int:
    """Print the three tables; 0 when every leak was caught and switched off and the soak was quiet."""
    leak_report = leak_benchmark(leaks)
    print_leak_report(leak_report)
    interval, tenants, cameras = 0.25, 10, 2
    rows = throughput_benchmark(
        streams, seconds, interval=interval, tenants=tenants, cameras_per_tenant=cameras
    )
    print_throughput(rows, interval=interval, tenants=tenants, cameras=cameras)
    soak = soak_benchmark(soak_seconds)
    print_soak(soak)
    caught = leak_report.detected == leaks and leak_report.switched_off == leaks
    return 0 if caught and leak_report.unexpected == 0 and soak.incidents == 0 else 1
