"""The vocabulary canarywatch speaks to Kubernetes and to its own pods: the API group and
kinds, label and annotation keys, the agents' roles and environment variables, the
probe's transport names and the integration endpoints they use, and the paths a frame
can come through.

One module so a name is written once (crate-operator's ``constants.py``); it imports
nothing, so pure modules, agents and the operator can all use it.
"""

from __future__ import annotations

import enum
import hashlib
from collections.abc import Mapping
from typing import Final

__all__ = [
    "AGENT_ENV_PREFIX",
    "API_GROUP",
    "API_VERSION",
    "CONFIG_HASH_ANNOTATION",
    "HUB_PROTOCOLS",
    "INCIDENT_ID_ANNOTATION",
    "KILL_SWITCH_OWNER_ANNOTATION",
    "KIND_INCIDENT",
    "KIND_INTEGRATION",
    "KIND_PROBE",
    "LABEL_INTEGRATION",
    "LABEL_KILL_SWITCH_ACTION",
    "LABEL_NETWORK_PROFILE",
    "LABEL_PROBE",
    "LABEL_ROLE",
    "LABEL_TENANT",
    "LABEL_VERDICT",
    "MANUAL_INCIDENT",
    "PATHS",
    "PLURAL_INCIDENTS",
    "PLURAL_INTEGRATIONS",
    "PLURAL_PROBES",
    "RESUME_ANNOTATION",
    "TENANT_ID_MAX_LENGTH",
    "TENANT_ID_PATTERN",
    "TRANSPORT_ENDPOINTS",
    "VERSION",
    "AgentEnv",
    "AgentRole",
    "label_value",
]

API_GROUP: Final = "canarywatch.io"
VERSION: Final = "v1alpha1"
API_VERSION: Final = f"{API_GROUP}/{VERSION}"

#: A synthetic tenant's id, everywhere it is read (the CanaryProbe CRD's
#: ``tenants[].id``, the standalone file, a keyring): 1-63 letters, digits, '.', '_' or
#: '-', starting and ending with a letter or digit (it becomes a label value). A unit
#: test keeps the CRD's ``pattern`` and ``maxLength`` equal to these.
TENANT_ID_PATTERN: Final = "^[A-Za-z0-9]([A-Za-z0-9._-]*[A-Za-z0-9])?$"
TENANT_ID_MAX_LENGTH: Final = 63

KIND_INTEGRATION: Final = "CameraIntegration"
KIND_PROBE: Final = "CanaryProbe"
KIND_INCIDENT: Final = "LeakIncident"
PLURAL_INTEGRATIONS: Final = "cameraintegrations"
PLURAL_PROBES: Final = "canaryprobes"
PLURAL_INCIDENTS: Final = "leakincidents"

LABEL_PROBE: Final = f"{API_GROUP}/probe"
LABEL_INTEGRATION: Final = f"{API_GROUP}/integration"
LABEL_TENANT: Final = f"{API_GROUP}/tenant"
LABEL_ROLE: Final = f"{API_GROUP}/role"
LABEL_NETWORK_PROFILE: Final = f"{API_GROUP}/network-profile"
LABEL_VERDICT: Final = f"{API_GROUP}/verdict"
#: On objects a kill-switch action created (a NetworkPolicy): which action made it.
LABEL_KILL_SWITCH_ACTION: Final = f"{API_GROUP}/kill-switch-action"

#: On a built object and its pod template: the hash of everything the builder produced.
CONFIG_HASH_ANNOTATION: Final = f"{API_GROUP}/config-hash"
#: On a LeakIncident: the viewer's own id of the incident (the monitor's record id).
INCIDENT_ID_ANNOTATION: Final = f"{API_GROUP}/viewer-incident"
#: On an object a kill switch changed: the integration whose kill switch owns the change.
KILL_SWITCH_OWNER_ANNOTATION: Final = f"{API_GROUP}/kill-switch-of"
#: On a CameraIntegration: resume the kill switch, which must hold for the incident this
#: names (``status.killSwitch.incident``). The latch lives in status: the user-owned
#: ``spec.suspended`` only switches off by hand, and back on only what it switched off.
#: Not under ``canarywatch.io/``: kopf keeps its own state there and leaves annotations
#: with that prefix out of the diffs it triggers handlers on.
RESUME_ANNOTATION: Final = f"kill-switch.{API_GROUP}/resume"
#: ``status.killSwitch.incident`` of a switch-off by hand (``spec.suspended: true``).
MANUAL_INCIDENT: Final = "manual"


class AgentRole(enum.StrEnum):
    """What an agent pod runs: ``canarywatch camera`` or ``canarywatch viewer``."""

    CAMERA = "camera"
    VIEWER = "viewer"


AGENT_ENV_PREFIX: Final = "CANARYWATCH_"


class AgentEnv(enum.StrEnum):
    """The agents' environment: the builders set it (``controller.manifests``), the
    agents read it (``agents.env``). A member is its variable's name.

    Set by the builders in every agent container::

        ROLE                      camera | viewer
        NAMESPACE, POD_NAME, NODE_NAME   (downward API)
        INTEGRATION               the CameraIntegration's name
        PROBE                     the CanaryProbe's name
        TENANTS                   every tenant of the probe, comma-separated: the camera
                                  pod runs all their cameras, the viewer pod watches as
                                  each of them (and asks for the others' cameras: authz)
        CAMERAS                   cameras per tenant (camera ids 0..N-1)
        FPS                       frames per second the cameras publish
        KEYRING_DIR               directory of <tenant>.json keyrings
        TOKEN_DIR                 directory of one file per tenant with a token ({token}),
                                  named after the tenant; absent when no tenant has a
                                  tokenSecretRef
        ADAPTER                   JSON: the integration's endpoints for this role in the
                                  standalone config's shape: integration.camera ({push} or
                                  {serve}) or integration.viewer (the endpoints of the
                                  probe's transports, pollInterval). Templates may carry
                                  headersFrom: {header: {"env": NAME}} (resolve with
                                  TokenSource.from_value, add to headers)
        SECRET_<n>                Secret values those headersFrom name (``secret_variable``)
        METRICS_PORT              port of /metrics and /healthz (readiness, liveness)
      camera only:
        FRAME_WIDTH, FRAME_HEIGHT
      viewer only:
        NETWORK_PROFILES          JSON object: the profile's name in the probe (labels,
                                  incidents) -> its NetworkProfile.from_spec ("poor" or
                                  {name, latency, …}); every profile runs in this process
        NETWORK_SHAPER            application | tc. With tc (a pod of one profile) an init
                                  container has already imposed the profile with netem; the
                                  viewer applies only what netem cannot (stalls)
        TRANSPORTS                comma-separated: snapshot, mjpeg, events, authz, hls, llhls, hub, rtsp, mp4
        FRESHNESS_SECONDS         the stale bound
        FRESHNESS_BY_PATH         optional JSON {path: seconds}: bounds of paths that differ
        POLICY                    JSON: the integration's spec.policy verdict rules (absent:
                                  built-in)

    Optional, read by the agents with defaults a pod wants (see ``agents.env``):
    METRICS_HOST, INCIDENT_QUIET_SECONDS, INCIDENT_REPEAT_SECONDS, SUMMARY_SECONDS,
    LOG_LEVEL.
    """

    ROLE = "CANARYWATCH_ROLE"
    NAMESPACE = "CANARYWATCH_NAMESPACE"
    POD_NAME = "CANARYWATCH_POD_NAME"
    NODE_NAME = "CANARYWATCH_NODE_NAME"
    INTEGRATION = "CANARYWATCH_INTEGRATION"
    PROBE = "CANARYWATCH_PROBE"
    CAMERAS = "CANARYWATCH_CAMERAS"
    FPS = "CANARYWATCH_FPS"
    KEYRING_DIR = "CANARYWATCH_KEYRING_DIR"
    TOKEN_DIR = "CANARYWATCH_TOKEN_DIR"
    ADAPTER = "CANARYWATCH_ADAPTER"
    METRICS_PORT = "CANARYWATCH_METRICS_PORT"
    FRAME_WIDTH = "CANARYWATCH_FRAME_WIDTH"
    FRAME_HEIGHT = "CANARYWATCH_FRAME_HEIGHT"
    TENANTS = "CANARYWATCH_TENANTS"
    NETWORK_PROFILES = "CANARYWATCH_NETWORK_PROFILES"
    NETWORK_SHAPER = "CANARYWATCH_NETWORK_SHAPER"
    TRANSPORTS = "CANARYWATCH_TRANSPORTS"
    FRESHNESS_SECONDS = "CANARYWATCH_FRESHNESS_SECONDS"
    FRESHNESS_BY_PATH = "CANARYWATCH_FRESHNESS_BY_PATH"
    POLICY = "CANARYWATCH_POLICY"
    METRICS_HOST = "CANARYWATCH_METRICS_HOST"
    INCIDENT_QUIET_SECONDS = "CANARYWATCH_INCIDENT_QUIET_SECONDS"
    INCIDENT_REPEAT_SECONDS = "CANARYWATCH_INCIDENT_REPEAT_SECONDS"
    SUMMARY_SECONDS = "CANARYWATCH_SUMMARY_SECONDS"
    LOG_LEVEL = "CANARYWATCH_LOG_LEVEL"

    @staticmethod
    def secret_variable(index: int) -> str:
        """The variable of the ``index``-th Secret value a ``headersFrom`` names."""
        return f"{AGENT_ENV_PREFIX}SECRET_{index}"


#: A CanaryProbe's ``spec.transports`` entry -> the CameraIntegration viewer endpoint it
#: fetches through (``spec.adapter.viewer.<endpoint>``; the standalone config's
#: ``integration.viewer.<endpoint>``).
TRANSPORT_ENDPOINTS: Final[Mapping[str, str]] = {
    "snapshot": "snapshot",
    "mjpeg": "mjpeg",
    "events": "events",
    "authz": "authzProbe",
    "hls": "hls",
    "hub": "hub",
    "rtsp": "rtsp",
    "llhls": "llhls",
    "mp4": "mp4",
    "whep": "whep",
}

#: The integration path a frame came through (LeakIncident ``spec.viewer.path``): the
#: ``events`` transport yields ``thumbnail`` frames, ``authz`` yields ``probe`` frames;
#: the video transports' paths are their names.
PATHS: Final = ("snapshot", "mjpeg", "thumbnail", "probe", "hls", "hub", "rtsp", "llhls", "mp4", "whep")

#: The paths that carry video (decoded with PyAV, sampled), not images.
VIDEO_PATHS: Final = ("hls", "rtsp", "llhls", "mp4", "whep")

#: The viewer endpoints that watch a tenant's own cameras (at least one is needed;
#: ``authzProbe`` only checks that the others' are refused).
WATCHED_ENDPOINTS: Final = ("snapshot", "mjpeg", "events", *VIDEO_PATHS, "hub")

#: A smart display's way in (``viewer.hub``): the smart-home protocol it speaks to the
#: integration's fulfillment before watching the stream it is handed.
HUB_PROTOCOLS: Final = ("google", "alexa")

#: URL schemes per viewer endpoint, where they are not http(s).
_ENDPOINT_SCHEMES: Final[Mapping[str, tuple[str, ...]]] = {
    "rtsp": ("rtsp", "rtsps"),
    # probes RTSP paths too (viewer.transports.authz)
    "authzProbe": ("http", "https", "rtsp", "rtsps"),
}


def endpoint_schemes(endpoint: str) -> tuple[str, ...]:
    """The URL schemes viewer endpoint ``endpoint`` accepts."""
    return _ENDPOINT_SCHEMES.get(endpoint, ("http", "https"))


_MAX_LABEL_VALUE = 63


def label_value(value: str) -> str:
    """``value`` as a label value (at most 63 characters), hashed when too long."""
    if len(value) <= _MAX_LABEL_VALUE:
        return value
    suffix = hashlib.sha256(value.encode()).hexdigest()[:8]
    return f"{value[: _MAX_LABEL_VALUE - len(suffix) - 1].rstrip('-._')}-{suffix}"
