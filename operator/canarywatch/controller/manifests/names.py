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
    AgentRole,
    label_value,
)
from canarywatch.controller.manifests.probe import builder, parse_probe
from canarywatch.spec import ProbeSpec

__all__ = [
    "VIEWER_ACCOUNT",
    "camera_name",
    "config_hash",
    "deployment_selector",
    "dns_label",
    "expected_workload_names",
    "kernel_shaped_profiles",
    "keyring_item",
    "keyring_secret_name",
    "object_labels",
    "object_metadata",
    "pod_selector",
    "stamp",
    "viewer_name",
]

#: The ServiceAccount (and Role, RoleBinding) every probe's viewers in a namespace run
#: under: made once per namespace, shared by its probes (``rbac``).
VIEWER_ACCOUNT = "canarywatch-viewer"

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


def keyring_secret_name(probe_name: str) -> str:
    """The probe's one keyring Secret: an item per tenant (``keyring_item``)."""
    return dns_label(probe_name, "keyring")


def keyring_item(tenant: str) -> str:
    """The key of ``tenant``'s keyring in the Secret, and its file name in a pod (a
    tenant id is a valid Secret key: letters, digits, ``.``, ``_``, ``-``)."""
    return f"{tenant}.json"


def camera_name(probe_name: str) -> str:
    return dns_label(probe_name, "camera")


def viewer_name(probe_name: str, profile: str | None = None) -> str:
    """The viewers in-process shaped (``profile`` None), or those of one ``tc`` profile."""
    return dns_label(probe_name, "viewer") if profile is None else dns_label(probe_name, "viewer", profile)


def kernel_shaped_profiles(spec: ProbeSpec) -> tuple[str, ...]:
    """Profiles netem imposes on a pod's interface (``shaper: tc``): each needs a pod of
    its own; every other profile runs in the one viewer pod, shaped in-process."""
    return tuple(p.name for p in spec.profiles if p.shaper == "tc")


@builder
def expected_workload_names(probe: ProbeSpec | Mapping[str, Any]) -> tuple[str, ...]:
    """Names of the Deployments the probe should have: its camera, its viewers (the
    in-process shaped ones, if any profile is, then one per ``tc`` profile).

    Needs no integration, so the operator can tell stale Deployments (a removed tenant
    or profile) from current ones even when the integration is missing.
    """
    spec = parse_probe(probe)
    tc = kernel_shaped_profiles(spec)
    shared = [viewer_name(spec.name)] if len(tc) < len(spec.profiles) else []
    return (camera_name(spec.name), *shared, *(viewer_name(spec.name, p) for p in tc))


def config_hash(obj: Mapping[str, Any]) -> str:
    """A stable hash of a built object: canonical JSON, hash annotations left out."""
    return hashlib.sha256(_canonical(_without_hash(obj)).encode()).hexdigest()[:16]


def _canonical(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=True)


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
    canonical = _canonical(obj)
    obj = json.loads(json.dumps(obj))  # the builder's key order, for people reading it
    # What config_hash hashes, without walking the object again when it holds no hash
    # (nor an empty annotations mapping, which config_hash leaves out too).
    plain = CONFIG_HASH_ANNOTATION not in canonical and '"annotations":{}' not in canonical
    digest = hashlib.sha256(canonical.encode()).hexdigest()[:16] if plain else config_hash(obj)
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


def pod_selector(spec: ProbeSpec, role: AgentRole, profile: str | None = None) -> dict[str, str]:
    """The pod labels a Deployment selects by (``deployment_selector``). A ``tc``
    profile's viewer pods carry their profile; the in-process shaped ones do not."""
    # Deployment selectors are immutable: only labels that never change for one
    # Deployment name (not the integration, which the probe may be repointed to).
    selector = {LABEL_PROBE: label_value(spec.name), LABEL_ROLE: str(role)}
    if profile is not None:
        selector[LABEL_NETWORK_PROFILE] = label_value(profile)
    return selector


def deployment_selector(labels: Mapping[str, str], role: AgentRole) -> dict[str, Any]:
    """A Deployment's selector of ``pod_selector`` labels: the in-process viewers' one
    excludes the ``tc`` profiles' pods (Deployments must not select each other's pods)."""
    selector: dict[str, Any] = {"matchLabels": dict(labels)}
    if role is AgentRole.VIEWER and LABEL_NETWORK_PROFILE not in labels:
        selector["matchExpressions"] = [{"key": LABEL_NETWORK_PROFILE, "operator": "DoesNotExist"}]
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
