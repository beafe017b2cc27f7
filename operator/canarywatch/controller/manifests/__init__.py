"""The Kubernetes objects a CanaryProbe runs on, built as plain dicts (pure: no I/O).

The kopf handlers read a ``CanaryProbe`` and its ``CameraIntegration`` and call these
functions; what comes back is ready to create or patch. Same input, same output, to the
byte, so the handlers can compare hashes instead of diffing server-defaulted objects.
The spec is read through ``canarywatch.spec`` (the CRD's schema and defaults), the
agents' environment is ``canarywatch.api.AgentEnv``.

Per probe::

    Secret     <probe>-keyring    an item <tenant>.json per tenant: its signing key   (keyring)
    Deployment <probe>-camera     1 replica: every tenant's cameras in one process,   (camera)
                                  the namespace's default account, no token mounted
    Service    <probe>-camera     only when the integration pulls (camera.serve)
    Deployment <probe>-viewer     viewersPerProfile replicas: every tenant on every   (viewer)
                                  profile shaped in-process, in one process
    Deployment <probe>-viewer-<profile>   the same, for each profile with shaper: tc
                                  (netem shapes the whole pod: one profile per pod)
    PodDisruptionBudget <probe>-agents    at most N of its pods evicted at once   (agentpods)

Per namespace, shared by its probes (made once; no owner)::

    ServiceAccount, Role, RoleBinding  canarywatch-viewer: create LeakIncidents, nothing more  (rbac)

Keys: every pod mounts the items of the tenants it runs (``pods.keyring_volume``): the
camera pod signs as each tenant; a viewer needs every tenant's key, because telling
``cross_tenant`` (another tenant's valid signature) from ``forged`` needs the other
tenants' keys. Both find ``<tenant>.json`` files (the ``Keyring.to_json`` format) in
``AgentEnv.KEYRING_DIR`` and merge them. Each tenant keeps its own credentials inside
the process: its token (``TOKEN_DIR/<tenant>``) and its own HTTP sessions.

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
from canarywatch.controller.manifests.keyring import build_keyring_secret, keyring_data
from canarywatch.controller.manifests.names import (
    VIEWER_ACCOUNT,
    camera_name,
    config_hash,
    expected_workload_names,
    keyring_item,
    keyring_secret_name,
    viewer_name,
)
from canarywatch.controller.manifests.pods import DEFAULT_RESOURCES
from canarywatch.controller.manifests.probe import (
    KEYRING_DIR,
    METRICS_PORT,
    PROBE_DEFAULTS,
    TOKEN_DIR,
    BuildError,
    parse_probe,
)
from canarywatch.controller.manifests.rbac import build_viewer_rbac
from canarywatch.controller.manifests.status import build_probe_status
from canarywatch.controller.manifests.viewer import build_viewer_deployment
from canarywatch.controller.manifests.workloads import build_probe_workloads, maintenance_reason

__all__ = [
    "DEFAULT_OPTIONS",
    "DEFAULT_RESOURCES",
    "DISRUPTION_BUDGET_ANNOTATION",
    "KEYRING_DIR",
    "METRICS_PORT",
    "PROBE_DEFAULTS",
    "TOKEN_DIR",
    "VIEWER_ACCOUNT",
    "AgentPodOptions",
    "BuildError",
    "build_camera_deployment",
    "build_camera_service",
    "build_disruption_budget",
    "build_keyring_secret",
    "build_probe_status",
    "build_probe_workloads",
    "build_viewer_deployment",
    "build_viewer_rbac",
    "camera_name",
    "config_hash",
    "disruption_budget_names",
    "expected_workload_names",
    "keyring_data",
    "keyring_item",
    "keyring_secret_name",
    "maintenance_reason",
    "parse_probe",
    "viewer_name",
]
