"""The Kubernetes objects a CanaryProbe runs on, built as plain dicts (pure: no I/O).

The kopf handlers read a ``CanaryProbe`` and its ``CameraIntegration`` and call these
functions; what comes back is ready to create or patch. Same input, same output, to the
byte, so the handlers can compare hashes instead of diffing server-defaulted objects.
The spec is read through ``canarywatch.spec`` (the CRD's schema and defaults), the
agents' environment is ``canarywatch.api.AgentEnv``.

Per probe::

    ServiceAccount <probe>-camera        no API access, token not mounted       (rbac)
    ServiceAccount <probe>-viewer        + Role/RoleBinding: create LeakIncidents, nothing more
    PodDisruptionBudget <probe>-camera, <probe>-viewer   at most N of each evicted at once (agentpods)
    per tenant:
      Secret     <probe>-keyring-<tenant>        the tenant's signing key (immutable)  (keyring)
      Deployment <probe>-camera-<tenant>         1 replica, all the tenant's cameras   (camera)
      Service    <probe>-camera-<tenant>         only when the integration pulls (camera.serve)
      per network profile:
        Deployment <probe>-viewer-<tenant>-<profile>   viewersPerProfile replicas     (viewer)

Keys: a camera mounts only its own tenant's keyring; a viewer mounts every tenant's of
the probe, because telling ``cross_tenant`` (another tenant's valid signature) from
``forged`` needs the other tenants' keys. Both find ``<tenant>.json`` files (the
``Keyring.to_json`` format) in ``AgentEnv.KEYRING_DIR`` and merge them.

Modules: ``probe`` (reading the spec, paths, ``BuildError``), ``names`` (names, labels,
owner references, config hashes), ``pods`` (agent containers, volumes, security,
scheduling), ``adapters`` (the integration's endpoints for the agents), ``keyring``,
``rbac``, ``camera``, ``viewer``, ``agentpods`` (install-wide pod options, the
PodDisruptionBudgets), ``workloads`` (all of a probe's), ``status``.
"""

from canarywatch.controller.manifests.agentpods import (
    DEFAULT_OPTIONS,
    DISRUPTION_BUDGET_ANNOTATION,
    AgentPodOptions,
    build_disruption_budget,
    disruption_budget_names,
)
from canarywatch.controller.manifests.camera import build_camera_deployment, build_camera_service
from canarywatch.controller.manifests.keyring import build_keyring_secret
from canarywatch.controller.manifests.names import config_hash, expected_workload_names, keyring_secret_name
from canarywatch.controller.manifests.pods import DEFAULT_RESOURCES
from canarywatch.controller.manifests.probe import (
    KEYRING_DIR,
    KEYRING_SECRET_KEY,
    METRICS_PORT,
    PROBE_DEFAULTS,
    TOKEN_FILE,
    BuildError,
    parse_probe,
)
from canarywatch.controller.manifests.rbac import build_agent_rbac
from canarywatch.controller.manifests.status import build_probe_status
from canarywatch.controller.manifests.viewer import build_viewer_deployment
from canarywatch.controller.manifests.workloads import build_probe_workloads, maintenance_reason

__all__ = [
    "DEFAULT_OPTIONS",
    "DEFAULT_RESOURCES",
    "DISRUPTION_BUDGET_ANNOTATION",
    "KEYRING_DIR",
    "KEYRING_SECRET_KEY",
    "METRICS_PORT",
    "PROBE_DEFAULTS",
    "TOKEN_FILE",
    "AgentPodOptions",
    "BuildError",
    "build_agent_rbac",
    "build_camera_deployment",
    "build_camera_service",
    "build_disruption_budget",
    "build_keyring_secret",
    "build_probe_status",
    "build_probe_workloads",
    "build_viewer_deployment",
    "config_hash",
    "disruption_budget_names",
    "expected_workload_names",
    "keyring_secret_name",
    "maintenance_reason",
    "parse_probe",
]
