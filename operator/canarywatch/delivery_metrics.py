"""Published vs seen as Prometheus metrics (part of ``metrics.Metrics``: ``.delivery``).

A camera pod exports ``canarywatch_frames_published_total`` per camera and the viewers
``canarywatch_frames_seen_total`` with the same labels (integration, probe, tenant,
camera: from the probe's configuration, never from the pod's identity), so the alert
``CanarywatchFramesNotDelivered`` can join them across pods (``canarywatch.delivery``
is the same reconciliation inside one process).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Protocol

from prometheus_client import CollectorRegistry, Counter
from prometheus_client.core import CounterMetricFamily, Metric
from prometheus_client.registry import Collector

__all__ = ["DELIVERY_LABELS", "DeliveryMetrics", "PublishedFrames", "PublishingCamera"]


class PublishingCamera(Protocol):
    """A canary camera as the published-frames counter reads it (``camera.CanaryCamera``)."""

    @property
    def tenant(self) -> str: ...
    @property
    def camera(self) -> int: ...
    @property
    def published(self) -> int: ...


DELIVERY_LABELS = ["integration", "probe", "tenant", "camera"]


class PublishedFrames(Collector):
    """``canarywatch_frames_published_total``, read from the cameras at each scrape: a
    camera counts its own accepted frames in several places (push, serve, video
    sessions), and reading the count where it lives cannot drift from it."""

    def __init__(self) -> None:
        self.sources: list[tuple[str, str, Callable[[], Iterable[PublishingCamera]]]] = []

    def collect(self) -> Iterator[Metric]:
        family = CounterMetricFamily(
            "canarywatch_frames_published",
            "Frames a canary camera published that the integration accepted (2xx, pulled, or "
            "written to its stream), per camera; compare with canarywatch_frames_seen_total.",
            labels=DELIVERY_LABELS,
        )
        for integration, probe, cameras in self.sources:
            for cam in cameras():
                family.add_metric([integration, probe, cam.tenant, str(cam.camera)], cam.published)
        yield family


class DeliveryMetrics:
    """A camera's published count (read from the cameras at each scrape) and the distinct
    frames of it its own tenant's viewers saw, on one registry."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self._published = PublishedFrames()
        registry.register(self._published)
        self._seen = Counter(
            "canarywatch_frames_seen",
            "Distinct frames of a canary camera its own tenant's viewers were shown (any path).",
            DELIVERY_LABELS,
            registry=registry,
        )

    def publish_cameras(
        self, *, integration: str, probe: str, cameras: Callable[[], Iterable[PublishingCamera]]
    ) -> None:
        """Export the published-frames count of ``cameras()`` (read at each scrape)."""
        self._published.sources.append((integration, probe, cameras))

    def prime_seen(self, *, integration: str, probe: str, cameras: Iterable[tuple[str, int]]) -> None:
        """Each ``(tenant, camera)``'s seen counter at 0 before its first frame (see
        ``Metrics.prime``): the published-vs-seen alert joins it with the camera's count."""
        for tenant, camera in cameras:
            self._seen.labels(integration, probe, tenant, str(camera))

    def record_seen(self, *, integration: str, probe: str, tenant: str, camera: int) -> None:
        """A frame of ``tenant``'s own ``camera`` shown to one of its viewers, for the first time."""
        self._seen.labels(integration, probe, tenant, str(camera)).inc()
