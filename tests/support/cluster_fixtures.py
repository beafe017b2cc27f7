"""The real control plane shared by the cluster and e2e tiers: etcd + kube-apiserver +
kube-controller-manager, started once per pytest session on first use.

The fixtures are imported by ``tests/conftest.py``, so every tier sees one definition and
a full run starts one control plane (the chart tier starts its own, without the
controller manager, so its Helm releases cannot disturb the operator tests).

The binaries come from ``hack/build-tools.sh`` (``make tools``) in
``$CANARYWATCH_TOOLS_DIR/bin`` (default ``<repo>/.cache/tools/bin``).  When they are
missing the tests are skipped on a developer machine, and fail under CI (``CI`` set) or
with ``CANARYWATCH_REQUIRE_CLUSTER=1``, so CI can never go green without them.

``CANARYWATCH_CONTROLLER_MANAGER=0`` starts the control plane without the controller
manager (faster; no Deployment -> ReplicaSet, no garbage collection).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from typing import Any

import controlplane
import pytest
from availability import unavailable

_started: list[controlplane.ControlPlane] = []


def start_control_plane(*, controller_manager: bool) -> controlplane.ControlPlane:
    """A started control plane; without the pinned binaries the test is skipped on a
    developer machine and fails under CI (``availability.unavailable``)."""
    plane = controlplane.ControlPlane(controller_manager=controller_manager)
    try:
        plane.start()
    except controlplane.ToolsMissingError as err:
        plane.stop()
        unavailable(str(err))
    return plane


@pytest.fixture(scope="session")
def control_plane() -> Iterator[controlplane.ControlPlane]:
    """The session's control plane: ``.kubeconfig`` (path), ``.api_client`` (admin),
    ``.token_api_client(token)``, ``.write_kubeconfig(path, user=, token=)``."""
    with_kcm = os.environ.get("CANARYWATCH_CONTROLLER_MANAGER", "1") not in ("0", "false")
    plane = start_control_plane(controller_manager=with_kcm)
    _started.append(plane)
    try:
        yield plane
    finally:
        plane.stop()


@pytest.fixture
def namespace(control_plane: controlplane.ControlPlane) -> Iterator[str]:
    """A fresh namespace with a random name, deleted afterwards."""
    from kubernetes import client
    from kubernetes.client.exceptions import ApiException

    core = client.CoreV1Api(control_plane.api_client)
    name = f"cw-test-{uuid.uuid4().hex[:10]}"
    core.create_namespace(
        client.V1Namespace(metadata=client.V1ObjectMeta(name=name, labels={"canarywatch.test": "true"}))
    )
    try:
        yield name
    finally:
        try:
            core.delete_namespace(name)
        except ApiException as err:
            if err.status != 404:
                raise


def pytest_terminal_summary(terminalreporter: Any) -> None:
    for plane in _started:
        figures = ", ".join(f"{k} {v:.2f}s" for k, v in plane.timings.items())
        versions = ", ".join(
            f"{tool} {controlplane.tool_version(tool)}"
            for tool in ("etcd", "kube-apiserver", "kube-controller-manager")
        )
        terminalreporter.write_line(f"control plane ({versions}) started: {figures}")
