"""A CameraIntegration or CanaryProbe in a namespace the operator does not watch is
reported (``controller/unwatched.py``), against the real API server: the gauge
``canarywatch_unwatched_objects{kind,namespace}`` and one warning per object naming the
setting to change; objects in watched namespaces are not counted; an account without the
cluster-wide ``list`` (the chart's ``rbac.reportUnwatched``) says so once and stops."""

from __future__ import annotations

import asyncio
import logging
import uuid
from typing import Any

import controlplane
import pytest
from kubernetes import client
from manifests import example
from test_crds import GROUP_VERSION, request
from test_operator import operator_crds  # noqa: F401  (the fixture)

from canarywatch.controller import permissions
from canarywatch.controller.kube import Kube
from canarywatch.controller.unwatched import report_unwatched
from canarywatch.metrics import Metrics

pytestmark = pytest.mark.usefixtures("operator_crds")


def _create(api: Any, namespace: str, obj: dict[str, Any], plural: str) -> None:
    body = {**obj, "metadata": {"name": obj["metadata"]["name"], "namespace": namespace}}
    request(api, "POST", f"/apis/{GROUP_VERSION}/namespaces/{namespace}/{plural}", body=body)


def _namespace(api: Any) -> str:
    name = f"cw-unwatched-{uuid.uuid4().hex[:8]}"
    client.CoreV1Api(api).create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))
    return name


def _snake(rules: Any) -> list[dict[str, Any]]:
    return [{"api_groups": r["apiGroups"], "resources": r["resources"], "verbs": r["verbs"]} for r in rules]


async def _until(check: Any, task: asyncio.Future[None], timeout: float = 60.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not check():
        if task.done():
            task.result()  # its exception, if any
            pytest.fail("report_unwatched returned")
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await asyncio.sleep(0.1)


async def test_objects_outside_the_watched_namespaces_are_reported(
    control_plane: controlplane.ControlPlane, caplog: pytest.LogCaptureFixture
) -> None:
    api = control_plane.api_client
    watched, elsewhere = _namespace(api), _namespace(api)
    _create(api, watched, example("CameraIntegration"), "cameraintegrations")
    _create(api, elsewhere, example("CameraIntegration"), "cameraintegrations")
    _create(api, elsewhere, example("CanaryProbe"), "canaryprobes")
    metrics = Metrics()
    kube = Kube(api)

    def gauge(kind: str, namespace: str) -> float | None:
        return metrics.sample("canarywatch_unwatched_objects", {"kind": kind, "namespace": namespace})

    caplog.set_level(logging.WARNING, logger="canarywatch.controller.unwatched")
    task = asyncio.ensure_future(report_unwatched(kube, metrics, [watched], interval=0.2))
    try:
        await _until(lambda: gauge("CanaryProbe", elsewhere) == 1, task)
        assert gauge("CameraIntegration", elsewhere) == 1
        assert gauge("CameraIntegration", watched) is None
        await asyncio.sleep(0.5)  # a few more rounds: still one warning per object
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    # The control plane is shared by the tier: other tests' namespaces are unwatched too.
    warnings = sorted(
        message
        for message in (r.getMessage() for r in caplog.records)
        if "IGNORED" in message and f" {elsewhere}/" in message
    )
    probe = example("CanaryProbe")["metadata"]["name"]
    integration = example("CameraIntegration")["metadata"]["name"]
    advice = (
        f"is not watched by this operator (it watches {watched}); add it to operator.watchNamespaces "
        "(CANARYWATCH_NAMESPACES), or install with rbac.clusterWide=true"
    )
    assert warnings == [
        f"CameraIntegration {elsewhere}/{integration} is IGNORED: namespace {elsewhere} {advice}",
        f"CanaryProbe {elsewhere}/{probe} is IGNORED: namespace {elsewhere} {advice}",
    ]


async def test_the_chart_rules_suffice_and_without_them_it_stops_once(
    control_plane: controlplane.ControlPlane, caplog: pytest.LogCaptureFixture
) -> None:
    api = control_plane.api_client
    home = _namespace(api)
    core, rbac = client.CoreV1Api(api), client.RbacAuthorizationV1Api(api)
    accounts = {}
    for account in ("granted", "denied"):
        core.create_namespaced_service_account(
            home, client.V1ServiceAccount(metadata=client.V1ObjectMeta(name=account))
        )
        token = core.create_namespaced_service_account_token(
            account, home, client.AuthenticationV1TokenRequest(spec=client.V1TokenRequestSpec(audiences=[]))
        )
        accounts[account] = control_plane.token_api_client(token.status.token)
    # What the chart's rbac.reportUnwatched binds: permissions.UNWATCHED_RULES, cluster-wide.
    role = f"cw-unwatched-{home}"
    rbac.create_cluster_role(
        client.V1ClusterRole(
            metadata=client.V1ObjectMeta(name=role),
            rules=[client.V1PolicyRule(**rule) for rule in _snake(permissions.UNWATCHED_RULES)],
        )
    )
    rbac.create_cluster_role_binding(
        client.V1ClusterRoleBinding(
            metadata=client.V1ObjectMeta(name=role),
            role_ref=client.V1RoleRef(api_group="rbac.authorization.k8s.io", kind="ClusterRole", name=role),
            subjects=[client.RbacV1Subject(kind="ServiceAccount", name="granted", namespace=home)],
        )
    )
    elsewhere = _namespace(api)
    _create(api, elsewhere, example("CanaryProbe"), "canaryprobes")

    granted = Metrics()
    task = asyncio.ensure_future(report_unwatched(Kube(accounts["granted"]), granted, [home], interval=0.2))
    try:
        labels = {"kind": "CanaryProbe", "namespace": elsewhere}
        # RBAC bindings take a moment to reach the authorizer's cache.
        await _until(lambda: granted.sample("canarywatch_unwatched_objects", labels) == 1, task)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)

    caplog.set_level(logging.WARNING, logger="canarywatch.controller.unwatched")
    denied = Metrics()
    await asyncio.wait_for(
        report_unwatched(Kube(accounts["denied"]), denied, [home], interval=0.2), timeout=60
    )
    [warning] = [r.getMessage() for r in caplog.records if "cannot list" in r.getMessage()]
    assert "rbac.reportUnwatched=true" in warning
