"""Every Prometheus metric canarywatch exports, in one module, and the ``/metrics`` server.

Dashboards and alert rules query exactly the names in ``METRIC_NAMES``; a test keeps the
tuple, the registry and the exposition in step, so a rename cannot silently blank a
panel. Domain code never touches ``prometheus_client`` directly: it calls the small
``record_*`` methods of a ``Metrics`` instance, whose arguments are keyword-only because
five positional strings (integration, probe, tenant, camera, verdict) are too easy to
swap.

Who counts what, so each thing is counted once: a viewer counts the frames it receives
(labelled with the ``path`` and ``network_profile`` they came through); the shell that
*responds* counts incidents, kill switches and pages (the operator in a cluster, labelled
with the integration's ``namespace``; ``canarywatch run`` standalone, whose namespace
is empty and so absent in Prometheus). A viewer pod never counts an incident: the
operator decides whether its LeakIncident is a new incident or one more occurrence.

Label values that come from a closed vocabulary (verdicts, PagerDuty actions and
results, kill-switch steps and results) are checked: an unknown value raises
``MetricsError`` instead of minting a new time series that no dashboard looks at. The
other labels (integration, probe, tenant, camera) come from configuration, so their
cardinality is bounded by what the operator was asked to watch.

Each ``Metrics`` owns a fresh ``CollectorRegistry`` unless one is passed in: tests get
isolated counters, and two monitors in one process never collide on registration.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterable, Mapping

from aiohttp import web
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.exposition import choose_encoder

from canarywatch.coverage import PathCoverage
from canarywatch.delivery_metrics import DeliveryMetrics
from canarywatch.incidents.pagerduty import EVENT_ACTIONS, Outcome
from canarywatch.serving import ServedApp
from canarywatch.verdicts import Verdict

__all__ = [
    "DECODE_BUCKETS",
    "DETECTION_BUCKETS",
    "FRAME_AGE_BUCKETS",
    "KILLSWITCH_RESULTS",
    "KILLSWITCH_STEPS",
    "METRIC_NAMES",
    "SHUTDOWN_BUCKETS",
    "VERDICT_LATENCY_BUCKETS",
    "Metrics",
    "MetricsError",
    "MetricsServer",
    "metrics_app",
    "serve_metrics",
]

log = logging.getLogger(__name__)

# The names as they appear in queries (counters with their ``_total`` suffix).
METRIC_NAMES: tuple[str, ...] = (
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
    "canarywatch_frames_published_total",
    "canarywatch_frames_seen_total",
    "canarywatch_capture_to_verdict_seconds",
)

# Leaked frame received → incident recorded. The product promise is "seconds, not
# days"; the fine low end shows whether detection itself (not the pipeline) is slow.
DETECTION_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
# Incident → kill switch complete: webhooks with retries and commands take longer.
SHUTDOWN_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0)
# Capture → display. A stale cache serves frames minutes or hours old; the top buckets
# are there so such a cache shows up as a shape, not only as +Inf.
FRAME_AGE_BUCKETS = (0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0)
# Capture (the signed marker's time) → verdict, per path: WebRTC about 0.1 s, MJPEG and
# snapshots under a second, LL-HLS about 2 s, HLS several.
VERDICT_LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 15.0, 30.0, 60.0, 300.0)
# The fast decode path takes a fraction of a millisecond; the robust path tens of ms.
DECODE_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0)

KILLSWITCH_STEPS = ("engage", "resume")
KILLSWITCH_RESULTS = ("succeeded", "failed", "skipped")

_VERDICTS = tuple(v.value for v in Verdict)
_PAGERDUTY_RESULTS = tuple(o.value for o in Outcome)


class MetricsError(ValueError):
    """A ``record_*`` call passed a label value outside its fixed vocabulary."""


class Metrics:
    """canarywatch's metrics on one registry (a new ``CollectorRegistry`` by default)."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        r = self.registry
        self._frames = Counter(
            "canarywatch_frames",
            "Frames received by hub viewers, by verdict, path and network profile.",
            ["integration", "probe", "tenant", "verdict", "path", "network_profile"],
            registry=r,
        )
        self._incidents = Counter(
            "canarywatch_incidents",
            "Incidents opened (one per leak, not per leaked frame), counted by the responding shell.",
            ["namespace", "integration", "verdict"],
            registry=r,
        )
        self._detection = Histogram(
            "canarywatch_detection_seconds",
            "Seconds from receiving a leaked frame to recording its incident.",
            ["namespace", "integration"],
            buckets=DETECTION_BUCKETS,
            registry=r,
        )
        self._shutdown = Histogram(
            "canarywatch_shutdown_seconds",
            "Seconds from an incident to its kill switch having completed.",
            ["namespace", "integration"],
            buckets=SHUTDOWN_BUCKETS,
            registry=r,
        )
        self._suspended = Gauge(
            "canarywatch_integration_suspended",
            "1 while the kill switch holds the integration off, else 0.",
            ["namespace", "integration"],
            registry=r,
        )
        self._frame_age = Histogram(
            "canarywatch_frame_age_seconds",
            "Age of verified canary frames when a viewer received them.",
            ["integration", "probe", "path", "network_profile"],
            buckets=FRAME_AGE_BUCKETS,
            registry=r,
        )
        self._verdict_latency = Histogram(
            "canarywatch_capture_to_verdict_seconds",
            "Seconds from a verified frame's capture (its signed marker's time) to its verdict.",
            ["integration", "probe", "path", "network_profile"],
            buckets=VERDICT_LATENCY_BUCKETS,
            registry=r,
        )
        self._decode = Histogram(
            "canarywatch_decode_seconds",
            "Seconds spent decoding one received frame.",
            buckets=DECODE_BUCKETS,
            registry=r,
        )
        self._last_frame = Gauge(
            "canarywatch_viewer_last_frame_timestamp_seconds",
            "Unix time of the last frame a viewer received (alert when it stops moving).",
            ["integration", "probe", "tenant", "camera", "path", "network_profile"],
            registry=r,
        )
        self._pagerduty = Counter(
            "canarywatch_pagerduty_events",
            "PagerDuty Events API v2 outcomes, including each retry.",
            ["action", "result"],
            registry=r,
        )
        self._viewer_errors = Counter(
            "canarywatch_viewer_errors",
            "Viewer fetch failures (the viewer keeps running), by kind.",
            ["integration", "probe", "tenant", "kind", "path", "network_profile"],
            registry=r,
        )
        self._killswitch = Counter(
            "canarywatch_killswitch_actions",
            "Kill-switch actions run, by step (engage/resume) and result.",
            ["namespace", "integration", "action", "result"],
            registry=r,
        )
        self._probe_success = Gauge(
            "canarywatch_probe_success",
            "1 if the viewer's last fetch on the path returned its own fresh canary frame, else 0.",
            ["integration", "probe", "tenant", "path", "network_profile"],
            registry=r,
        )
        self._reports = Counter(
            "canarywatch_viewer_reports",
            "Confirmed leaks viewers reported (a viewer pod: LeakIncidents; the responder counts incidents).",
            ["integration", "probe", "verdict"],
            registry=r,
        )
        self._open_incidents = Gauge(
            "canarywatch_open_incidents",
            "Incidents open now (until resolved), by verdict.",
            ["namespace", "integration", "verdict"],
            registry=r,
        )
        self._degraded = Gauge(
            "canarywatch_integration_degraded",
            "1 while the integration's policy, kill switch or pager cannot run (phase Degraded).",
            ["namespace", "integration"],
            registry=r,
        )
        self._kill_cap = Gauge(
            "canarywatch_kill_cap_exhausted_until_timestamp_seconds",
            "Unix time until which the kill cap is used up (no automatic kill switch); 0: not used up.",
            ["namespace", "integration"],
            registry=r,
        )
        self._viewers_expected = Gauge(
            "canarywatch_probe_viewers_expected",
            "Viewer hubs the probe runs (tenants x network profiles); alerts expect each to report.",
            ["namespace", "integration", "probe"],
            registry=r,
        )
        self._maintenance = Gauge(
            "canarywatch_maintenance",
            "1 while a maintenance pause holds a probe (or, probe empty, a whole integration).",
            ["namespace", "integration", "probe"],
            registry=r,
        )
        #: published vs seen per camera (``delivery_metrics``).
        self.delivery = DeliveryMetrics(r)
        coverage_labels = ["namespace", "integration", "probe", "path", "network_profile"]
        self._coverage_rate = Gauge(
            "canarywatch_coverage_fetches_per_second",
            "Fetches per second the probe's viewers make on the path and profile, as measured.",
            coverage_labels,
            registry=r,
        )
        self._coverage_seconds = Gauge(
            "canarywatch_coverage_detect_seconds",
            "Seconds to detect the probe's target leak rate with its target confidence (+Inf: never).",
            coverage_labels,
            registry=r,
        )
        self._coverage_probability = Gauge(
            "canarywatch_coverage_probability",
            "Probability of detecting the target leak rate within the target time.",
            coverage_labels,
            registry=r,
        )
        self._coverage_shortfall = Gauge(
            "canarywatch_coverage_shortfall_fetches_per_second",
            "Fetches per second the path lacks to meet the probe's coverageTarget (0: it meets it).",
            coverage_labels,
            registry=r,
        )
        # prometheus_client cannot list a metric's label sets: each probe's are kept (by
        # probe: a lookup per summary, not a scan of every probe's at 1,000 probes).
        self._coverage_series: dict[tuple[str, str, str], set[tuple[str, str]]] = {}
        self._camera_up = Gauge(
            "canarywatch_camera_up",
            "1 while the tenant's canary camera runs (publishes), 0 while it is known down.",
            ["namespace", "integration", "probe", "tenant"],
            registry=r,
        )
        self._camera_series: dict[tuple[str, str, str], set[str]] = {}

        self._leaked_while_suspended = Counter(
            "canarywatch_leaked_frames_while_suspended",
            "Leaked frames received while the kill switch said the integration was off.",
            ["namespace", "integration"],
            registry=r,
        )
        self._unwatched = Gauge(
            "canarywatch_unwatched_objects",
            "CameraIntegrations and CanaryProbes in namespaces the operator does not watch (ignored).",
            ["kind", "namespace"],
            registry=r,
        )

    def record_unwatched(self, counts: Mapping[tuple[str, str], int]) -> None:
        """Objects in namespaces the operator does not watch, by (kind, namespace): the
        whole current picture, so namespaces that were cleaned up drop out."""
        self._unwatched.clear()
        for (kind, namespace), count in counts.items():
            self._unwatched.labels(kind, namespace).set(count)

    def prime(self, *, integration: str, probe: str, streams: Iterable[tuple[str, str, str]]) -> None:
        """Create every verdict series of each ``(tenant, path, network_profile)`` at 0
        before the first frame.

        A counter series that first appears at 1 is invisible to `increase()`, and for a
        leak the first frame is the one that matters; primed series make the first leaked
        frame a visible step from 0. The alert rules count a series that is new in their
        window by its whole value; a viewer that primes at start has none that is new
        after a scrape gap, so an old leak never looks new again.
        """
        for tenant, path, profile in streams:
            for verdict in _VERDICTS:
                self._frames.labels(integration, probe, tenant, verdict, path, profile)

    def prime_responses(self, *, namespace: str, integration: str) -> None:
        """The responding shell's series of one integration, at 0 (see ``prime``)."""
        for verdict in _VERDICTS:
            self._incidents.labels(namespace, integration, verdict)
            self._open_incidents.labels(namespace, integration, verdict)
        # labels() creates a gauge at 0 and leaves one that exists as it is.
        self._degraded.labels(namespace, integration)
        self._kill_cap.labels(namespace, integration)
        self._maintenance.labels(namespace, integration, "")
        for step in KILLSWITCH_STEPS:
            for result in KILLSWITCH_RESULTS:
                self._killswitch.labels(namespace, integration, step, result)
        self._leaked_while_suspended.labels(namespace, integration)

    def record_frame(
        self,
        *,
        integration: str,
        probe: str,
        tenant: str,
        path: str,
        network_profile: str,
        verdict: Verdict | str,
        age_seconds: float | None = None,
        verdict_latency_seconds: float | None = None,
    ) -> None:
        """One received frame; ``age_seconds`` (capture → received) and
        ``verdict_latency_seconds`` (capture → judged) only for verified frames (others
        have no capture time). The path's ``canarywatch_probe_success`` says whether it
        was an ``ok`` frame."""
        verdict = _closed("verdict", verdict, _VERDICTS)
        self._frames.labels(integration, probe, tenant, verdict, path, network_profile).inc()
        success = 1 if verdict == Verdict.OK.value else 0
        self._probe_success.labels(integration, probe, tenant, path, network_profile).set(success)
        if age_seconds is not None:
            # A camera clock slightly ahead of the viewer's gives a small negative age;
            # a histogram cannot bucket that meaningfully, and "fresh" is the truth.
            self._frame_age.labels(integration, probe, path, network_profile).observe(max(0.0, age_seconds))
        if verdict_latency_seconds is not None:
            latency = max(0.0, verdict_latency_seconds)
            self._verdict_latency.labels(integration, probe, path, network_profile).observe(latency)

    def record_decode(self, *, seconds: float) -> None:
        self._decode.observe(seconds)

    def record_last_frame(
        self,
        *,
        integration: str,
        probe: str,
        tenant: str,
        camera: str,
        path: str,
        network_profile: str,
        at: float,
    ) -> None:
        """The Unix time a viewer last received a frame for ``camera`` on ``path``."""
        self._last_frame.labels(integration, probe, tenant, camera, path, network_profile).set(at)

    def record_viewer_error(
        self, *, integration: str, probe: str, tenant: str, path: str, network_profile: str, kind: str
    ) -> None:
        """A failed fetch; ``kind`` is a short fixed word chosen by the viewer adapter
        (``timeout``, ``http_5xx``, ``connection``…), never an error message. The path's
        ``canarywatch_probe_success`` drops to 0."""
        self._viewer_errors.labels(integration, probe, tenant, kind, path, network_profile).inc()
        self._probe_success.labels(integration, probe, tenant, path, network_profile).set(0)

    def record_report(self, *, integration: str, probe: str, verdict: Verdict | str) -> None:
        """A viewer pod reported a confirmed leak (one LeakIncident) to the operator."""
        self._reports.labels(integration, probe, _closed("verdict", verdict, _VERDICTS)).inc()

    def record_incident(
        self,
        *,
        namespace: str,
        integration: str,
        verdict: Verdict | str,
        detection_seconds: float | None = None,
    ) -> None:
        """A newly opened incident, and how long it took from its first frame."""
        self._incidents.labels(namespace, integration, _closed("verdict", verdict, _VERDICTS)).inc()
        if detection_seconds is not None:
            self._detection.labels(namespace, integration).observe(max(0.0, detection_seconds))

    def record_open_incidents(
        self, *, namespace: str, integration: str, by_verdict: Mapping[str, int]
    ) -> None:
        """The incidents open now; verdicts left out have none open."""
        for verdict in _VERDICTS:
            self._open_incidents.labels(namespace, integration, verdict).set(by_verdict.get(verdict, 0))

    def record_shutdown(self, *, namespace: str, integration: str, seconds: float) -> None:
        """Incident → kill switch complete."""
        self._shutdown.labels(namespace, integration).observe(max(0.0, seconds))

    def record_suspended(self, *, namespace: str, integration: str, suspended: bool) -> None:
        self._suspended.labels(namespace, integration).set(1 if suspended else 0)

    def record_degraded(self, *, namespace: str, integration: str, degraded: bool) -> None:
        self._degraded.labels(namespace, integration).set(1 if degraded else 0)

    def record_kill_cap(self, *, namespace: str, integration: str, exhausted_until: float | None) -> None:
        """Until when the kill cap allows no automatic kill switch (None: it allows one)."""
        self._kill_cap.labels(namespace, integration).set(exhausted_until or 0)

    def record_maintenance(self, *, namespace: str, integration: str, probe: str = "", paused: bool) -> None:
        """A maintenance pause of a probe, or (``probe`` empty) of a whole integration."""
        self._maintenance.labels(namespace, integration, probe).set(1 if paused else 0)

    def record_probe(self, *, namespace: str, integration: str, probe: str, viewers: int) -> None:
        """The viewer hubs (tenant x network profile) a probe runs; alerts expect each to report."""
        self._viewers_expected.labels(namespace, integration, probe).set(viewers)

    def record_coverage(
        self,
        *,
        namespace: str,
        integration: str,
        probe: str,
        rows: Iterable[PathCoverage],
        targeted: bool = False,
    ) -> None:
        """A probe's detection power per path and profile (``canarywatch.coverage``);
        ``targeted``: the probe sets a coverage target, so each path's shortfall is exported."""
        for row in rows:
            labels = (namespace, integration, probe, row.path, row.network_profile)
            self._coverage_series.setdefault(labels[:3], set()).add(labels[3:])
            self._coverage_rate.labels(*labels).set(row.fetches_per_second)
            self._coverage_seconds.labels(*labels).set(row.seconds)
            self._coverage_probability.labels(*labels).set(row.probability)
            if targeted:
                self._coverage_shortfall.labels(*labels).set(row.shortfall)
            else:
                with contextlib.suppress(KeyError):
                    self._coverage_shortfall.remove(*labels)

    def record_cameras(self, *, namespace: str, integration: str, probe: str, up: Mapping[str, bool]) -> None:
        """Whether each tenant's camera runs: the probe's whole picture (tenants left out,
        say of a paused probe, have no series: nothing is expected of them)."""
        key = (namespace, integration, probe)
        for tenant in self._camera_series.pop(key, set()) - set(up):
            self._camera_up.remove(*key, tenant)
        if up:
            self._camera_series[key] = set(up)
        for tenant, running in up.items():
            self._camera_up.labels(*key, tenant).set(1 if running else 0)

    def forget_probe(self, *, namespace: str, integration: str, probe: str) -> None:
        """Drop a deleted probe's series, so no alert waits for viewers that are gone on purpose."""
        for gauge in (self._viewers_expected, self._maintenance):
            with contextlib.suppress(KeyError):
                gauge.remove(namespace, integration, probe)
        key = (namespace, integration, probe)
        for labels in [(*key, *rest) for rest in self._coverage_series.pop(key, set())]:
            for gauge in (self._coverage_rate, self._coverage_seconds, self._coverage_probability):
                gauge.remove(*labels)
            with contextlib.suppress(KeyError):
                self._coverage_shortfall.remove(*labels)
        self.record_cameras(namespace=namespace, integration=integration, probe=probe, up={})

    def record_killswitch_action(self, *, namespace: str, integration: str, action: str, result: str) -> None:
        """One kill-switch action run: ``action`` is the step (``engage``/``resume``)."""
        self._killswitch.labels(
            namespace,
            integration,
            _closed("action", action, KILLSWITCH_STEPS),
            _closed("result", result, KILLSWITCH_RESULTS),
        ).inc()

    def record_leaked_while_suspended(self, *, namespace: str, integration: str, frames: int = 1) -> None:
        """Leaked frames received while the kill switch was engaged: it does not hold.
        ``namespace`` is empty in standalone mode; ``frames=0`` creates the series at 0."""
        self._leaked_while_suspended.labels(namespace, integration).inc(frames)

    def record_pagerduty_event(self, *, action: str, result: str) -> None:
        self._pagerduty.labels(
            _closed("action", action, EVENT_ACTIONS),
            _closed("result", result, _PAGERDUTY_RESULTS),
        ).inc()

    def pagerduty_hook(self) -> Callable[[str, str], None]:
        """The ``on_result(action, result)`` callable for ``PagerDutyClient``."""

        def on_result(action: str, result: str) -> None:
            self.record_pagerduty_event(action=action, result=result)

        return on_result

    def killswitch_hook(self, *, namespace: str, integration: str) -> Callable[[str, str], None]:
        """The ``on_action(step, result)`` callable for ``shutdown.KillSwitch``."""

        def on_action(step: str, result: str) -> None:
            self.record_killswitch_action(
                namespace=namespace, integration=integration, action=step, result=result
            )

        return on_action

    def samples(self) -> list[tuple[str, dict[str, str], float]]:
        """Every sample as ``(name, labels, value)``, as a scrape would read them."""
        return [(s.name, s.labels, s.value) for family in self.registry.collect() for s in family.samples]

    def sample(self, name: str, labels: dict[str, str] | None = None) -> float | None:
        """The current value of one sample (``canarywatch_frames_total`` …), for tests and the CLI."""
        return self.registry.get_sample_value(name, labels or {})


def _closed(label: str, value: object, accepted: tuple[str, ...]) -> str:
    text = str(value)
    if text not in accepted:
        raise MetricsError(f"{label}={text!r} is not a known value; expected one of {', '.join(accepted)}")
    return text


# ---------------------------------------------------------------------------------------
# HTTP exposition
# ---------------------------------------------------------------------------------------

_METRICS_KEY: web.AppKey[Metrics] = web.AppKey("canarywatch_metrics", Metrics)
_HEALTH_KEY: web.AppKey[Callable[[], bool] | None] = web.AppKey("canarywatch_health")


def metrics_app(metrics: Metrics, *, health: Callable[[], bool] | None = None) -> web.Application:
    """An aiohttp application serving ``GET /metrics`` and ``GET /healthz``.

    ``/metrics`` negotiates the format from ``Accept`` like ``prometheus_client``'s own
    server (OpenMetrics when the scraper asks for it, text format 0.0.4 otherwise) and
    compresses when the scraper accepts it. ``/healthz`` answers 200 while ``health()``
    returns true (always, without one) and 503 otherwise, including when it raises.
    """
    app = web.Application()
    app[_METRICS_KEY] = metrics
    app[_HEALTH_KEY] = health
    app.router.add_get("/metrics", _metrics_handler)
    app.router.add_get("/healthz", _health_handler)
    return app


async def _metrics_handler(request: web.Request) -> web.Response:
    encoder, content_type = choose_encoder(request.headers.get("Accept", ""))
    body = encoder(request.app[_METRICS_KEY].registry)
    # ``content_type=`` would reject the parameters (version, charset) Prometheus needs.
    response = web.Response(body=body, headers={"Content-Type": content_type})
    response.enable_compression()
    return response


async def _health_handler(request: web.Request) -> web.Response:
    health = request.app[_HEALTH_KEY]
    try:
        healthy = True if health is None else bool(health())
    except Exception:
        # A broken health check means "not healthy", and must not turn into a 500
        # that a probe would read the same way but a human would chase as a crash.
        log.exception("health check raised")
        healthy = False
    status = 200 if healthy else 503
    return web.json_response({"status": "ok" if healthy else "unhealthy"}, status=status)


class MetricsServer(ServedApp):
    """A running ``metrics_app``: ``host``, ``port``, ``url`` and ``stop()``."""

    @property
    def url(self) -> str:
        """The ``/metrics`` URL."""
        return f"{self.base_url}/metrics"


async def serve_metrics(
    metrics: Metrics,
    host: str = "127.0.0.1",
    port: int = 0,
    *,
    health: Callable[[], bool] | None = None,
) -> MetricsServer:
    """Serve ``metrics_app`` on ``host:port`` (0 picks a free port; read it from the handle)."""
    # No access log: a scrape every few seconds would bury the lines that matter.
    return await MetricsServer.start(metrics_app(metrics, health=health), host, port, access_log=None)
