"""Metrics: names dashboards rely on, record_* semantics, exposition over loopback."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import aiohttp
import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from canarywatch.coverage import CoverageTarget, assess
from canarywatch.incidents.pagerduty import Outcome
from canarywatch.metrics import (
    DETECTION_BUCKETS,
    METRIC_NAMES,
    Metrics,
    MetricsError,
    metrics_app,
    serve_metrics,
)
from canarywatch.verdicts import Verdict

VIEWER: dict[str, Any] = {
    "integration": "relay",
    "probe": "p1",
    "tenant": "acme-7",
    "path": "snapshot",
    "network_profile": "poor",
}
RESPONDER: dict[str, Any] = {"namespace": "shop", "integration": "relay"}


def exercised() -> Metrics:
    """A Metrics with every series touched once, so every name is in the exposition."""
    metrics = Metrics()
    metrics.record_frame(**VIEWER, verdict=Verdict.OK, age_seconds=0.4, verdict_latency_seconds=0.45)
    metrics.record_decode(seconds=0.0004)
    metrics.record_last_frame(**VIEWER, camera="cam-1", at=1_700_000_000.0)
    metrics.record_viewer_error(**VIEWER, kind="timeout")
    metrics.record_report(integration="relay", probe="p1", verdict=Verdict.CROSS_TENANT)
    metrics.record_incident(**RESPONDER, verdict=Verdict.CROSS_TENANT, detection_seconds=0.2)
    metrics.record_open_incidents(**RESPONDER, by_verdict={"cross_tenant": 1})
    metrics.record_shutdown(**RESPONDER, seconds=0.8)
    metrics.record_suspended(**RESPONDER, suspended=True)
    metrics.record_degraded(**RESPONDER, degraded=False)
    metrics.record_kill_cap(**RESPONDER, exhausted_until=None)
    metrics.record_killswitch_action(**RESPONDER, action="engage", result="succeeded")
    metrics.record_pagerduty_event(action="trigger", result="delivered")
    metrics.record_leaked_while_suspended(namespace="ns", integration="relay")
    metrics.record_probe(**RESPONDER, probe="p1", viewers=4)
    metrics.record_maintenance(**RESPONDER, probe="p1", paused=False)
    target = CoverageTarget(leak_rate=0.01, detect_within_seconds=40)
    rows = assess([("snapshot", "poor", 12.0, 4)], target)
    metrics.record_coverage(**RESPONDER, probe="p1", rows=rows, targeted=True)
    metrics.record_cameras(**RESPONDER, probe="p1", up={"acme-7": True})
    metrics.record_unwatched({("CanaryProbe", "team-c"): 1})
    camera = PublishedCamera("acme-7", 0, 3)
    metrics.delivery.publish_cameras(integration="relay", probe="p1", cameras=lambda: [camera])
    metrics.delivery.record_seen(integration="relay", probe="p1", tenant="acme-7", camera=0)
    return metrics


@dataclass
class PublishedCamera:
    tenant: str
    camera: int
    published: int


def text_of(metrics: Metrics) -> str:
    return generate_latest(metrics.registry).decode()


def exposed_names(text: str) -> set[str]:
    return {sample.name for family in text_string_to_metric_families(text) for sample in family.samples}


def test_metric_names_are_exactly_the_documented_ones() -> None:
    # DESIGN.md §7 plus the two operational counters; dashboards query these names.
    assert set(METRIC_NAMES) == {
        "canarywatch_frames_total",
        "canarywatch_incidents_total",
        "canarywatch_detection_seconds",
        "canarywatch_shutdown_seconds",
        "canarywatch_integration_suspended",
        "canarywatch_frame_age_seconds",
        "canarywatch_decode_seconds",
        "canarywatch_viewer_last_frame_timestamp_seconds",
        "canarywatch_pagerduty_events_total",
        "canarywatch_viewer_errors_total",
        "canarywatch_killswitch_actions_total",
        "canarywatch_leaked_frames_while_suspended_total",
        # what issue 12 added: blind spots, incident state, kill cap, coverage
        "canarywatch_probe_success",
        "canarywatch_viewer_reports_total",
        "canarywatch_open_incidents",
        "canarywatch_integration_degraded",
        "canarywatch_kill_cap_exhausted_until_timestamp_seconds",
        "canarywatch_probe_viewers_expected",
        "canarywatch_maintenance",
        "canarywatch_coverage_fetches_per_second",
        "canarywatch_coverage_detect_seconds",
        "canarywatch_coverage_probability",
        "canarywatch_unwatched_objects",
        "canarywatch_camera_up",
        "canarywatch_coverage_shortfall_fetches_per_second",
        # published vs seen across pods (issue 11)
        "canarywatch_frames_published_total",
        "canarywatch_frames_seen_total",
        "canarywatch_capture_to_verdict_seconds",
    }
    assert len(METRIC_NAMES) == len(set(METRIC_NAMES))


def test_registry_holds_exactly_the_documented_metrics() -> None:
    families = list(Metrics().registry.collect())
    # Queries name a counter with its ``_total`` suffix; the client library stores it without.
    queried = {f"{f.name}_total" if f.type == "counter" else f.name for f in families}
    assert queried == set(METRIC_NAMES)


def test_every_metric_name_is_in_the_exposition() -> None:
    names = exposed_names(text_of(exercised()))
    for name in METRIC_NAMES:
        assert names & {name, f"{name}_bucket", f"{name}_count", f"{name}_sum"}, f"{name} not exposed"


def test_fresh_registry_per_instance() -> None:
    first, second = Metrics(), Metrics()
    first.record_frame(**VIEWER, verdict="ok")
    labels = {**VIEWER, "verdict": "ok"}
    assert first.registry.get_sample_value("canarywatch_frames_total", labels) == 1.0
    assert second.registry.get_sample_value("canarywatch_frames_total", labels) is None


def test_injected_registry_is_used() -> None:
    registry = CollectorRegistry()
    metrics = Metrics(registry)
    metrics.record_decode(seconds=0.002)
    assert registry.get_sample_value("canarywatch_decode_seconds_count") == 1.0


def test_frames_counted_per_verdict_and_age_observed() -> None:
    metrics = Metrics()
    for _ in range(3):
        metrics.record_frame(**VIEWER, verdict=Verdict.OK, age_seconds=0.3)
    metrics.record_frame(**VIEWER, verdict=Verdict.FOREIGN)
    get = metrics.registry.get_sample_value
    assert get("canarywatch_frames_total", {**VIEWER, "verdict": "ok"}) == 3.0
    assert get("canarywatch_frames_total", {**VIEWER, "verdict": "foreign"}) == 1.0
    age = {"integration": "relay", "probe": "p1", "path": "snapshot", "network_profile": "poor"}
    assert get("canarywatch_frame_age_seconds_count", age) == 3.0
    assert get("canarywatch_frame_age_seconds_bucket", {**age, "le": "0.25"}) == 0.0
    assert get("canarywatch_frame_age_seconds_bucket", {**age, "le": "0.5"}) == 3.0


def test_clock_skew_age_counts_as_fresh() -> None:
    metrics = Metrics()
    metrics.record_frame(**VIEWER, verdict=Verdict.OK, age_seconds=-2.0)
    age = {"integration": "relay", "probe": "p1", "path": "snapshot", "network_profile": "poor"}
    assert metrics.sample("canarywatch_frame_age_seconds_sum", age) == 0.0
    assert metrics.sample("canarywatch_frame_age_seconds_bucket", {**age, "le": "0.1"}) == 1.0


def test_detection_buckets_span_a_millisecond_to_a_minute() -> None:
    assert DETECTION_BUCKETS[0] == 0.001
    assert DETECTION_BUCKETS[-1] == 60.0
    assert list(DETECTION_BUCKETS) == sorted(DETECTION_BUCKETS)


def test_incident_and_detection_time() -> None:
    metrics = Metrics()
    metrics.record_incident(**RESPONDER, verdict="cross_tenant", detection_seconds=0.003)
    metrics.record_incident(**RESPONDER, verdict="cross_tenant")
    assert metrics.sample("canarywatch_incidents_total", {**RESPONDER, "verdict": "cross_tenant"}) == 2
    bucket = {**RESPONDER, "le": "0.005"}
    assert metrics.sample("canarywatch_detection_seconds_bucket", bucket) == 1.0
    assert metrics.sample("canarywatch_detection_seconds_count", RESPONDER) == 1.0


def test_suspended_gauge_goes_up_and_down() -> None:
    metrics = Metrics()
    metrics.record_suspended(**RESPONDER, suspended=True)
    assert metrics.sample("canarywatch_integration_suspended", RESPONDER) == 1.0
    metrics.record_suspended(**RESPONDER, suspended=False)
    assert metrics.sample("canarywatch_integration_suspended", RESPONDER) == 0.0
    # same-named integrations in two namespaces no longer share a gauge
    assert metrics.sample("canarywatch_integration_suspended", {**RESPONDER, "namespace": "other"}) is None


def test_last_frame_timestamp_and_viewer_errors() -> None:
    metrics = Metrics()
    metrics.record_last_frame(**VIEWER, camera="cam-1", at=100.0)
    metrics.record_last_frame(**VIEWER, camera="cam-1", at=105.5)
    labels = {**VIEWER, "camera": "cam-1"}
    assert metrics.sample("canarywatch_viewer_last_frame_timestamp_seconds", labels) == 105.5
    metrics.record_viewer_error(**VIEWER, kind="http_5xx")
    assert metrics.sample("canarywatch_viewer_errors_total", {**VIEWER, "kind": "http_5xx"}) == 1.0


def test_probe_success_follows_the_last_fetch_of_the_path() -> None:
    metrics = Metrics()
    success = {k: v for k, v in VIEWER.items()}
    metrics.record_frame(**VIEWER, verdict=Verdict.OK)
    assert metrics.sample("canarywatch_probe_success", success) == 1
    metrics.record_viewer_error(**VIEWER, kind="timeout")
    assert metrics.sample("canarywatch_probe_success", success) == 0
    metrics.record_frame(**VIEWER, verdict=Verdict.OK)
    metrics.record_frame(**VIEWER, verdict=Verdict.STALE)
    assert metrics.sample("canarywatch_probe_success", success) == 0


def test_open_incidents_gauge_follows_the_state_not_the_frames() -> None:
    metrics = Metrics()
    metrics.record_open_incidents(**RESPONDER, by_verdict={"cross_tenant": 2})
    assert metrics.sample("canarywatch_open_incidents", {**RESPONDER, "verdict": "cross_tenant"}) == 2
    assert metrics.sample("canarywatch_open_incidents", {**RESPONDER, "verdict": "foreign"}) == 0
    metrics.record_open_incidents(**RESPONDER, by_verdict={})
    assert metrics.sample("canarywatch_open_incidents", {**RESPONDER, "verdict": "cross_tenant"}) == 0


def test_a_deleted_probes_series_go_away() -> None:
    metrics = exercised()
    probe = {**RESPONDER, "probe": "p1"}
    assert metrics.sample("canarywatch_probe_viewers_expected", probe) == 4
    metrics.forget_probe(**probe)
    assert metrics.sample("canarywatch_probe_viewers_expected", probe) is None
    coverage = {**probe, "path": "snapshot", "network_profile": "poor"}
    assert metrics.sample("canarywatch_coverage_detect_seconds", coverage) is None


def test_pagerduty_hook_counts_client_outcomes() -> None:
    metrics = Metrics()
    hook = metrics.pagerduty_hook()
    hook("trigger", Outcome.RETRY.value)
    hook("trigger", Outcome.DELIVERED.value)
    hook("trigger", Outcome.DEDUPLICATED.value)
    get = metrics.sample
    assert get("canarywatch_pagerduty_events_total", {"action": "trigger", "result": "retry"}) == 1.0
    assert get("canarywatch_pagerduty_events_total", {"action": "trigger", "result": "delivered"}) == 1.0
    assert get("canarywatch_pagerduty_events_total", {"action": "trigger", "result": "deduplicated"}) == 1.0


def test_killswitch_hook_labels_integration() -> None:
    metrics = Metrics()
    hook = metrics.killswitch_hook(**RESPONDER)
    hook("engage", "succeeded")
    hook("resume", "skipped")
    name = "canarywatch_killswitch_actions_total"
    assert metrics.sample(name, {**RESPONDER, "action": "engage", "result": "succeeded"}) == 1
    assert metrics.sample(name, {**RESPONDER, "action": "resume", "result": "skipped"}) == 1


@pytest.mark.parametrize(
    "call",
    [
        lambda m: m.record_frame(**VIEWER, verdict="leaked"),
        lambda m: m.record_incident(**RESPONDER, verdict="OK"),
        lambda m: m.record_pagerduty_event(action="trigger", result="maybe"),
        lambda m: m.record_pagerduty_event(action="page", result="delivered"),
        lambda m: m.record_killswitch_action(**RESPONDER, action="kill", result="succeeded"),
        lambda m: m.record_killswitch_action(**RESPONDER, action="engage", result="ok"),
    ],
)
def test_unknown_vocabulary_is_refused_not_minted(call: Callable[[Metrics], None]) -> None:
    metrics = Metrics()
    with pytest.raises(MetricsError, match="expected one of"):
        call(metrics)
    assert "canarywatch_frames_total{" not in text_of(metrics)


async def test_exposition_over_loopback() -> None:
    metrics = exercised()
    server = await serve_metrics(metrics)
    try:
        async with aiohttp.ClientSession() as session:
            async with session.get(server.url) as response:
                assert response.status == 200
                content_type = response.headers["Content-Type"]
                text = await response.text()
            async with session.get(
                server.url, headers={"Accept": "application/openmetrics-text; version=1.0.0"}
            ) as response:
                openmetrics_type = response.headers["Content-Type"]
                openmetrics = await response.text()
            async with session.get(f"http://127.0.0.1:{server.port}/healthz") as response:
                assert response.status == 200
    finally:
        await server.stop()
    # The classic text format Prometheus has always scraped, unless it asks for more.
    assert content_type.startswith("text/plain; version=0.0.4")
    names = exposed_names(text)
    assert all(names & {n, f"{n}_count"} for n in METRIC_NAMES)
    assert (
        'canarywatch_frames_total{integration="relay",network_profile="poor",path="snapshot",'
        'probe="p1",tenant="acme-7",verdict="ok"} 1.0'
    ) in text
    assert openmetrics_type.startswith("application/openmetrics-text")
    assert openmetrics.rstrip().endswith("# EOF")
    await server.stop()  # a second stop is harmless


async def test_healthz_reflects_the_health_callback() -> None:
    healthy = {"value": True}

    def broken() -> bool:
        raise RuntimeError("database gone")

    async def status_of(health: Callable[[], bool]) -> int:
        async with (
            await serve_metrics(Metrics(), health=health) as server,
            aiohttp.ClientSession() as session,
            session.get(f"http://127.0.0.1:{server.port}/healthz") as response,
        ):
            return response.status

    assert await status_of(lambda: healthy["value"]) == 200
    healthy["value"] = False
    assert await status_of(lambda: healthy["value"]) == 503
    assert await status_of(broken) == 503


def test_metrics_app_routes() -> None:
    app = metrics_app(Metrics(), health=None)
    paths = {resource.canonical for resource in app.router.resources()}
    assert paths == {"/metrics", "/healthz"}


def test_prime_creates_every_verdict_series_at_zero() -> None:
    from canarywatch.metrics import Metrics

    metrics = Metrics()
    metrics.prime(integration="i", probe="p", streams=[("a", "snapshot", "good"), ("b", "mjpeg", "poor")])
    metrics.prime_responses(namespace="", integration="i")
    stream = {"integration": "i", "probe": "p", "tenant": "b", "path": "mjpeg", "network_profile": "poor"}
    labels = {**stream, "verdict": "cross_tenant"}
    assert metrics.sample("canarywatch_frames_total", labels) == 0
    assert (
        metrics.sample(
            "canarywatch_incidents_total", {"integration": "i", "verdict": "foreign", "namespace": ""}
        )
        == 0
    )
    metrics.record_frame(**stream, verdict="cross_tenant")
    assert metrics.sample("canarywatch_frames_total", labels) == 1


def test_published_is_read_from_the_cameras_and_seen_starts_at_zero_with_the_same_labels() -> None:
    """The alert joins a camera pod's published count with the viewers' seen count: both
    carry (integration, probe, tenant, camera) from the configuration and nothing else."""
    metrics = Metrics()
    cameras = [PublishedCamera("acme-7", 0, 0), PublishedCamera("bravo-2", 1, 0)]
    metrics.delivery.publish_cameras(integration="relay", probe="p1", cameras=lambda: cameras)
    metrics.delivery.prime_seen(integration="relay", probe="p1", cameras=[("acme-7", 0)])
    labels = {"integration": "relay", "probe": "p1", "tenant": "acme-7", "camera": "0"}
    assert metrics.sample("canarywatch_frames_published_total", labels) == 0
    assert metrics.sample("canarywatch_frames_seen_total", labels) == 0
    cameras[0].published = 7  # counted by the camera, read at the scrape
    metrics.delivery.record_seen(integration="relay", probe="p1", tenant="acme-7", camera=0)
    assert metrics.sample("canarywatch_frames_published_total", labels) == 7
    assert metrics.sample("canarywatch_frames_seen_total", labels) == 1
    bravo = {**labels, "tenant": "bravo-2", "camera": "1"}
    assert metrics.sample("canarywatch_frames_published_total", bravo) == 0
    text = text_of(metrics)
    series = 'canarywatch_frames_published_total{camera="0",integration="relay",probe="p1",tenant="acme-7"}'
    assert f"{series} 7.0" in text


def test_capture_to_verdict_latency_is_a_histogram_per_path_and_profile() -> None:
    metrics = Metrics()
    metrics.record_frame(**VIEWER, verdict=Verdict.OK, age_seconds=0.4, verdict_latency_seconds=0.45)
    metrics.record_frame(**VIEWER, verdict=Verdict.UNDECODABLE)  # no capture time: not observed
    labels = {k: VIEWER[k] for k in ("integration", "probe", "path", "network_profile")}
    assert metrics.sample("canarywatch_capture_to_verdict_seconds_count", labels) == 1
    assert metrics.sample("canarywatch_capture_to_verdict_seconds_bucket", {**labels, "le": "0.5"}) == 1
    assert metrics.sample("canarywatch_capture_to_verdict_seconds_bucket", {**labels, "le": "0.25"}) == 0
