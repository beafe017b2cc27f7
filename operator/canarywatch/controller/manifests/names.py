"""Names, labels, owner references and config hashes of the objects a probe runs on."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from typing import Any

from canarywatch.api import (
    API_VERSION,
    CONFIG_HASH_ANNOTATION,
    KIND_PROBE,
    LABEL_INTEGRATION,
    LABEL_NETWORK_PROFILE,
    LABEL_PROBE,
    LABEL_ROLE,
    LABEL_TENANT,
    AgentRole,
    label_value,
)
from canarywatch.controller.manifests.probe import builder, parse_probe
from canarywatch.spec import ProbeSpec

__all__ = [
    "camera_name",
    "config_hash",
    "dns_label",
    "expected_workload_names",
    "keyring_secret_name",
    "object_labels",
    "object_metadata",
    "pod_selector",
    "service_account_name",
    "stamp",
    "viewer_name",
]

_MAX_NAME = 63  # a DNS-1123 label: valid for every kind built here, Services included


def dns_label(*parts: str) -> str:
    """``parts`` joined by ``-`` as a DNS-1123 label. Anything the join had to change
    (case, characters, length) gets a hash of the original appended, so two tenants
    that differ only in case never share an object. When too long, the first part (the
    probe's name) is shortened first, so the name still says what the object is."""
    original = "-".join(parts)
    cleaned = [re.sub(r"-{2,}", "-", re.sub(r"[^a-z0-9-]", "-", part.lower())).strip("-") for part in parts]
    joined = "-".join(p for p in cleaned if p)
    if joined == original and len(joined) <= _MAX_NAME:
        return joined
    suffix = hashlib.sha256(original.encode()).hexdigest()[:8]
    budget = _MAX_NAME - len(suffix) - 1
    tail = "-".join(p for p in cleaned[1:] if p)
    room = budget - len(tail) - 1
    if tail and room >= 8:
        return f"{cleaned[0][:room].rstrip('-')}-{tail}-{suffix}"
    return f"{joined[:budget].rstrip('-')}-{suffix}"


def keyring_secret_name(probe_name: str, tenant: str) -> str:
    return dns_label(probe_name, "keyring", tenant)


def camera_name(probe_name: str, tenant: str) -> str:
    return dns_label(probe_name, "camera", tenant)


def viewer_name(probe_name: str, tenant: str, profile: str) -> str:
    return dns_label(probe_name, "viewer", tenant, profile)


def service_account_name(probe_name: str, role: AgentRole) -> str:
    return dns_label(probe_name, str(role))


@builder
def expected_workload_names(probe: ProbeSpec | Mapping[str, Any]) -> tuple[str, ...]:
    """Names of the Deployments the probe should have: its cameras, then its viewers.

    Needs no integration, so the operator can tell stale Deployments (a removed tenant
    or profile) from current ones even when the integration is missing.
    """
    spec = parse_probe(probe)
    cameras = [camera_name(spec.name, t) for t in spec.tenant_ids]
    viewers = [viewer_name(spec.name, t, p.name) for t in spec.tenant_ids for p in spec.profiles]
    return (*cameras, *viewers)


def config_hash(obj: Mapping[str, Any]) -> str:
    """A stable hash of a built object: canonical JSON, hash annotations left out."""
    canonical = json.dumps(_without_hash(obj), sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def _without_hash(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {
            k: _without_hash(v)
            for k, v in value.items()
            if k != CONFIG_HASH_ANNOTATION and not (k == "annotations" and _only_hash(v))
        }
    if isinstance(value, list | tuple):
        return [_without_hash(v) for v in value]
    return value


def _only_hash(annotations: Any) -> bool:
    return isinstance(annotations, Mapping) and set(annotations) <= {CONFIG_HASH_ANNOTATION}


def stamp(obj: dict[str, Any]) -> dict[str, Any]:
    """Set the config hash on ``obj`` (and its pod template): a changed spec shows as a
    changed hash, and a changed pod template rolls the Deployment.

    Returns a deep copy made of plain JSON types: no two places of the result share a
    dict, so a caller may edit one (``kopf.adopt``, a test) without touching another.
    """
    obj = json.loads(json.dumps(obj))
    digest = config_hash(obj)
    obj["metadata"].setdefault("annotations", {})[CONFIG_HASH_ANNOTATION] = digest
    template = obj.get("spec", {}).get("template")
    if isinstance(template, dict):
        template["metadata"].setdefault("annotations", {})[CONFIG_HASH_ANNOTATION] = digest
    return obj


def object_labels(spec: ProbeSpec, component: str, **extra: str) -> dict[str, str]:
    labels = {
        "app.kubernetes.io/name": "canarywatch",
        "app.kubernetes.io/instance": label_value(spec.name),
        "app.kubernetes.io/component": component,
        "app.kubernetes.io/part-of": "canarywatch",
        "app.kubernetes.io/managed-by": "canarywatch-operator",
        LABEL_PROBE: label_value(spec.name),
        LABEL_INTEGRATION: label_value(spec.integration),
    }
    labels.update({key: label_value(value) for key, value in extra.items()})
    return labels


def pod_selector(spec: ProbeSpec, role: AgentRole, tenant: str, profile: str | None = None) -> dict[str, str]:
    # Deployment selectors are immutable: only labels that never change for one
    # Deployment name (not the integration, which the probe may be repointed to).
    selector = {LABEL_PROBE: label_value(spec.name), LABEL_ROLE: str(role), LABEL_TENANT: tenant}
    if profile is not None:
        selector[LABEL_NETWORK_PROFILE] = profile
    return selector


def object_metadata(spec: ProbeSpec, name: str, labels: Mapping[str, str]) -> dict[str, Any]:
    return {
        "name": name,
        "namespace": spec.namespace,
        "labels": dict(labels),
        "ownerReferences": [
            {
                "apiVersion": API_VERSION,
                "kind": KIND_PROBE,
                "name": spec.name,
                "uid": spec.uid,
                "controller": True,
                "blockOwnerDeletion": True,
            }
        ],
    }
