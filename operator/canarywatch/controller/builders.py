"""The Kubernetes objects a CanaryProbe runs on, built as plain dicts (pure: no I/O).

The kopf handlers read a ``CanaryProbe`` and its ``CameraIntegration`` and call these
functions; what comes back is ready to create or patch. Same input, same output, to the
byte, so the handlers can compare hashes instead of diffing server-defaulted objects.

Per probe::

    ServiceAccount <probe>-camera        no API access, token not mounted
    ServiceAccount <probe>-viewer        + Role/RoleBinding: create LeakIncidents, nothing more
    per tenant:
      Secret     <probe>-keyring-<tenant>        the tenant's signing key (immutable)
      Deployment <probe>-camera-<tenant>         1 replica, all the tenant's cameras
      Service    <probe>-camera-<tenant>         only when the integration pulls (camera.serve)
      per network profile:
        Deployment <probe>-viewer-<tenant>-<profile>   viewersPerProfile replicas

Keys: a camera mounts only its own tenant's keyring; a viewer mounts every tenant's of
the probe, because telling ``cross_tenant`` (another tenant's valid signature) from
``forged`` needs the other tenants' keys. Both find ``<tenant>.json`` files (the
``Keyring.to_json`` format) in ``CANARYWATCH_KEYRING_DIR`` and merge them.

Environment of the agent containers (``canarywatch camera`` / ``canarywatch viewer``)::

    CANARYWATCH_ROLE                camera | viewer
    CANARYWATCH_NAMESPACE, CANARYWATCH_POD_NAME, CANARYWATCH_NODE_NAME   (downward API)
    CANARYWATCH_INTEGRATION         the CameraIntegration's name
    CANARYWATCH_PROBE               the CanaryProbe's name
    CANARYWATCH_TENANT              this workload's synthetic tenant
    CANARYWATCH_CAMERAS             cameras per tenant (camera ids 0..N-1)
    CANARYWATCH_FPS                 frames per second the cameras publish
    CANARYWATCH_KEYRING_DIR         directory of <tenant>.json keyrings
    CANARYWATCH_TOKEN_FILE          the tenant's token ({token}); absent without tokenSecretRef
    CANARYWATCH_ADAPTER             JSON: the integration's endpoints for this role in the
                                    standalone config's shape: integration.camera ({push} or
                                    {serve}) or integration.viewer (the endpoints of the
                                    probe's transports, pollInterval). Templates may carry
                                    headersFrom: {header: {"env": NAME}} (resolve with
                                    TokenSource.from_value, add to headers)
    CANARYWATCH_SECRET_<n>          Secret values those headersFrom name
    CANARYWATCH_METRICS_PORT        port of /metrics and /healthz (readiness, liveness)
  camera only:
    CANARYWATCH_FRAME_WIDTH, CANARYWATCH_FRAME_HEIGHT
  viewer only:
    CANARYWATCH_TENANTS              every tenant of the probe, comma-separated (authz targets)
    CANARYWATCH_NETWORK_PROFILE      JSON for NetworkProfile.from_spec: "poor" or {name, latency, …}
    CANARYWATCH_NETWORK_PROFILE_NAME the profile's name in the probe (labels, incidents)
    CANARYWATCH_NETWORK_SHAPER       application | tc. With tc an init container has already
                                     imposed the profile with netem; the viewer applies only
                                     what netem cannot (stalls)
    CANARYWATCH_TRANSPORTS           comma-separated: snapshot, mjpeg, events, authz
    CANARYWATCH_FRESHNESS_SECONDS    the stale bound
    CANARYWATCH_POLICY               JSON: the integration's spec.policy (absent: built-in)

Security: every agent runs as a non-root user with a read-only root filesystem, no
privilege escalation, the RuntimeDefault seccomp profile and all capabilities dropped.
The one exception is a viewer whose profile asks for ``shaper: tc``: its pod gets an
init container that runs as root with NET_ADMIN only (and nothing else) to apply the
``tc`` commands of ``viewer.network.netem_commands`` to the pod's network namespace;
the viewer container itself stays unprivileged. Such pods need a namespace that allows
NET_ADMIN (Pod Security "privileged").
"""

from __future__ import annotations

import base64
import enum
import hashlib
import json
import math
import re
import shlex
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from canarywatch.api import (
    API_GROUP,
    API_VERSION,
    CONFIG_HASH_ANNOTATION,
    KIND_PROBE,
    LABEL_INTEGRATION,
    LABEL_NETWORK_PROFILE,
    LABEL_PROBE,
    LABEL_ROLE,
    LABEL_TENANT,
    TRANSPORT_ENDPOINTS,
    label_value,
)
from canarywatch.errors import FieldError
from canarywatch.incidents.policy import Policy, PolicyError
from canarywatch.markers.keyring import Keyring, KeyringError
from canarywatch.verdicts import Verdict
from canarywatch.viewer.network import PRESETS, NetworkProfile, ProfileError, netem_commands

__all__ = [
    "API_VERSION",
    "CONFIG_HASH_ANNOTATION",
    "DEFAULT_RESOURCES",
    "KEYRING_DIR",
    "KEYRING_SECRET_KEY",
    "LABEL_INTEGRATION",
    "LABEL_NETWORK_PROFILE",
    "LABEL_PROBE",
    "LABEL_ROLE",
    "LABEL_TENANT",
    "METRICS_PORT",
    "PROBE_DEFAULTS",
    "TOKEN_FILE",
    "AgentRole",
    "BuildError",
    "ProbeSpec",
    "Tenant",
    "ViewerProfile",
    "build_agent_rbac",
    "build_camera_deployment",
    "build_camera_service",
    "build_keyring_secret",
    "build_probe_status",
    "build_probe_workloads",
    "build_viewer_deployment",
    "config_hash",
    "expected_workload_names",
    "keyring_secret_name",
    "parse_probe",
]

PROBE_KIND = KIND_PROBE

KEYRING_DIR = "/var/run/canarywatch/keyring"
KEYRING_SECRET_KEY = "keyring.json"
TOKEN_DIR = "/var/run/canarywatch/token"
TOKEN_FILE = f"{TOKEN_DIR}/token"
METRICS_PORT = 9100
_AGENT_UID = 65532  # "nonroot" in distroless-style images

#: The CRD's defaults (crds/canaryprobes.yaml), applied here too so a spec read before
#: the API server defaulted it builds the same objects; a unit test keeps them in step.
PROBE_DEFAULTS: Mapping[str, Any] = {
    "camerasPerTenant": 1,
    "fps": 2,
    "frameSize": {"width": 640, "height": 360},
    "networkProfiles": ["good", "poor"],
    "viewersPerProfile": 1,
    "transports": ["snapshot"],
    "freshnessSeconds": 10,
    "placement": {"spreadAcross": "nodes", "whenUnsatisfiable": "ScheduleAnyway"},
}

#: Requests and limits per agent; spec.resources overrides them key by key. Viewers
#: decode every frame (OpenCV); cameras render and encode at most 16 streams.
DEFAULT_RESOURCES: Mapping[str, Mapping[str, Mapping[str, str]]] = {
    "camera": {"requests": {"cpu": "50m", "memory": "96Mi"}, "limits": {"cpu": "500m", "memory": "256Mi"}},
    "viewer": {"requests": {"cpu": "100m", "memory": "128Mi"}, "limits": {"cpu": "1", "memory": "384Mi"}},
}

_TOPOLOGY_KEYS = {"nodes": "kubernetes.io/hostname", "zones": "topology.kubernetes.io/zone"}
_MAX_NAME = 63  # a DNS-1123 label: valid for every kind built here, Services included


class BuildError(FieldError):
    """The probe (or its integration) cannot be turned into workloads; ``field`` is the
    path of the setting to fix (``spec.transports``), for a condition message."""


class AgentRole(enum.StrEnum):
    CAMERA = "camera"
    VIEWER = "viewer"


@dataclass(frozen=True, slots=True)
class Tenant:
    id: str
    #: (Secret name, key) of the tenant's token, or None for integrations without auth.
    token: tuple[str, str] | None = None


@dataclass(frozen=True, slots=True)
class ViewerProfile:
    """One network profile as a viewer Deployment runs it."""

    name: str
    #: what ``NetworkProfile.from_spec`` takes: a preset name or the explicit mapping.
    spec: str | Mapping[str, Any]
    shaper: str = "application"

    def network_profile(self, where: str) -> NetworkProfile:
        try:
            return NetworkProfile.from_spec(self.spec, where=where)
        except ProfileError as error:
            raise BuildError(error.field, error.message) from error


@dataclass(frozen=True, slots=True)
class ProbeSpec:
    """A CanaryProbe with its defaults applied: what every builder reads."""

    name: str
    namespace: str
    uid: str
    integration: str
    tenants: tuple[Tenant, ...]
    cameras: int
    fps: float
    width: int
    height: int
    profiles: tuple[ViewerProfile, ...]
    viewers: int
    transports: tuple[str, ...]
    freshness_seconds: float
    spread_across: str
    when_unsatisfiable: str
    node_selector: Mapping[str, str]
    tolerations: tuple[Mapping[str, Any], ...]
    resources: Mapping[str, Any]

    @property
    def tenant_ids(self) -> tuple[str, ...]:
        return tuple(t.id for t in self.tenants)

    def tenant(self, tenant_id: str) -> Tenant:
        for tenant in self.tenants:
            if tenant.id == tenant_id:
                return tenant
        raise BuildError("spec.tenants", f"no tenant {tenant_id!r} in probe {self.name!r}")

    def profile(self, name: str) -> ViewerProfile:
        for profile in self.profiles:
            if profile.name == name:
                return profile
        raise BuildError("spec.networkProfiles", f"no network profile {name!r} in probe {self.name!r}")


# -- parsing ----------------------------------------------------------------------------


def parse_probe(probe: Mapping[str, Any]) -> ProbeSpec:
    """The CanaryProbe object (``metadata`` and ``spec``) as a ``ProbeSpec``.

    The API server has validated the spec against the CRD; this checks only what the
    builders rely on, and raises ``BuildError`` naming the field otherwise.
    """
    metadata = _mapping(probe.get("metadata"), "metadata")
    spec = _mapping(probe.get("spec"), "spec")
    name = _string(metadata.get("name"), "metadata.name")
    namespace = _string(metadata.get("namespace"), "metadata.namespace")
    uid = _string(metadata.get("uid"), "metadata.uid")
    integration = _string(
        _mapping(spec.get("integrationRef"), "spec.integrationRef").get("name"), "spec.integrationRef.name"
    )

    tenants: list[Tenant] = []
    for index, raw in enumerate(_sequence(spec.get("tenants"), "spec.tenants")):
        where = f"spec.tenants[{index}]"
        entry = _mapping(raw, where)
        tenant_id = _string(entry.get("id"), f"{where}.id")
        # The CRD's pattern: a keyring tenant id that is also a valid label value.
        if not re.fullmatch(r"[A-Za-z0-9]([A-Za-z0-9._-]{0,61}[A-Za-z0-9])?", tenant_id):
            raise BuildError(f"{where}.id", f"{tenant_id!r} is not a valid tenant id")
        if tenant_id in {t.id for t in tenants}:
            raise BuildError(f"{where}.id", f"tenant {tenant_id!r} is listed twice")
        token: tuple[str, str] | None = None
        if entry.get("tokenSecretRef") is not None:
            ref = _mapping(entry["tokenSecretRef"], f"{where}.tokenSecretRef")
            token = (
                _string(ref.get("name"), f"{where}.tokenSecretRef.name"),
                _string(ref.get("key"), f"{where}.tokenSecretRef.key"),
            )
        tenants.append(Tenant(tenant_id, token))
    if not tenants:
        raise BuildError("spec.tenants", "at least one tenant is required")

    frame = {**PROBE_DEFAULTS["frameSize"], **_mapping(spec.get("frameSize", {}), "spec.frameSize")}
    placement = {**PROBE_DEFAULTS["placement"], **_mapping(spec.get("placement", {}), "spec.placement")}
    spread = str(placement["spreadAcross"])
    if spread not in _TOPOLOGY_KEYS:
        raise BuildError("spec.placement.spreadAcross", f"expected nodes or zones, got {spread!r}")
    transports = tuple(str(t) for t in _sequence(_default(spec, "transports"), "spec.transports"))
    for index, transport in enumerate(transports):
        if transport not in TRANSPORT_ENDPOINTS:
            raise BuildError(f"spec.transports[{index}]", f"unknown transport {transport!r}")
    return ProbeSpec(
        name=name,
        namespace=namespace,
        uid=uid,
        integration=integration,
        tenants=tuple(tenants),
        cameras=_int(_default(spec, "camerasPerTenant"), "spec.camerasPerTenant", low=1),
        fps=_number(_default(spec, "fps"), "spec.fps"),
        width=_int(frame["width"], "spec.frameSize.width", low=1),
        height=_int(frame["height"], "spec.frameSize.height", low=1),
        profiles=_profiles(spec),
        viewers=_int(_default(spec, "viewersPerProfile"), "spec.viewersPerProfile", low=1),
        transports=transports,
        freshness_seconds=_number(_default(spec, "freshnessSeconds"), "spec.freshnessSeconds"),
        spread_across=spread,
        when_unsatisfiable=str(placement["whenUnsatisfiable"]),
        node_selector={
            str(k): str(v)
            for k, v in _mapping(placement.get("nodeSelector", {}), "spec.placement.nodeSelector").items()
        },
        tolerations=tuple(
            _mapping(t, f"spec.placement.tolerations[{i}]")
            for i, t in enumerate(_sequence(placement.get("tolerations", []), "spec.placement.tolerations"))
        ),
        resources=_mapping(spec.get("resources", {}), "spec.resources"),
    )


_EXPLICIT_PROFILE_KEYS = ("bandwidth", "latency", "jitter", "loss", "stall", "lossTimeout")


def _profiles(spec: Mapping[str, Any]) -> tuple[ViewerProfile, ...]:
    custom: dict[str, Mapping[str, Any]] = {}
    for index, raw in enumerate(
        _sequence(spec.get("customNetworkProfiles", []), "spec.customNetworkProfiles")
    ):
        entry = _mapping(raw, f"spec.customNetworkProfiles[{index}]")
        custom[_string(entry.get("name"), f"spec.customNetworkProfiles[{index}].name")] = entry
    profiles: list[ViewerProfile] = []
    for index, raw_name in enumerate(_sequence(_default(spec, "networkProfiles"), "spec.networkProfiles")):
        name = _string(raw_name, f"spec.networkProfiles[{index}]")
        if name in custom:
            entry = custom[name]
            profile_spec: str | Mapping[str, Any]
            if "preset" in entry:
                profile_spec = str(entry["preset"])
            else:
                profile_spec = {"name": name} | {k: entry[k] for k in _EXPLICIT_PROFILE_KEYS if k in entry}
            profile = ViewerProfile(name, profile_spec, str(entry.get("shaper", "application")))
        elif name in PRESETS:
            profile = ViewerProfile(name, name)
        else:
            raise BuildError(
                f"spec.networkProfiles[{index}]",
                f"{name!r} is neither a preset ({', '.join(PRESETS)}) nor in customNetworkProfiles",
            )
        if profile.shaper not in ("application", "tc"):
            raise BuildError(f"spec.customNetworkProfiles[{name}].shaper", "expected application or tc")
        # Fail here, on the probe, rather than in a crash-looping viewer pod.
        profile.network_profile(where=f"spec.customNetworkProfiles[{name}]")
        profiles.append(profile)
    if len({p.name for p in profiles}) != len(profiles):
        raise BuildError("spec.networkProfiles", "each profile may be listed once")
    return tuple(profiles)


# -- names, labels, hashes ---------------------------------------------------------------


def _dns_label(*parts: str) -> str:
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
    return _dns_label(probe_name, "keyring", tenant)


def _camera_name(probe_name: str, tenant: str) -> str:
    return _dns_label(probe_name, "camera", tenant)


def _viewer_name(probe_name: str, tenant: str, profile: str) -> str:
    return _dns_label(probe_name, "viewer", tenant, profile)


def _service_account_name(probe_name: str, role: AgentRole) -> str:
    return _dns_label(probe_name, str(role))


def expected_workload_names(probe: ProbeSpec | Mapping[str, Any]) -> tuple[str, ...]:
    """Names of the Deployments the probe should have: its cameras, then its viewers.

    Needs no integration, so the operator can tell stale Deployments (a removed tenant
    or profile) from current ones even when the integration is missing.
    """
    spec = probe if isinstance(probe, ProbeSpec) else parse_probe(probe)
    cameras = [_camera_name(spec.name, t) for t in spec.tenant_ids]
    viewers = [_viewer_name(spec.name, t, p.name) for t in spec.tenant_ids for p in spec.profiles]
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


def _stamp(obj: dict[str, Any]) -> dict[str, Any]:
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


def _labels(spec: ProbeSpec, component: str, **extra: str) -> dict[str, str]:
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


def _selector(spec: ProbeSpec, role: AgentRole, tenant: str, profile: str | None = None) -> dict[str, str]:
    # Deployment selectors are immutable: only labels that never change for one
    # Deployment name (not the integration, which the probe may be repointed to).
    selector = {LABEL_PROBE: label_value(spec.name), LABEL_ROLE: str(role), LABEL_TENANT: tenant}
    if profile is not None:
        selector[LABEL_NETWORK_PROFILE] = profile
    return selector


def _metadata(spec: ProbeSpec, name: str, labels: Mapping[str, str]) -> dict[str, Any]:
    return {
        "name": name,
        "namespace": spec.namespace,
        "labels": dict(labels),
        "ownerReferences": [
            {
                "apiVersion": API_VERSION,
                "kind": PROBE_KIND,
                "name": spec.name,
                "uid": spec.uid,
                "controller": True,
                "blockOwnerDeletion": True,
            }
        ],
    }


# -- objects ----------------------------------------------------------------------------


def build_keyring_secret(probe: Mapping[str, Any], tenant: str, key: bytes) -> dict[str, Any]:
    """The tenant's keyring Secret, holding ``key`` (generated by the caller, once).

    Immutable: a signing key is never edited in place; rotating it means a new Secret
    (and new workloads). Never log the returned object.
    """
    spec = parse_probe(probe)
    spec.tenant(tenant)
    try:
        keyring_json = Keyring({tenant: key}).to_json()
    except KeyringError as error:
        raise BuildError(f"spec.tenants[{tenant}]", str(error)) from error
    labels = _labels(spec, "keyring", **{LABEL_TENANT: tenant})
    return _stamp(
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": _metadata(spec, keyring_secret_name(spec.name, tenant), labels),
            "type": "Opaque",
            "immutable": True,
            "data": {KEYRING_SECRET_KEY: base64.b64encode(keyring_json.encode()).decode()},
        }
    )


def build_agent_rbac(probe: Mapping[str, Any]) -> list[dict[str, Any]]:
    """ServiceAccounts of the agents, and the viewers' Role/RoleBinding.

    Viewers may ``create`` LeakIncidents in the probe's namespace and nothing else
    (not even read them back); cameras need no API access and get no token at all.
    """
    spec = parse_probe(probe)
    camera_sa = _service_account_name(spec.name, AgentRole.CAMERA)
    viewer_sa = _service_account_name(spec.name, AgentRole.VIEWER)
    objects: list[dict[str, Any]] = [
        {
            "apiVersion": "v1",
            "kind": "ServiceAccount",
            "metadata": _metadata(spec, camera_sa, _labels(spec, "camera", **{LABEL_ROLE: "camera"})),
            "automountServiceAccountToken": False,
        },
        {
            "apiVersion": "v1",
            "kind": "ServiceAccount",
            "metadata": _metadata(spec, viewer_sa, _labels(spec, "viewer", **{LABEL_ROLE: "viewer"})),
            "automountServiceAccountToken": False,  # mounted by the viewer pods only
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "Role",
            "metadata": _metadata(spec, viewer_sa, _labels(spec, "viewer", **{LABEL_ROLE: "viewer"})),
            "rules": [{"apiGroups": [API_GROUP], "resources": ["leakincidents"], "verbs": ["create"]}],
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "RoleBinding",
            "metadata": _metadata(spec, viewer_sa, _labels(spec, "viewer", **{LABEL_ROLE: "viewer"})),
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": viewer_sa},
            "subjects": [{"kind": "ServiceAccount", "name": viewer_sa, "namespace": spec.namespace}],
        },
    ]
    return [_stamp(obj) for obj in objects]


def build_camera_deployment(
    probe: Mapping[str, Any],
    integration: Mapping[str, Any],
    tenant: str,
    *,
    image: str,
    image_pull_policy: str = "IfNotPresent",
) -> dict[str, Any]:
    """The Deployment running all of ``tenant``'s canary cameras (one replica).

    ``Recreate``: two generations of a camera publishing at once would interleave two
    sequence counters, which viewers rightly report as replayed (stale) frames.
    """
    spec = parse_probe(probe)
    spec.tenant(tenant)
    adapter, secret_env = _camera_adapter(integration)
    env = [
        *_common_env(spec, AgentRole.CAMERA, tenant, adapter),
        _env("CANARYWATCH_FRAME_WIDTH", str(spec.width)),
        _env("CANARYWATCH_FRAME_HEIGHT", str(spec.height)),
        *secret_env,
    ]
    ports = [{"name": "metrics", "containerPort": METRICS_PORT, "protocol": "TCP"}]
    if "serve" in adapter:
        ports.append(
            {"name": "camera-http", "containerPort": int(adapter["serve"]["port"]), "protocol": "TCP"}
        )
    container = _agent_container(spec, AgentRole.CAMERA, image, image_pull_policy, env, ports)
    volumes = [_keyring_volume(spec, [tenant]), _tmp_volume()]
    _mount_token(spec.tenant(tenant), container, volumes)
    selector = _selector(spec, AgentRole.CAMERA, tenant)
    labels = _labels(spec, "camera", **selector)
    return _stamp(
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": _metadata(spec, _camera_name(spec.name, tenant), labels),
            "spec": {
                "replicas": 1,
                "revisionHistoryLimit": 3,
                "strategy": {"type": "Recreate"},
                "selector": {"matchLabels": selector},
                "template": {
                    "metadata": {"labels": labels, "annotations": _pod_annotations()},
                    "spec": _pod_spec(spec, AgentRole.CAMERA, selector, [container], volumes),
                },
            },
        }
    )


def build_camera_service(
    probe: Mapping[str, Any], integration: Mapping[str, Any], tenant: str
) -> dict[str, Any] | None:
    """For integrations that pull (``camera.serve``): the Service in front of
    ``tenant``'s camera pod. The integration fetches
    ``http://<service>.<namespace>.svc:<port>/cameras/<tenant>/<camera>/snapshot.jpg``
    (or ``stream.mjpg``). None when cameras push."""
    spec = parse_probe(probe)
    spec.tenant(tenant)
    adapter, _ = _camera_adapter(integration)
    if "serve" not in adapter:
        return None
    port = int(adapter["serve"]["port"])
    selector = _selector(spec, AgentRole.CAMERA, tenant)
    name = _camera_name(spec.name, tenant)
    if not name[0].isalpha():  # Service names are DNS-1035 labels: a letter first
        name = _dns_label("cw", name)
    return _stamp(
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": _metadata(spec, name, _labels(spec, "camera", **selector)),
            "spec": {
                "type": "ClusterIP",
                "selector": selector,
                "ports": [
                    {"name": "camera-http", "port": port, "targetPort": "camera-http", "protocol": "TCP"}
                ],
            },
        }
    )


def build_viewer_deployment(
    probe: Mapping[str, Any],
    integration: Mapping[str, Any],
    tenant: str,
    profile: str,
    *,
    image: str,
    image_pull_policy: str = "IfNotPresent",
) -> dict[str, Any]:
    """The Deployment of ``tenant``'s hub viewers on network ``profile``."""
    spec = parse_probe(probe)
    spec.tenant(tenant)
    viewer_profile = spec.profile(profile)
    adapter, secret_env = _viewer_adapter(spec, integration)
    profile_json = json.dumps(viewer_profile.spec, sort_keys=True, separators=(",", ":"))
    env = [
        *_common_env(spec, AgentRole.VIEWER, tenant, adapter),
        _env("CANARYWATCH_TENANTS", ",".join(spec.tenant_ids)),
        _env("CANARYWATCH_NETWORK_PROFILE", profile_json),
        _env("CANARYWATCH_NETWORK_PROFILE_NAME", viewer_profile.name),
        _env("CANARYWATCH_NETWORK_SHAPER", viewer_profile.shaper),
        _env("CANARYWATCH_TRANSPORTS", ",".join(spec.transports)),
        _env("CANARYWATCH_FRESHNESS_SECONDS", _decimal(spec.freshness_seconds)),
        *_viewer_policy_env(integration),
        *secret_env,
    ]
    ports = [{"name": "metrics", "containerPort": METRICS_PORT, "protocol": "TCP"}]
    container = _agent_container(spec, AgentRole.VIEWER, image, image_pull_policy, env, ports)
    volumes = [_keyring_volume(spec, spec.tenant_ids), _tmp_volume()]
    _mount_token(spec.tenant(tenant), container, volumes)
    init_containers = _netem_init_containers(spec, viewer_profile, image, image_pull_policy)
    selector = _selector(spec, AgentRole.VIEWER, tenant, viewer_profile.name)
    labels = _labels(spec, "viewer", **selector)
    pod = _pod_spec(spec, AgentRole.VIEWER, selector, [container], volumes)
    if init_containers:
        pod["initContainers"] = init_containers
    return _stamp(
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": _metadata(spec, _viewer_name(spec.name, tenant, viewer_profile.name), labels),
            "spec": {
                "replicas": spec.viewers,
                "revisionHistoryLimit": 3,
                # Never fewer viewers than asked for while rolling: a gap in coverage is
                # exactly when a leak would go unseen.
                "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}},
                "selector": {"matchLabels": selector},
                "template": {"metadata": {"labels": labels, "annotations": _pod_annotations()}, "spec": pod},
            },
        }
    )


def build_probe_workloads(
    probe: Mapping[str, Any],
    integration: Mapping[str, Any],
    *,
    image: str,
    image_pull_policy: str = "IfNotPresent",
) -> list[dict[str, Any]]:
    """Everything the probe runs except its keyring Secrets, in creation order: RBAC,
    then per tenant its camera (and Service) and its viewers."""
    spec = parse_probe(probe)
    objects = build_agent_rbac(probe)
    for tenant in spec.tenant_ids:
        objects.append(
            build_camera_deployment(
                probe, integration, tenant, image=image, image_pull_policy=image_pull_policy
            )
        )
        service = build_camera_service(probe, integration, tenant)
        if service is not None:
            objects.append(service)
        for profile in spec.profiles:
            objects.append(
                build_viewer_deployment(
                    probe, integration, tenant, profile.name, image=image, image_pull_policy=image_pull_policy
                )
            )
    return objects


# -- pod pieces -------------------------------------------------------------------------


def _env(name: str, value: str) -> dict[str, Any]:
    return {"name": name, "value": value}


def _field_env(name: str, field_path: str) -> dict[str, Any]:
    return {"name": name, "valueFrom": {"fieldRef": {"fieldPath": field_path}}}


def _common_env(
    spec: ProbeSpec, role: AgentRole, tenant: str, adapter: Mapping[str, Any]
) -> list[dict[str, Any]]:
    env = [
        _env("CANARYWATCH_ROLE", str(role)),
        _field_env("CANARYWATCH_NAMESPACE", "metadata.namespace"),
        _field_env("CANARYWATCH_POD_NAME", "metadata.name"),
        _field_env("CANARYWATCH_NODE_NAME", "spec.nodeName"),
        _env("CANARYWATCH_INTEGRATION", spec.integration),
        _env("CANARYWATCH_PROBE", spec.name),
        _env("CANARYWATCH_TENANT", tenant),
        _env("CANARYWATCH_CAMERAS", str(spec.cameras)),
        _env("CANARYWATCH_FPS", _decimal(spec.fps)),
        _env("CANARYWATCH_KEYRING_DIR", KEYRING_DIR),
        _env("CANARYWATCH_ADAPTER", json.dumps(adapter, sort_keys=True, separators=(",", ":"))),
        _env("CANARYWATCH_METRICS_PORT", str(METRICS_PORT)),
    ]
    if spec.tenant(tenant).token is not None:
        env.append(_env("CANARYWATCH_TOKEN_FILE", TOKEN_FILE))
    return env


def _agent_container(
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


def _pod_annotations() -> dict[str, str]:
    return {
        "prometheus.io/scrape": "true",
        "prometheus.io/port": str(METRICS_PORT),
        "prometheus.io/path": "/metrics",
    }


def _pod_spec(
    spec: ProbeSpec,
    role: AgentRole,
    selector: Mapping[str, str],
    containers: list[dict[str, Any]],
    volumes: list[dict[str, Any]],
) -> dict[str, Any]:
    topology_key = _TOPOLOGY_KEYS[spec.spread_across]
    pod: dict[str, Any] = {
        "serviceAccountName": _service_account_name(spec.name, role),
        # Cameras never talk to the API server; viewers create LeakIncidents.
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


def _keyring_volume(spec: ProbeSpec, tenants: Iterable[str]) -> dict[str, Any]:
    return {
        "name": "keyring",
        "projected": {
            "defaultMode": 0o440,
            "sources": [
                {
                    "secret": {
                        "name": keyring_secret_name(spec.name, tenant),
                        "items": [{"key": KEYRING_SECRET_KEY, "path": f"{tenant}.json"}],
                    }
                }
                for tenant in tenants
            ],
        },
    }


def _tmp_volume() -> dict[str, Any]:
    return {"name": "tmp", "emptyDir": {"medium": "Memory", "sizeLimit": "16Mi"}}


def _mount_token(tenant: Tenant, container: dict[str, Any], volumes: list[dict[str, Any]]) -> None:
    if tenant.token is None:
        return
    secret, key = tenant.token
    # A file rather than an env var: TokenSource re-reads it, so a rotated Secret is
    # picked up without restarting the agent.
    volumes.append(
        {
            "name": "token",
            "secret": {"secretName": secret, "defaultMode": 0o440, "items": [{"key": key, "path": "token"}]},
        }
    )
    container["volumeMounts"].append({"name": "token", "mountPath": TOKEN_DIR, "readOnly": True})


def _netem_init_containers(
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


# -- adapters ---------------------------------------------------------------------------


class _SecretEnv:
    """Secret references of headersFrom, each exposed once as CANARYWATCH_SECRET_<n>."""

    def __init__(self) -> None:
        self._names: dict[tuple[str, str], str] = {}

    def variable(self, secret: str, key: str) -> str:
        return self._names.setdefault((secret, key), f"CANARYWATCH_SECRET_{len(self._names)}")

    def env(self) -> list[dict[str, Any]]:
        return [
            {"name": variable, "valueFrom": {"secretKeyRef": {"name": secret, "key": key}}}
            for (secret, key), variable in self._names.items()
        ]


def _integration_spec(integration: Mapping[str, Any]) -> Mapping[str, Any]:
    return _mapping(integration.get("spec"), "CameraIntegration spec")


def _request_template(raw: Mapping[str, Any], where: str, secrets: _SecretEnv, method: str) -> dict[str, Any]:
    template: dict[str, Any] = {
        "method": str(raw.get("method", method)),
        "url": _string(raw.get("url"), f"{where}.url"),
        "headers": {str(k): str(v) for k, v in _mapping(raw.get("headers", {}), f"{where}.headers").items()},
    }
    if raw.get("body") is not None:
        template["body"] = str(raw["body"])
    headers_from = {}
    for index, entry in enumerate(_sequence(raw.get("headersFrom", []), f"{where}.headersFrom")):
        item = _mapping(entry, f"{where}.headersFrom[{index}]")
        ref = _mapping(item.get("secretKeyRef"), f"{where}.headersFrom[{index}].secretKeyRef")
        variable = secrets.variable(
            _string(ref.get("name"), f"{where}.headersFrom[{index}].secretKeyRef.name"),
            _string(ref.get("key"), f"{where}.headersFrom[{index}].secretKeyRef.key"),
        )
        headers_from[_string(item.get("header"), f"{where}.headersFrom[{index}].header")] = {"env": variable}
    if headers_from:
        template["headersFrom"] = headers_from
    return template


def _camera_adapter(integration: Mapping[str, Any]) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    camera = _mapping(_integration_spec(integration).get("camera"), "CameraIntegration spec.camera")
    secrets = _SecretEnv()
    if camera.get("push") is not None:
        push = _mapping(camera["push"], "spec.camera.push")
        return {"push": _request_template(push, "spec.camera.push", secrets, "PUT")}, secrets.env()
    if camera.get("serve") is not None:
        serve = _mapping(camera["serve"], "spec.camera.serve")
        port = _int(serve.get("port", 8080), "spec.camera.serve.port", low=1)
        # In a pod the camera answers on every interface, behind its Service.
        return {"serve": {"host": "0.0.0.0", "port": port}}, []
    raise BuildError("CameraIntegration spec.camera", "needs push or serve")


def _viewer_adapter(
    spec: ProbeSpec, integration: Mapping[str, Any]
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The integration's viewer block for the probe's transports: exactly the endpoints
    they use, plus ``pollInterval`` (the standalone config's ``integration.viewer``)."""
    viewer = _mapping(_integration_spec(integration).get("viewer"), "CameraIntegration spec.viewer")
    secrets = _SecretEnv()
    adapter: dict[str, Any] = {}
    for index, transport in enumerate(spec.transports):
        endpoint = TRANSPORT_ENDPOINTS[transport]
        if viewer.get(endpoint) is None:
            raise BuildError(
                f"spec.transports[{index}]",
                f"transport {transport} needs viewer.{endpoint} in CameraIntegration {spec.integration!r}",
            )
        where = f"spec.viewer.{endpoint}"
        adapter[endpoint] = _request_template(_mapping(viewer[endpoint], where), where, secrets, "GET")
    adapter["pollInterval"] = _number(viewer.get("pollInterval", 0.5), "spec.viewer.pollInterval")
    return adapter, secrets.env()


def _viewer_policy_env(integration: Mapping[str, Any]) -> list[dict[str, Any]]:
    """``CANARYWATCH_POLICY``: the verdict rules of the integration's ``spec.policy``, so
    its viewers confirm (k of n frames) and report exactly the verdicts it treats as
    incidents. Only ``verdicts``: the mode and the kill cap decide the response, which is
    the operator's business, so changing them does not roll the viewers."""
    policy = _integration_spec(integration).get("policy")
    if policy is None:
        return []
    try:
        Policy.from_mapping(policy, where="spec.policy")
    except PolicyError as error:
        raise BuildError(error.field, f"{error.message} (CameraIntegration)") from None
    verdicts = policy.get("verdicts")
    if not verdicts:
        return []
    rules = json.dumps({"verdicts": verdicts}, sort_keys=True, separators=(",", ":"))
    return [_env("CANARYWATCH_POLICY", rules)]


# -- status -----------------------------------------------------------------------------


def build_probe_status(
    probe: Mapping[str, Any],
    *,
    deployments: Iterable[Mapping[str, Any]],
    keyring_tenants: Collection[str],
    now: datetime,
    verdict_counts: Mapping[str, int] | None = None,
    last_frame_time: datetime | None = None,
    problems: Sequence[str] = (),
    previous: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The CanaryProbe's ``status`` from what exists in the cluster.

    ``deployments`` are the live Deployments labelled with the probe (others and stale
    ones are ignored); ``keyring_tenants`` the tenants whose keyring Secret exists;
    ``verdict_counts`` the totals aggregated from the agents (None keeps the previous
    counts); ``problems`` what stops the probe from running as specified (a missing
    integration, a ``BuildError``'s message). ``previous`` is the current status:
    conditions keep their ``lastTransitionTime`` while their status holds, and
    ``lastFrameTime`` never moves backwards.
    """
    spec = parse_probe(probe)
    previous = previous or {}
    expected = expected_workload_names(spec)
    live = {d.get("metadata", {}).get("name"): d for d in deployments}
    ready = [name for name in expected if name in live and _deployment_ready(live[name])]
    waiting = [name for name in expected if name not in ready]
    cameras = {t: _camera_name(spec.name, t) for t in spec.tenant_ids}
    tenants_up = sum(1 for t in spec.tenant_ids if t in keyring_tenants and cameras[t] in live)
    generation = probe.get("metadata", {}).get("generation")

    status: dict[str, Any] = {
        "tenants": tenants_up,
        "workloads": {"desired": len(expected), "ready": len(ready)},
        "ready": f"{len(ready)}/{len(expected)}",
        "lastSummaryTime": _timestamp(now),
    }
    if isinstance(generation, int):
        status["observedGeneration"] = generation
    counts = _verdict_counts(verdict_counts) if verdict_counts is not None else previous.get("verdictCounts")
    if counts is not None:
        status["verdictCounts"] = dict(counts)
    last_frame = _latest(last_frame_time, previous.get("lastFrameTime"))
    if last_frame is not None:
        status["lastFrameTime"] = last_frame

    conditions = {c.get("type"): c for c in previous.get("conditions", []) if isinstance(c, Mapping)}
    if problems:
        degraded = ("True", "ConfigurationProblem", "; ".join(problems))
    else:
        degraded = ("False", "AsExpected", "the probe runs as specified")
    if problems:
        readiness = ("False", "ConfigurationProblem", "workloads cannot be built: see the Degraded condition")
    elif not waiting:
        readiness = ("True", "WorkloadsReady", f"all {len(expected)} workloads are ready")
    else:
        shown = ", ".join(waiting[:5]) + (f" and {len(waiting) - 5} more" if len(waiting) > 5 else "")
        readiness = ("False", "WorkloadsNotReady", f"{len(ready)}/{len(expected)} ready; waiting for {shown}")
    status["conditions"] = [
        _condition("Ready", *readiness, previous=conditions.get("Ready"), now=now, generation=generation),
        _condition(
            "Degraded", *degraded, previous=conditions.get("Degraded"), now=now, generation=generation
        ),
    ]
    return status


def _deployment_ready(deployment: Mapping[str, Any]) -> bool:
    """Rolled out and available, as ``kubectl rollout status`` judges it."""
    meta, spec, status = (deployment.get(k) or {} for k in ("metadata", "spec", "status"))
    wanted = spec.get("replicas", 1)
    return bool(
        status.get("observedGeneration", 0) >= meta.get("generation", 0)
        and status.get("updatedReplicas", 0) >= wanted
        and status.get("replicas", 0) <= status.get("updatedReplicas", 0)
        and status.get("availableReplicas", 0) >= wanted
    )


def _verdict_counts(counts: Mapping[str, int]) -> dict[str, int]:
    known = {v.value for v in Verdict}
    unknown = sorted(set(counts) - known)
    if unknown:
        raise ValueError(f"unknown verdicts in verdict_counts: {', '.join(unknown)}")
    return {verdict: int(counts[verdict]) for verdict in sorted(counts)}


def _condition(
    kind: str,
    status: str,
    reason: str,
    message: str,
    *,
    previous: Mapping[str, Any] | None,
    now: datetime,
    generation: object,
) -> dict[str, Any]:
    unchanged = (
        previous is not None and previous.get("status") == status and previous.get("lastTransitionTime")
    )
    condition: dict[str, Any] = {
        "type": kind,
        "status": status,
        "reason": reason,
        "message": message[:1024],
        "lastTransitionTime": previous["lastTransitionTime"] if unchanged and previous else _timestamp(now),
    }
    if isinstance(generation, int):
        condition["observedGeneration"] = generation
    return condition


def _timestamp(moment: datetime) -> str:
    if moment.tzinfo is None:
        raise ValueError("timestamps must be timezone-aware (use datetime.now(UTC))")
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _latest(new: datetime | None, old: object) -> str | None:
    candidates = [] if new is None else [_timestamp(new)]
    if isinstance(old, str):
        candidates.append(old)
    # RFC 3339 in UTC with a fixed width compares correctly as text.
    return max(candidates) if candidates else None


# -- small checks -----------------------------------------------------------------------


def _default(spec: Mapping[str, Any], key: str) -> Any:
    value = spec.get(key)
    return PROBE_DEFAULTS[key] if value is None else value


def _mapping(value: object, where: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise BuildError(where, f"expected a mapping, got {type(value).__name__}")
    return value


def _sequence(value: object, where: str) -> Sequence[Any]:
    if not isinstance(value, list | tuple):
        raise BuildError(where, f"expected a list, got {type(value).__name__}")
    return value


def _string(value: object, where: str) -> str:
    if not isinstance(value, str) or not value:
        raise BuildError(where, "expected a non-empty string")
    return value


def _int(value: object, where: str, *, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise BuildError(where, f"expected an integer >= {low}, got {value!r}")
    return value


def _number(value: object, where: str) -> float:
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not math.isfinite(value)
        or value <= 0
    ):
        raise BuildError(where, f"expected a positive number, got {value!r}")
    return float(value)


def _decimal(value: float) -> str:
    """2.0 -> "2", 0.5 -> "0.5": what a person would write in the spec."""
    return str(int(value)) if float(value).is_integer() else repr(float(value))
