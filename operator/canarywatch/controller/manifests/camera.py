"""The probe's canary cameras, every tenant's in one pod: their Deployment, and the
Service in front of it when the integration pulls frames (``camera.serve``)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from canarywatch.api import AgentEnv, AgentRole
from canarywatch.controller.manifests.adapters import camera_adapter
from canarywatch.controller.manifests.agentpods import DEFAULT_OPTIONS, AgentPodOptions
from canarywatch.controller.manifests.names import (
    camera_name,
    deployment_selector,
    dns_label,
    object_labels,
    object_metadata,
    pod_selector,
    stamp,
)
from canarywatch.controller.manifests.pods import (
    agent_container,
    common_env,
    env_var,
    keyring_volume,
    mount_tokens,
    pod_annotations,
    pod_spec,
    tmp_volume,
)
from canarywatch.controller.manifests.probe import METRICS_PORT, builder, parse_probe

__all__ = ["build_camera_deployment", "build_camera_service"]


@builder
def build_camera_deployment(
    probe: Mapping[str, Any],
    integration: Mapping[str, Any],
    *,
    image: str,
    image_pull_policy: str = "IfNotPresent",
    options: AgentPodOptions = DEFAULT_OPTIONS,
) -> dict[str, Any]:
    """The Deployment running every tenant's canary cameras (one replica, one process:
    ``camera.CameraFleet``), each tenant signing with its own key and publishing with
    its own token. Its pod mounts no ServiceAccount token.

    ``Recreate``: two generations of a camera publishing at once would interleave two
    sequence counters, which viewers rightly report as replayed (stale) frames.
    """
    spec = parse_probe(probe)
    adapter, secret_env = camera_adapter(integration)
    env = [
        *common_env(spec, AgentRole.CAMERA, adapter),
        env_var(AgentEnv.FRAME_WIDTH, str(spec.width)),
        env_var(AgentEnv.FRAME_HEIGHT, str(spec.height)),
        *secret_env,
    ]
    ports = [{"name": "metrics", "containerPort": METRICS_PORT, "protocol": "TCP"}]
    if "serve" in adapter:
        ports.append(
            {"name": "camera-http", "containerPort": int(adapter["serve"]["port"]), "protocol": "TCP"}
        )
    container = agent_container(spec, AgentRole.CAMERA, image, image_pull_policy, env, ports)
    volumes = [keyring_volume(spec, spec.tenant_ids), tmp_volume()]
    mount_tokens(spec, container, volumes)
    selector = pod_selector(spec, AgentRole.CAMERA)
    labels = object_labels(spec, "camera", **selector)
    return stamp(
        options.apply(
            {
                "apiVersion": "apps/v1",
                "kind": "Deployment",
                "metadata": object_metadata(spec, camera_name(spec.name), labels),
                "spec": {
                    "replicas": 1,
                    "revisionHistoryLimit": 3,
                    "strategy": {"type": "Recreate"},
                    "selector": deployment_selector(selector, AgentRole.CAMERA),
                    "template": {
                        "metadata": {"labels": labels, "annotations": pod_annotations()},
                        "spec": pod_spec(spec, AgentRole.CAMERA, selector, [container], volumes),
                    },
                },
            }
        )
    )


@builder
def build_camera_service(probe: Mapping[str, Any], integration: Mapping[str, Any]) -> dict[str, Any] | None:
    """For integrations that pull (``camera.serve``): the Service in front of the
    probe's camera pod. The integration fetches
    ``http://<probe>-camera.<namespace>.svc:<port>/cameras/<tenant>/<camera>/snapshot.jpg``
    (or ``stream.mjpg``). None when cameras push."""
    spec = parse_probe(probe)
    adapter, _ = camera_adapter(integration)
    if "serve" not in adapter:
        return None
    port = int(adapter["serve"]["port"])
    selector = pod_selector(spec, AgentRole.CAMERA)
    name = camera_name(spec.name)
    if not name[0].isalpha():  # Service names are DNS-1035 labels: a letter first
        name = dns_label("cw", name)
    return stamp(
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": object_metadata(spec, name, object_labels(spec, "camera", **selector)),
            "spec": {
                "type": "ClusterIP",
                "selector": selector,
                "ports": [
                    {"name": "camera-http", "port": port, "targetPort": "camera-http", "protocol": "TCP"}
                ],
            },
        }
    )
