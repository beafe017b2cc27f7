"""A tenant's hub viewers on one network profile: their Deployment."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from canarywatch.api import AgentEnv, AgentRole
from canarywatch.controller.manifests.adapters import viewer_adapter, viewer_policy_env
from canarywatch.controller.manifests.agentpods import DEFAULT_OPTIONS, AgentPodOptions
from canarywatch.controller.manifests.names import (
    object_labels,
    object_metadata,
    pod_selector,
    stamp,
    viewer_name,
)
from canarywatch.controller.manifests.pods import (
    agent_container,
    common_env,
    env_var,
    keyring_volume,
    mount_token,
    netem_init_containers,
    pod_annotations,
    pod_spec,
    tmp_volume,
)
from canarywatch.controller.manifests.probe import METRICS_PORT, builder, decimal, parse_probe

__all__ = ["build_viewer_deployment"]


@builder
def build_viewer_deployment(
    probe: Mapping[str, Any],
    integration: Mapping[str, Any],
    tenant: str,
    profile: str,
    *,
    image: str,
    image_pull_policy: str = "IfNotPresent",
    options: AgentPodOptions = DEFAULT_OPTIONS,
) -> dict[str, Any]:
    """The Deployment of ``tenant``'s hub viewers on network ``profile``."""
    spec = parse_probe(probe)
    spec.tenant(tenant)
    viewer_profile = spec.profile(profile)
    adapter, secret_env = viewer_adapter(spec, integration)
    profile_json = json.dumps(viewer_profile.spec, sort_keys=True, separators=(",", ":"))
    env = [
        *common_env(spec, AgentRole.VIEWER, tenant, adapter),
        env_var(AgentEnv.TENANTS, ",".join(spec.tenant_ids)),
        env_var(AgentEnv.NETWORK_PROFILE, profile_json),
        env_var(AgentEnv.NETWORK_PROFILE_NAME, viewer_profile.name),
        env_var(AgentEnv.NETWORK_SHAPER, viewer_profile.shaper),
        env_var(AgentEnv.TRANSPORTS, ",".join(spec.transports)),
        env_var(AgentEnv.FRESHNESS_SECONDS, decimal(spec.freshness_seconds)),
        *(
            [env_var(AgentEnv.FRESHNESS_BY_PATH, json.dumps(dict(spec.freshness_by_path), sort_keys=True))]
            if spec.freshness_by_path
            else []
        ),
        *viewer_policy_env(integration),
        *secret_env,
    ]
    ports = [{"name": "metrics", "containerPort": METRICS_PORT, "protocol": "TCP"}]
    container = agent_container(spec, AgentRole.VIEWER, image, image_pull_policy, env, ports)
    volumes = [keyring_volume(spec, spec.tenant_ids), tmp_volume()]
    mount_token(spec.tenant(tenant), container, volumes)
    init_containers = netem_init_containers(spec, viewer_profile, image, image_pull_policy)
    selector = pod_selector(spec, AgentRole.VIEWER, tenant, viewer_profile.name)
    labels = object_labels(spec, "viewer", **selector)
    pod = pod_spec(spec, AgentRole.VIEWER, selector, [container], volumes)
    if init_containers:
        pod["initContainers"] = init_containers
    name = viewer_name(spec.name, tenant, viewer_profile.name)
    return stamp(
        options.apply(
            {
                "apiVersion": "apps/v1",
                "kind": "Deployment",
                "metadata": object_metadata(spec, name, labels),
                "spec": {
                    "replicas": spec.viewers,
                    "revisionHistoryLimit": 3,
                    # Never fewer viewers than asked for while rolling: a gap in coverage is
                    # exactly when a leak would go unseen.
                    "strategy": {
                        "type": "RollingUpdate",
                        "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0},
                    },
                    "selector": {"matchLabels": selector},
                    "template": {
                        "metadata": {"labels": labels, "annotations": pod_annotations()},
                        "spec": pod,
                    },
                },
            }
        )
    )
