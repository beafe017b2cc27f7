"""The probe's hub viewers: every tenant on every network profile in one Deployment,
and one Deployment per profile the kernel shapes (``shaper: tc``)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from canarywatch.api import AgentEnv, AgentRole
from canarywatch.controller.manifests.adapters import viewer_adapter, viewer_policy_env
from canarywatch.controller.manifests.agentpods import DEFAULT_OPTIONS, AgentPodOptions
from canarywatch.controller.manifests.names import (
    deployment_selector,
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
    mount_tokens,
    netem_init_containers,
    pod_annotations,
    pod_spec,
    tmp_volume,
)
from canarywatch.controller.manifests.probe import METRICS_PORT, BuildError, builder, decimal, parse_probe

__all__ = ["build_viewer_deployment"]


@builder
def build_viewer_deployment(
    probe: Mapping[str, Any],
    integration: Mapping[str, Any],
    profile: str | None = None,
    *,
    image: str,
    image_pull_policy: str = "IfNotPresent",
    options: AgentPodOptions = DEFAULT_OPTIONS,
) -> dict[str, Any]:
    """The Deployment of the probe's hub viewers: with ``profile`` None, every tenant
    on every profile shaped in-process (one process; each tenant with its own
    sessions and token, each tenant and profile with its own shaper); with a ``tc``
    profile, every tenant on that profile alone, in pods whose interface netem shapes.
    Each replica runs all of them (``viewersPerProfile`` replicas)."""
    spec = parse_probe(probe)
    if profile is None:
        profiles = [p for p in spec.profiles if p.shaper != "tc"]
        shaper = "application"
    else:
        profiles = [spec.profile(profile)]
        shaper = profiles[0].shaper
        if shaper != "tc":
            raise BuildError(
                f"spec.customNetworkProfiles[{profile}]",
                "only a tc profile has a viewer Deployment of its own",
            )
    if not profiles:
        raise BuildError(
            "spec.networkProfiles", "no profile is shaped in-process: no shared viewer Deployment"
        )
    adapter, secret_env = viewer_adapter(spec, integration)
    # In the probe's order (the viewer plans its streams in it, as the standalone does);
    # each profile's own keys sorted, so the same spec always gives the same bytes.
    canonical = {p.name: json.loads(json.dumps(p.spec, sort_keys=True)) for p in profiles}
    profiles_json = json.dumps(canonical, separators=(",", ":"))
    env = [
        *common_env(spec, AgentRole.VIEWER, adapter),
        env_var(AgentEnv.NETWORK_PROFILES, profiles_json),
        env_var(AgentEnv.NETWORK_SHAPER, shaper),
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
    mount_tokens(spec, container, volumes)
    init_containers = netem_init_containers(spec, profiles[0], image, image_pull_policy) if profile else []
    selector = pod_selector(spec, AgentRole.VIEWER, profile)
    labels = object_labels(spec, "viewer", **selector)
    pod = pod_spec(spec, AgentRole.VIEWER, selector, [container], volumes)
    if init_containers:
        pod["initContainers"] = init_containers
    name = viewer_name(spec.name, profile)
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
                    "selector": deployment_selector(selector, AgentRole.VIEWER),
                    "template": {
                        "metadata": {"labels": labels, "annotations": pod_annotations()},
                        "spec": pod,
                    },
                },
            }
        )
    )
