"""The published half of published vs seen, as a Prometheus collector.

A camera pod exports ``canarywatch_frames_published_total`` per camera and the viewers
``canarywatch_frames_seen_total`` with the same labels (integration, probe, tenant,
camera: from the probe's configuration, never from the pod's identity), so the alert
``CanarywatchFramesNotDelivered`` can join them across pods (``canarywatch.delivery``
is the same reconciliation inside one process).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Protocol

from prometheus_client.core import CounterMetricFamily, Metric
from prometheus_client.registry import Collector

__all__ = ["DELIVERY_LABELS", "PublishedFrames", "PublishingCamera"]


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
