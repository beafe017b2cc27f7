"""Which streams a set of hub viewers opens (pure: no I/O, no aiohttp).

A shell (the pod agent from its environment, ``canarywatch run``/``demo`` from the
config file, the benchmarks) describes its viewers as a ``ViewerSpec``; ``plan_streams``
turns it into the list of ``StreamPlan``s the ``viewer.runner`` opens. Written once,
so a viewer in a pod and a viewer in the demo watch the integration the same way:

- per hub (a watching tenant on one network profile): per camera a snapshot poller and
  an MJPEG stream, one event-feed reader (thumbnails) for the tenant's events, and,
  with other tenants in the probe, one authorization prober asking for every other
  tenant's cameras with this tenant's token. On every network: an integration that
  picks its path by the client's hints (the 2019 cache did) may skip a check on one
  path only. A pod is one hub, so this is also what a cluster of viewer pods runs;
- per camera a stream on each video path configured (``hls``, ``llhls``, ``rtsp``, ``mp4``), held
  open like MJPEG and judged by its path's own freshness bound (``freshness_by_path``:
  a video path shows frames as late as its buffering);
- per camera a smart display (``hub``) where the integration has a fulfillment: it asks
  for the camera's device's stream (``hub_device``) and watches what it is handed;
- an MJPEG stream on a shaped network waits for its hub's first measurement of the
  link (``measure_first``): it asks once, at connect, for the rendition its link can
  carry, and the 2019 leak was served only to hubs that said they were slow.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol

from canarywatch.api import VIDEO_PATHS
from canarywatch.viewer.http import RenderedRequest
from canarywatch.viewer.judging import ViewerStream
from canarywatch.viewer.network.profiles import NetworkProfile

__all__ = ["AUTHZ_MIN_INTERVAL_S", "RequestSource", "StreamPlan", "ViewerSpec", "Watcher", "plan_streams"]

#: An authorization probe asks for every other tenant's cameras each round: never
#: more often than this, whatever the poll interval.
AUTHZ_MIN_INTERVAL_S = 1.0


class RequestSource(Protocol):
    """A viewer endpoint of the integration's adapter (``RequestTemplate``, or the agent's
    template with its ``headersFrom`` secrets)."""

    def render(self, *, tenant: str, camera: str, token: str) -> RenderedRequest: ...


@dataclass(frozen=True)
class Watcher:
    """A tenant whose viewers run here, with its credential."""

    tenant: str
    token: str = field(repr=False)


@dataclass(frozen=True)
class ViewerSpec:
    """The plan's input: what a shell knows about the viewers it runs."""

    integration: str
    probe: str
    #: every tenant of the probe (the authorization probe asks for the others' cameras).
    tenants: tuple[str, ...]
    #: the tenants watched here: all of them standalone, the pod's own one in a cluster.
    watchers: tuple[Watcher, ...]
    cameras: int
    #: adapter endpoint name (``snapshot``, ``mjpeg``, ``events``, ``authzProbe``) -> endpoint.
    endpoints: Mapping[str, RequestSource]
    #: the networks viewed through, each as the viewer's own shaper applies it.
    profiles: tuple[NetworkProfile, ...]
    freshness_seconds: float
    poll_interval: float
    #: the kernel (``tc netem``) imposes the profiles, the shaper only their stalls: the
    #: link is slow even where the applied profile shapes nothing.
    kernel_shaped: bool = False
    #: path -> its freshness bound where it differs from ``freshness_seconds``.
    freshness_by_path: Mapping[str, float] = field(default_factory=dict)
    #: the hub fulfillment's device id of canary camera ``{camera}`` (of ``{tenant}``).
    hub_device: str = "{camera}"
    #: what the hub speaks to it (``google``, ``alexa``).
    hub_protocol: str = "google"

    def max_age(self, path: str) -> float:
        """The freshness bound frames of ``path`` are judged by."""
        return self.freshness_by_path.get(path, self.freshness_seconds)

    def __post_init__(self) -> None:
        if not self.watchers or not self.profiles:
            raise ValueError("a viewer spec needs at least one watching tenant and one network profile")
        strangers = [w.tenant for w in self.watchers if w.tenant not in self.tenants]
        if strangers:
            raise ValueError(f"watching tenants {strangers} are not tenants of probe {self.probe!r}")


@dataclass(frozen=True)
class StreamPlan:
    """One viewer stream: who looks through which path on which network, at what."""

    stream: ViewerStream
    #: what the stream's shaper applies (``stream.profile`` is its name).
    profile: NetworkProfile
    #: the request (one), or for the authorization prober every other tenant's camera.
    requests: tuple[RenderedRequest, ...]
    #: seconds between polls; None for a stream held open (MJPEG).
    interval_s: float | None
    #: the freshness bound its frames are judged by; None for event thumbnails (an
    #: event's picture is as old as the event).
    max_age: float | None
    #: wait for the hub's first measurement of its link before connecting.
    measure_first: bool = False
    #: the device a hub-protocol stream asks its fulfillment for (path ``hub``), and how.
    device: str | None = None
    hub_protocol: str = "google"

    @property
    def path(self) -> str:
        return self.stream.kind

    @property
    def hub(self) -> tuple[str, str]:
        """The hub this stream belongs to: one link, one shaper, one estimate."""
        return (self.stream.tenant, self.stream.profile)


def plan_streams(spec: ViewerSpec) -> tuple[StreamPlan, ...]:
    """Every stream ``spec``'s viewers open, hub by hub (watcher, then profile), so a
    pod's plan is exactly its slice of the standalone plan for the same probe."""
    plans: list[StreamPlan] = []
    for watcher in spec.watchers:
        for profile in spec.profiles:
            plans += _hub_streams(spec, watcher, profile)
            plans += _authz_stream(spec, watcher, profile)
    return tuple(plans)


def _hub_streams(spec: ViewerSpec, watcher: Watcher, profile: NetworkProfile) -> list[StreamPlan]:
    endpoints, interval = spec.endpoints, spec.poll_interval
    tenant, token = watcher.tenant, watcher.token
    shaped = spec.kernel_shaped or profile.shapes_anything

    def stream(
        camera: int | None,
        path: str,
        request: RenderedRequest,
        *,
        interval_s: float | None = interval,
        fresh: bool = True,
        measure_first: bool = False,
    ) -> StreamPlan:
        viewer = ViewerStream(spec.integration, spec.probe, tenant, camera, path, profile.name)
        max_age = spec.max_age(path) if fresh else None
        return StreamPlan(viewer, profile, (request,), interval_s, max_age, measure_first)

    plans = []
    for camera in range(spec.cameras):
        if "snapshot" in endpoints:
            request = endpoints["snapshot"].render(tenant=tenant, camera=str(camera), token=token)
            plans.append(stream(camera, "snapshot", request))
        if "mjpeg" in endpoints:
            request = endpoints["mjpeg"].render(tenant=tenant, camera=str(camera), token=token)
            plans.append(stream(camera, "mjpeg", request, interval_s=None, measure_first=shaped))
        for path in VIDEO_PATHS:
            if path in endpoints:
                request = endpoints[path].render(tenant=tenant, camera=str(camera), token=token)
                # a player picks its rendition by the link it measured
                plans.append(stream(camera, path, request, interval_s=None, measure_first=shaped))
        if "hub" in endpoints:
            # a smart display: the fulfillment, then the stream it hands out for this camera
            request = endpoints["hub"].render(tenant=tenant, camera=str(camera), token=token)
            device = spec.hub_device.replace("{tenant}", tenant).replace("{camera}", str(camera))
            hub = stream(camera, "hub", request, interval_s=None, measure_first=shaped)
            plans.append(dataclasses.replace(hub, device=device, hub_protocol=spec.hub_protocol))
    if "events" in endpoints:
        request = endpoints["events"].render(tenant=tenant, camera="", token=token)
        plans.append(stream(None, "thumbnail", request, fresh=False))
    return plans


def _authz_stream(spec: ViewerSpec, watcher: Watcher, profile: NetworkProfile) -> list[StreamPlan]:
    others = [t for t in spec.tenants if t != watcher.tenant]
    if "authzProbe" not in spec.endpoints or not others:
        return []
    # this tenant's token, every other tenant's cameras: each must be refused
    targets = tuple(
        spec.endpoints["authzProbe"].render(tenant=other, camera=str(camera), token=watcher.token)
        for other in others
        for camera in range(spec.cameras)
    )
    viewer = ViewerStream(spec.integration, spec.probe, watcher.tenant, None, "probe", profile.name)
    interval = max(spec.poll_interval, AUTHZ_MIN_INTERVAL_S)
    return [StreamPlan(viewer, profile, targets, interval, spec.max_age("probe"))]
