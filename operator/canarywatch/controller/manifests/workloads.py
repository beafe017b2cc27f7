"""Everything a probe runs except its keyring Secrets, in creation order."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from canarywatch.api import AgentRole
from canarywatch.controller.manifests.agentpods import (
    DEFAULT_OPTIONS,
    AgentPodOptions,
    build_disruption_budget,
)
from canarywatch.controller.manifests.camera import build_camera_deployment, build_camera_service
from canarywatch.controller.manifests.names import stamp
from canarywatch.controller.manifests.probe import builder, parse_probe
from canarywatch.controller.manifests.rbac import build_agent_rbac
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
    """Everything the probe runs except its keyring Secrets, in creation order: RBAC,
    the PodDisruptionBudgets (unless ``options`` turns them off), then per tenant its
    camera (and Service) and its viewers."""
    spec = parse_probe(probe)
    paused = maintenance_reason(probe, integration) is not None
    objects = build_agent_rbac(probe)
    if options.max_unavailable is not None:
        objects += [build_disruption_budget(spec, role, options.max_unavailable) for role in AgentRole]
    for tenant in spec.tenant_ids:
        objects.append(
            build_camera_deployment(
                probe, integration, tenant, image=image, image_pull_policy=image_pull_policy, options=options
            )
        )
        service = build_camera_service(probe, integration, tenant)
        if service is not None:
            objects.append(service)
        for profile in spec.profiles:
            objects.append(
                build_viewer_deployment(
                    probe,
                    integration,
                    tenant,
                    profile.name,
                    image=image,
                    image_pull_policy=image_pull_policy,
                    options=options,
                )
            )
    if paused:  # the objects stay (keyrings, RBAC, Services); no pod runs
        for index, obj in enumerate(objects):
            if obj["kind"] == "Deployment":
                obj["spec"]["replicas"] = 0
                objects[index] = stamp(obj)  # a new hash: the change is applied
    return objects


def maintenance_reason(probe: Mapping[str, Any], integration: Mapping[str, Any] | None) -> str | None:
    """Why the probe is paused (its own ``spec.maintenance``, else its integration's), or None."""
    for obj in (probe, integration or {}):
        maintenance = (obj.get("spec") or {}).get("maintenance")
        if maintenance:
            return str(maintenance.get("reason") or "maintenance")
    return None
