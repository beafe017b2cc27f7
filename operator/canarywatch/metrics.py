"""Every Prometheus metric canarywatch exports, in one module, and the ``/metrics`` server.

Dashboards and alert rules query exactly the names in ``METRIC_NAMES``; a test keeps the
tuple, the registry and the exposition in step, so a rename cannot silently blank a
panel. Domain code never touches ``prometheus_client`` directly: it calls the small
``record_*`` methods of a ``Metrics`` instance, whose arguments are keyword-only because
five positional strings (integration, probe, tenant, camera, verdict) are too easy to
swap.

Label values that come from a closed vocabulary (verdicts, PagerDuty actions and
results, kill-switch steps and results) are checked: an unknown value raises
``MetricsError`` instead of minting a new time series that no dashboard looks at. The
other labels (integration, probe, tenant, camera) come from configuration, so their
cardinality is bounded by what the operator was asked to watch.

Each ``Metrics`` owns a fresh ``CollectorRegistry`` unless one is passed in: tests get
isolated counters, and two monitors in one process never collide on registration.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable

from aiohttp import web
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.exposition import choose_encoder

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
)

# Leaked frame received → incident recorded. The product promise is "seconds, not
# days"; the fine low end shows whether detection itself (not the pipeline) is slow.
DETECTION_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
# Incident → kill switch complete: webhooks with retries and commands take longer.
SHUTDOWN_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0)
# Capture → display. A stale cache serves frames minutes or hours old; the top buckets
# are there so such a cache shows up as a shape, not only as +Inf.
FRAME_AGE_BUCKETS = (0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0)
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
            "Frames received by hub viewers, by verdict.",
            ["integration", "probe", "tenant", "verdict"],
            registry=r,
        )
        self._incidents = Counter(
            "canarywatch_incidents",
            "Incidents opened (one per leak, not per leaked frame).",
            ["integration", "verdict"],
            registry=r,
        )
        self._detection = Histogram(
            "canarywatch_detection_seconds",
            "Seconds from receiving a leaked frame to recording its incident.",
            ["integration"],
            buckets=DETECTION_BUCKETS,
            registry=r,
        )
        self._shutdown = Histogram(
            "canarywatch_shutdown_seconds",
            "Seconds from an incident to its kill switch having completed.",
            ["integration"],
            buckets=SHUTDOWN_BUCKETS,
            registry=r,
        )
        self._suspended = Gauge(
            "canarywatch_integration_suspended",
            "1 while the kill switch holds the integration off, else 0.",
            ["integration"],
            registry=r,
        )
        self._frame_age = Histogram(
            "canarywatch_frame_age_seconds",
            "Age of verified canary frames when a viewer received them.",
            ["integration", "probe"],
            buckets=FRAME_AGE_BUCKETS,
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
            ["integration", "probe", "tenant", "camera"],
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
            ["integration", "probe", "tenant", "kind"],
            registry=r,
        )
        self._killswitch = Counter(
            "canarywatch_killswitch_actions",
            "Kill-switch actions run, by step (engage/resume) and result.",
            ["integration", "action", "result"],
            registry=r,
        )

        self._leaked_while_suspended = Counter(
            "canarywatch_leaked_frames_while_suspended",
            "Leaked frames received while the kill switch said the integration was off.",
            ["namespace", "integration"],
            registry=r,
        )

    def prime(self, *, integration: str, probe: str, tenants: Iterable[str], namespace: str = "") -> None:
        """Create every verdict series at 0 before the first frame.

        A counter series that first appears at 1 is invisible to `increase()`, and for a
        leak the first frame is the one that matters; primed series make the first leaked
        frame a visible step from 0.
        """
        for verdict in _VERDICTS:
            self._incidents.labels(integration, verdict)
            for tenant in tenants:
                self._frames.labels(integration, probe, tenant, verdict)
        self._suspended.labels(integration).set(0)
        for step in KILLSWITCH_STEPS:
            for result in KILLSWITCH_RESULTS:
                self._killswitch.labels(integration, step, result)
        self._leaked_while_suspended.labels(namespace, integration)

    def record_frame(
        self,
        *,
        integration: str,
        probe: str,
        tenant: str,
        verdict: Verdict | str,
        age_seconds: float | None = None,
    ) -> None:
        """One received frame; ``age_seconds`` only for verified frames (others have no age)."""
        self._frames.labels(integration, probe, tenant, _closed("verdict", verdict, _VERDICTS)).inc()
        if age_seconds is not None:
            # A camera clock slightly ahead of the viewer's gives a small negative age;
            # a histogram cannot bucket that meaningfully, and "fresh" is the truth.
            self._frame_age.labels(integration, probe).observe(max(0.0, age_seconds))

    def record_decode(self, *, seconds: float) -> None:
        self._decode.observe(seconds)

    def record_last_frame(self, *, integration: str, probe: str, tenant: str, camera: str, at: float) -> None:
        """The Unix time a viewer last received a frame for ``camera``."""
        self._last_frame.labels(integration, probe, tenant, camera).set(at)

    def record_viewer_error(self, *, integration: str, probe: str, tenant: str, kind: str) -> None:
        """A failed fetch; ``kind`` is a short fixed word chosen by the viewer adapter
        (``timeout``, ``http_5xx``, ``connection``…), never an error message."""
        self._viewer_errors.labels(integration, probe, tenant, kind).inc()

    def record_incident(
        self, *, integration: str, verdict: Verdict | str, detection_seconds: float | None = None
    ) -> None:
        """A newly opened incident, and how long it took from its first frame."""
        self._incidents.labels(integration, _closed("verdict", verdict, _VERDICTS)).inc()
        if detection_seconds is not None:
            self._detection.labels(integration).observe(max(0.0, detection_seconds))

    def record_shutdown(self, *, integration: str, seconds: float) -> None:
        """Incident → kill switch complete."""
        self._shutdown.labels(integration).observe(max(0.0, seconds))

    def record_suspended(self, *, integration: str, suspended: bool) -> None:
        self._suspended.labels(integration).set(1 if suspended else 0)

    def record_killswitch_action(self, *, integration: str, action: str, result: str) -> None:
        """One kill-switch action run: ``action`` is the step (``engage``/``resume``)."""
        self._killswitch.labels(
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

    def killswitch_hook(self, *, integration: str) -> Callable[[str, str], None]:
        """The ``on_action(step, result)`` callable for ``shutdown.KillSwitch``."""

        def on_action(step: str, result: str) -> None:
            self.record_killswitch_action(integration=integration, action=step, result=result)

        return on_action

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
