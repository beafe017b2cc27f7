"""The repository's manifests as test input: the CRDs of ``crds/``, the examples of
``examples/``, and the example CameraIntegration and LeakIncident reshaped for one
test (shared by the cluster and kmock tiers)."""

from __future__ import annotations

import base64
import copy
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

import yaml

from canarywatch.agents.reporting import rfc3339
from canarywatch.controller.manifests import build_keyring_secret
from canarywatch.markers.payload import Payload, pack_signed, tenant_tag

__all__ = [
    "CRD_FILES",
    "EXAMPLES",
    "OBSERVED_TENANT",
    "REPO",
    "TEST_KEY",
    "canary_probe",
    "deployment",
    "documents",
    "example",
    "integration",
    "keyring_secret",
    "leak",
    "probe_name",
    "secrets_of",
]

REPO = Path(__file__).resolve().parents[2]
CRD_FILES = sorted((REPO / "crds").glob("*.yaml"))
# Kubernetes manifests only: examples/ also holds standalone configs (`canarywatch run`).
EXAMPLES = sorted(
    path
    for path in (REPO / "examples").glob("*.yaml")
    if all("apiVersion" in doc and "kind" in doc for doc in yaml.safe_load_all(path.read_text()) if doc)
)


class Webhook(Protocol):
    """Where a kill-switch webhook is sent: ``url("/v3/admin/kill")``."""

    def url(self, path: str) -> str: ...


def documents(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


def example(kind: str) -> dict[str, Any]:
    for path in EXAMPLES:
        for doc in documents(path):
            if doc["kind"] == kind:
                return doc
    raise LookupError(kind)


def secrets_of(kind: str) -> list[dict[str, Any]]:
    """The Secrets an example file ships next to its ``kind``."""
    path = next(
        p for p in (REPO / "examples").glob("*.yaml") if any(d.get("kind") == kind for d in documents(p))
    )
    return [d for d in documents(path) if d["kind"] == "Secret"]


def integration(name: str, webhook: Webhook | None = None, **spec: Any) -> dict[str, Any]:
    """examples/cameraintegration.yaml renamed, webhooks pointed at ``webhook`` (or
    dropped), ``spec`` keys replaced."""
    body = copy.deepcopy(example("CameraIntegration"))
    body["metadata"] = {"name": name}
    actions = []
    for action in body["spec"]["killSwitch"]["actions"]:
        if action["type"] == "webhook":
            if webhook is None:
                continue
            action["webhook"]["url"] = webhook.url("/v3/admin/kill")
            action["webhook"]["resume"]["url"] = webhook.url("/v3/admin/resume")
            action["webhook"]["timeout"] = 30
        if action["type"] == "scale":
            action["scale"]["name"] = f"{name}-ingest"
        actions.append(action)
    body["spec"]["killSwitch"]["actions"] = actions
    body["spec"]["resolveAfterCleanSeconds"] = 1
    body["spec"].update(spec)
    return body


#: The key the tests sign canaries with (``keyring_secret``, ``leak``): tenant acme-7's.
TEST_KEY = b"canarywatch-tests-acme-7-key-32b"
OBSERVED_TENANT = "acme-7"  # the tenant whose canary the example's viewer was shown


def probe_name(integration_name: str) -> str:
    return f"{integration_name}-canaries"


def canary_probe(integration_name: str) -> dict[str, Any]:
    """examples/canaryprobe.yaml watching ``integration_name``: the probe ``leak``
    names, whose viewers alone may report leaks of that integration."""
    body = copy.deepcopy(example("CanaryProbe"))
    body["metadata"] = {"name": probe_name(integration_name)}
    body["spec"]["integrationRef"]["name"] = integration_name
    return body


def keyring_secret(
    probe: dict[str, Any], key: bytes = TEST_KEY, tenant: str = OBSERVED_TENANT
) -> dict[str, Any]:
    """The keyring Secret of ``probe`` (as read back: it has a uid) holding ``tenant``'s
    ``key``, owned by it, as the operator would have made it; ``key`` is what ``leak``
    signs with."""
    return build_keyring_secret(probe, {tenant: key})


def leak(
    name: str, integration_name: str, *, verdict: str = "cross_tenant", key: bytes | None = TEST_KEY
) -> dict[str, Any]:
    """examples/leakincident.yaml for ``integration_name``, reported by its probe
    (``canary_probe``), received just now; a cross_tenant frame signed with ``key``
    (None: no signed payload, as a forger without the keyring would send it)."""
    body = copy.deepcopy(example("LeakIncident"))
    body["metadata"] = {"name": name}
    body["spec"]["integrationRef"]["name"] = integration_name
    body["spec"]["probeRef"]["name"] = probe_name(integration_name)
    now = datetime.now(UTC)
    body["spec"]["times"] = {
        "frameReceived": now.isoformat().replace("+00:00", "Z"),
        "recorded": now.isoformat().replace("+00:00", "Z"),
    }
    observed = body["spec"]["observed"]
    observed.pop("signedPayload", None)
    if verdict != "cross_tenant":
        body["spec"]["observed"] = {"verdict": verdict}
        body["spec"]["evidence"]["kept"] = "hash-and-pixelated-thumbnail"
    elif key is not None:
        payload = Payload(
            tenant_tag(observed["tenant"]), observed["camera"], observed["seq"], now.timestamp()
        )
        observed["time"] = rfc3339(payload.time)
        observed["signedPayload"] = base64.b64encode(pack_signed(payload, key)).decode()
    return body


def deployment(name: str, replicas: int = 3) -> dict[str, Any]:
    """A plain Deployment: the workload a scale action switches off (``<integration>-ingest``)."""
    labels = {"app": name}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {"containers": [{"name": "relay", "image": "relay:1"}]},
            },
        },
    }
