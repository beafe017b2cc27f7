"""The pieces of an agent pod: its environment, container, volumes, security context,
scheduling, and for ``shaper: tc`` the netem init container.

Security: every agent runs as a non-root user with a read-only root filesystem, no
privilege escalation, the RuntimeDefault seccomp profile and all capabilities dropped.
The one exception is a viewer whose profile asks for ``shaper: tc``: its pod gets an
init container that runs as root with NET_ADMIN only (and nothing else) to apply the
``tc`` commands of ``viewer.network.netem_commands`` to the pod's network namespace;
the viewer container itself stays unprivileged. Such pods need a namespace that allows
NET_ADMIN (Pod Security "privileged").
"""

from __future__ import annotations

import json
import shlex
from collections.abc import Iterable, Mapping
from typing import Any

from canarywatch.api import LABEL_PROBE, LABEL_ROLE, AgentEnv, AgentRole, label_value
from canarywatch.controller.manifests.names import VIEWER_ACCOUNT, keyring_item, keyring_secret_name
from canarywatch.controller.manifests.probe import KEYRING_DIR, METRICS_PORT, TOKEN_DIR, decimal
from canarywatch.spec import ProbeSpec, ViewerProfile
from canarywatch.viewer.network import netem_commands

__all__ = [
    "DEFAULT_RESOURCES",
    "agent_container",
    "common_env",
    "env_var",
    "keyring_volume",
    "mount_tokens",
    "netem_init_containers",
    "pod_annotations",
    "pod_spec",
    "tmp_volume",
]

_AGENT_UID = 65532  # "nonroot" in distroless-style images
_TOPOLOGY_KEYS = {"nodes": "kubernetes.io/hostname", "zones": "topology.kubernetes.io/zone"}

#: Requests and limits per agent; spec.resources overrides them key by key. Viewers
#: decode every frame (OpenCV); cameras render and encode at most 16 streams.
DEFAULT_RESOURCES: Mapping[str, Mapping[str, Mapping[str, str]]] = {
    "camera": {"requests": {"cpu": "50m", "memory": "96Mi"}, "limits": {"cpu": "500m", "memory": "256Mi"}},
    "viewer": {"requests": {"cpu": "100m", "memory": "128Mi"}, "limits": {"cpu": "1", "memory": "384Mi"}},
}


def env_var(name: AgentEnv, value: str) -> dict[str, Any]:
    return {"name": str(name), "value": value}


def _field_env(name: AgentEnv, field_path: str) -> dict[str, Any]:
    return {"name": str(name), "valueFrom": {"fieldRef": {"fieldPath": field_path}}}


def common_env(spec: ProbeSpec, role: AgentRole, adapter: Mapping[str, Any]) -> list[dict[str, Any]]:
    """What both agents read (``AgentEnv``): both run every tenant of the probe."""
    variables = [
        env_var(AgentEnv.ROLE, str(role)),
        _field_env(AgentEnv.NAMESPACE, "metadata.namespace"),
        _field_env(AgentEnv.POD_NAME, "metadata.name"),
        _field_env(AgentEnv.NODE_NAME, "spec.nodeName"),
        env_var(AgentEnv.INTEGRATION, spec.integration),
        env_var(AgentEnv.PROBE, spec.name),
        env_var(AgentEnv.TENANTS, ",".join(spec.tenant_ids)),
        env_var(AgentEnv.CAMERAS, str(spec.cameras)),
        env_var(AgentEnv.FPS, decimal(spec.fps)),
        env_var(AgentEnv.KEYRING_DIR, KEYRING_DIR),
        env_var(AgentEnv.ADAPTER, json.dumps(adapter, sort_keys=True, separators=(",", ":"))),
        env_var(AgentEnv.METRICS_PORT, str(METRICS_PORT)),
    ]
    if any(t.token is not None for t in spec.tenants):
        variables.append(env_var(AgentEnv.TOKEN_DIR, TOKEN_DIR))
    return variables


def agent_container(
    spec: ProbeSpec,
    role: AgentRole,
    image: str,
    image_pull_policy: str,
    env: list[dict[str, Any]],
    ports: list[dict[str, Any]],
) -> dict[str, Any]:
    if not isinstance(image, str) or not image.strip():
        raise ValueError("image must name the canarywatch container image (the operator's own, usually)")
    health = {"httpGet": {"path": "/healthz", "port": "metrics"}}
    return {
        "name": str(role),
        "image": image,
        "imagePullPolicy": image_pull_policy,
        "command": ["canarywatch"],
        "args": [str(role)],
        "env": env,
        "ports": ports,
        "resources": _resources(spec, role),
        "readinessProbe": {**health, "periodSeconds": 10, "failureThreshold": 3},
        "livenessProbe": {**health, "initialDelaySeconds": 10, "periodSeconds": 20, "failureThreshold": 6},
        "securityContext": _restricted_security_context(),
        "volumeMounts": [
            {"name": "keyring", "mountPath": KEYRING_DIR, "readOnly": True},
            {"name": "tmp", "mountPath": "/tmp"},
        ],
    }


def _restricted_security_context() -> dict[str, Any]:
    return {
        "runAsNonRoot": True,
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "capabilities": {"drop": ["ALL"]},
    }


def pod_annotations() -> dict[str, str]:
    return {
        "prometheus.io/scrape": "true",
        "prometheus.io/port": str(METRICS_PORT),
        "prometheus.io/path": "/metrics",
    }


def pod_spec(
    spec: ProbeSpec,
    role: AgentRole,
    selector: Mapping[str, str],
    containers: list[dict[str, Any]],
    volumes: list[dict[str, Any]],
) -> dict[str, Any]:
    topology_key = _TOPOLOGY_KEYS[spec.spread_across]
    pod: dict[str, Any] = {
        # Cameras never talk to the API server (the namespace's default account, no
        # token); viewers create LeakIncidents as the namespace's viewer account.
        **({"serviceAccountName": VIEWER_ACCOUNT} if role is AgentRole.VIEWER else {}),
        "automountServiceAccountToken": role is AgentRole.VIEWER,
        "enableServiceLinks": False,
        "terminationGracePeriodSeconds": 10,
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": _AGENT_UID,
            "runAsGroup": _AGENT_UID,
            "fsGroup": _AGENT_UID,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        # Spread all of the probe's agents of this role (every tenant and profile) so
        # they see the integration from as many vantage points (nodes, zones, CDN
        # edges) as the cluster has, and keep one Deployment's replicas apart.
        "topologySpreadConstraints": [
            {
                "maxSkew": 1,
                "topologyKey": topology_key,
                "whenUnsatisfiable": spec.when_unsatisfiable,
                "labelSelector": {
                    "matchLabels": {LABEL_PROBE: label_value(spec.name), LABEL_ROLE: str(role)}
                },
            }
        ],
        "affinity": {
            "podAntiAffinity": {
                "preferredDuringSchedulingIgnoredDuringExecution": [
                    {
                        "weight": 100,
                        "podAffinityTerm": {
                            "topologyKey": topology_key,
                            "labelSelector": {"matchLabels": dict(selector)},
                        },
                    }
                ]
            }
        },
        "containers": containers,
        "volumes": volumes,
    }
    if spec.node_selector:
        pod["nodeSelector"] = dict(spec.node_selector)
    if spec.tolerations:
        pod["tolerations"] = [dict(t) for t in spec.tolerations]
    return pod


def _resources(spec: ProbeSpec, role: AgentRole) -> dict[str, dict[str, str]]:
    overrides = spec.resources.get(str(role)) or {}
    merged: dict[str, dict[str, str]] = {}
    for kind in ("requests", "limits"):
        values = dict(DEFAULT_RESOURCES[str(role)][kind])
        for resource, quantity in (overrides.get(kind) or {}).items():
            values[str(resource)] = str(quantity)
        merged[kind] = values
    return merged


def keyring_volume(spec: ProbeSpec, tenants: Iterable[str]) -> dict[str, Any]:
    """The probe's keyring Secret, only the items of ``tenants`` (``<tenant>.json``)."""
    return {
        "name": "keyring",
        "secret": {
            "secretName": keyring_secret_name(spec.name),
            "defaultMode": 0o440,
            "items": [{"key": keyring_item(t), "path": keyring_item(t)} for t in tenants],
        },
    }


def tmp_volume() -> dict[str, Any]:
    return {"name": "tmp", "emptyDir": {"medium": "Memory", "sizeLimit": "16Mi"}}


def mount_tokens(spec: ProbeSpec, container: dict[str, Any], volumes: list[dict[str, Any]]) -> None:
    """Each tenant's token (``tokenSecretRef``) as the file ``TOKEN_DIR/<tenant>``:
    files rather than env vars, so no token shows in the pod spec or the environment."""
    sources = [
        {"secret": {"name": t.token[0], "items": [{"key": t.token[1], "path": t.id}]}}
        for t in spec.tenants
        if t.token is not None
    ]
    if not sources:
        return
    volumes.append({"name": "token", "projected": {"defaultMode": 0o440, "sources": sources}})
    container["volumeMounts"].append({"name": "token", "mountPath": TOKEN_DIR, "readOnly": True})


def netem_init_containers(
    spec: ProbeSpec, profile: ViewerProfile, image: str, image_pull_policy: str
) -> list[dict[str, Any]]:
    """For ``shaper: tc``: a root init container with NET_ADMIN alone that imposes the
    profile on the pod's interface; qdiscs outlive it in the shared network namespace."""
    if profile.shaper != "tc":
        return []
    commands = netem_commands(profile.network_profile(where=f"spec.customNetworkProfiles[{profile.name}]"))
    if not commands:
        return []
    lines = []
    for argv in commands:
        line = shlex.join(argv)
        if argv[:3] == ["ip", "link", "add"]:
            # A restarted init container finds the ifb device it made last time.
            line += f" 2>/dev/null || ip link show {shlex.quote(argv[3])} >/dev/null"
        lines.append(line)
    return [
        {
            "name": "netem",
            "image": image,
            "imagePullPolicy": image_pull_policy,
            "command": ["/bin/sh", "-ec", "\n".join(lines)],
            "resources": {
                "requests": {"cpu": "10m", "memory": "16Mi"},
                "limits": {"cpu": "100m", "memory": "64Mi"},
            },
            "securityContext": {
                "runAsUser": 0,
                "runAsNonRoot": False,
                "allowPrivilegeEscalation": False,
                "readOnlyRootFilesystem": True,
                "capabilities": {"drop": ["ALL"], "add": ["NET_ADMIN"]},
            },
        }
    ]
