"""A viewer pod reports a leak as it does in a cluster: its ServiceAccount's token and the
cluster's CA in a service-account folder, the API server in ``KUBERNETES_SERVICE_*``,
and no Kubernetes client library (``agents.kubeapi``), against a real API server."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import controlplane
import pytest
import yaml
from manifests import REPO
from test_crds import apply, apply_example_probe, assert_contains, crds, example, get  # noqa: F401 (crds)

from canarywatch.controller import manifests

pytestmark = [pytest.mark.cluster, pytest.mark.usefixtures("crds")]

# What the viewer does with its creator, in a fresh interpreter: create the incident
# (the RoleBinding takes a moment: 403 until then), create it again (a lost answer's
# retry), send an invalid one; then say whether the client library was loaded.
_REPORT = """
import json, sys, time
from pathlib import Path
from canarywatch.agents.kubeapi import ApiStatusError
from canarywatch.agents.viewer import ReportRejected, kubernetes_creator

environ, namespace, account, incident, invalid = sys.argv[1:]
create = kubernetes_creator(json.loads(environ), namespace, service_account_dir=Path(account))
deadline = time.monotonic() + 30
while True:
    try:
        create(json.loads(incident))
        break
    except ApiStatusError as error:
        if error.status != 403 or time.monotonic() > deadline:
            raise
        time.sleep(0.3)
create(json.loads(incident))
try:
    create(json.loads(invalid))
    rejected = None
except ReportRejected as error:
    rejected = str(error)
print(json.dumps({"rejected": rejected, "client library": "kubernetes" in sys.modules}))
"""


def _viewer_token(api: Any, namespace: str) -> str:
    from kubernetes import client

    request = client.AuthenticationV1TokenRequest(
        spec=client.V1TokenRequestSpec(audiences=[], expiration_seconds=600)
    )
    core = client.CoreV1Api(api)
    created = core.create_namespaced_service_account_token(manifests.VIEWER_ACCOUNT, namespace, request)
    return str(created.status.token)


def test_a_viewer_pod_creates_its_leak_incident_with_its_service_account_alone(
    control_plane: controlplane.ControlPlane, namespace: str, tmp_path: Path
) -> None:
    api = control_plane.api_client
    probe = apply_example_probe(api, namespace)
    owner = (probe["metadata"]["name"], probe["metadata"]["uid"])
    for obj in manifests.build_viewer_rbac(namespace, [owner]):  # the viewers' account
        apply(api, obj, namespace)
    account = tmp_path / "serviceaccount"
    account.mkdir()
    (account / "token").write_text(_viewer_token(api, namespace))
    assert control_plane.pki is not None
    shutil.copyfile(control_plane.pki.ca_cert, account / "ca.crt")
    server = urlsplit(control_plane.server)
    environ = {"KUBERNETES_SERVICE_HOST": str(server.hostname), "KUBERNETES_SERVICE_PORT": str(server.port)}
    incident = example("LeakIncident")
    invalid = yaml.safe_load((REPO / "examples/invalid/leak-ok-verdict.yaml").read_text())
    documents = [json.dumps(incident), json.dumps(invalid)]

    run = subprocess.run(
        [sys.executable, "-c", _REPORT, json.dumps(environ), namespace, str(account), *documents],
        check=False,
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert run.returncode == 0, run.stderr
    outcome = json.loads(run.stdout)
    assert outcome["client library"] is False
    assert outcome["rejected"] is not None and "HTTP 422" in outcome["rejected"], outcome
    created = get(api, "LeakIncident", incident["metadata"]["name"], namespace)
    assert_contains(created["spec"], incident["spec"])
