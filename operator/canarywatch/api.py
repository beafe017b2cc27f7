"""The vocabulary canarywatch speaks to Kubernetes and to its own pods: the API group and
kinds, label and annotation keys, the probe's transport names and the integration
endpoints they use, and the paths a frame can come through.

One module so a name is written once (crate-operator's ``constants.py``); it imports
nothing, so pure modules, agents and the operator can all use it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Final

__all__ = [
    "API_GROUP",
    "API_VERSION",
    "CONFIG_HASH_ANNOTATION",
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
    "PATHS",
    "PLURAL_INCIDENTS",
    "PLURAL_INTEGRATIONS",
    "PLURAL_PROBES",
    "TRANSPORT_ENDPOINTS",
    "VERSION",
    "label_value",
]

API_GROUP: Final = "canarywatch.io"
VERSION: Final = "v1alpha1"
API_VERSION: Final = f"{API_GROUP}/{VERSION}"

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

#: A CanaryProbe's ``spec.transports`` entry -> the CameraIntegration viewer endpoint it
#: fetches through (``spec.adapter.viewer.<endpoint>``; the standalone config's
#: ``integration.viewer.<endpoint>``).
TRANSPORT_ENDPOINTS: Final[Mapping[str, str]] = {
    "snapshot": "snapshot",
    "mjpeg": "mjpeg",
    "events": "events",
    "authz": "authzProbe",
}

#: The integration path a frame came through (LeakIncident ``spec.viewer.path``): the
#: ``events`` transport yields ``thumbnail`` frames, ``authz`` yields ``probe`` frames.
PATHS: Final = ("snapshot", "mjpeg", "thumbnail", "probe")

_MAX_LABEL_VALUE = 63


def label_value(value: str) -> str:
    """``value`` as a label value (at most 63 characters), hashed when too long."""
    if len(value) <= _MAX_LABEL_VALUE:
        return value
    suffix = hashlib.sha256(value.encode()).hexdigest()[:8]
    return f"{value[: _MAX_LABEL_VALUE - len(suffix) - 1].rstrip('-._')}-{suffix}"
