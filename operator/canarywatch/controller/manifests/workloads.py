"""Everything a probe runs except its keyring Secret and the namespace's viewer RBAC."""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from typing import Any

from canarywatch.controller.manifests.agentpods import (
    DEFAULT_OPTIONS,
    AgentPodOptions,
    build_disruption_budget,
)
from canarywatch.controller.manifests.camera import build_camera_deployment, build_camera_service
from canarywatch.controller.manifests.names import kernel_shaped_profiles, stamp
from canarywatch.controller.manifests.probe import builder, parse_probe
from canarywatch.controller.manifests.viewer import build_viewer_deployment

__all__ = ["build_probe_workloads", "maintenance_reason"]


@builder
def build_probe_workloads(
    probe: Mapping[str, Any],
    integration: Mapping[str, Any],
    *,
    image: str,
    image_pull_policy: str = "IfNotPresent",
    options: AgentPodOptions = DEFAULT_OPTIONS,
) -> list[dict[str, Any]]:
    """Everything the probe runs except its keyring Secret and the namespace's viewer
    RBAC: the PodDisruptionBudget (unless ``options`` turns it off), the camera
    Deployment (and its Service), the viewer Deployment of the profiles shaped
    in-process, and one per ``tc`` profile (``names.expected_workload_names``)."""
    spec = parse_probe(probe)
    paused = maintenance_reason(probe, integration) is not None
    objects: list[dict[str, Any]] = []
    if options.max_unavailable is not None:
        objects.append(build_disruption_budget(spec, options.max_unavailable))
    pods = functools.partial(
        _with_pod_options, image=image, image_pull_policy=image_pull_policy, options=options
    )
    objects.append(pods(build_camera_deployment, probe, integration))
    service = build_camera_service(probe, integration)
    if service is not None:
        objects.append(service)
    tc = kernel_shaped_profiles(spec)
    if len(tc) < len(spec.profiles):
        objects.append(pods(build_viewer_deployment, probe, integration))
    objects += [pods(build_viewer_deployment, probe, integration, p) for p in tc]
    if paused:  # the objects stay (keyrings, RBAC, Services); no pod runs
        for index, obj in enumerate(objects):
            if obj["kind"] == "Deployment":
                obj["spec"]["replicas"] = 0
                objects[index] = stamp(obj)  # a new hash: the change is applied
    return objects


def _with_pod_options(
    build: Callable[..., dict[str, Any]],
    *args: Any,
    image: str,
    image_pull_policy: str,
    options: AgentPodOptions,
) -> dict[str, Any]:
    return build(*args, image=image, image_pull_policy=image_pull_policy, options=options)


def maintenance_reason(probe: Mapping[str, Any], integration: Mapping[str, Any] | None) -> str | None:
    """Why the probe is paused (its own ``spec.maintenance``, else its integration's), or None."""
    for obj in (probe, integration or {}):
        maintenance = (obj.get("spec") or {}).get("maintenance")
        if maintenance:
            return str(maintenance.get("reason") or "maintenance")
    return None
