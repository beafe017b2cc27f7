"""A probe whose canary camera is down, against a real API server: the operator reads it
from the camera Deployments it watches (their status, as the Deployment controller would
write it), says so in the probe's CameraDown condition, a warning Event and
``canarywatch_camera_up``, and records a stale LeakIncident of that tenant without
paging, though the integration's policy pages for stale frames."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import controlplane
import pytest
from cluster_fixtures import start_control_plane
from manifests import OBSERVED_TENANT, canary_probe, integration, leak
from polling import eventually
from test_operator import (  # noqa: F401  (fixtures)
    Api,
    Operator,
    api,
    loop,
    operator_crds,
    pagerduty,
    settled,
    start_operator,
    target,
    trusted_probe,
)

from canarywatch.api import LABEL_ROLE, LABEL_TENANT
from canarywatch.controller.kube import CANARY_PROBES, DEPLOYMENTS
from canarywatch.incidents.receiver import EventsReceiver

pytestmark = [pytest.mark.cluster, pytest.mark.usefixtures("operator_crds")]


@pytest.fixture(scope="module")
def control_plane() -> Iterator[controlplane.ControlPlane]:
    """This module's own API server, without a controller manager: the test writes the
    camera Deployments' status itself (the Deployment controller would overwrite it)."""
    plane = start_control_plane(controller_manager=False)
    try:
        yield plane
    finally:
        plane.stop()


def camera_down(cluster: Api, probe: str) -> dict[str, Any] | None:
    conditions = cluster.status(CANARY_PROBES, probe).get("conditions") or []
    return next((c for c in conditions if c["type"] == "CameraDown"), None)


def stale_leak(name: str, integration_name: str, key: bytes) -> dict[str, Any]:
    """The viewer of tenant acme-7 shown its own camera's frame, too old (signed, so trusted)."""
    body = leak(name, integration_name, key=key)
    body["spec"]["viewer"]["tenant"] = OBSERVED_TENANT
    body["spec"]["observed"]["verdict"] = "stale"
    body["spec"]["observed"]["reason"] = "frame is 31.0s old (bound 10s)"
    body["spec"]["evidence"]["kept"] = "hash-and-pixelated-thumbnail"
    return body


def test_a_camera_that_is_down_is_shown_and_its_stale_frames_do_not_page(
    api: Api,  # noqa: F811
    start_operator: Callable[..., Operator],  # noqa: F811
    pagerduty: EventsReceiver,  # noqa: F811
) -> None:
    target(api, "cams-ingest")
    key = trusted_probe(api, "cams")
    # The example's policy makes stale frames an incident that pages.
    api.apply(integration("cams"))
    operator = start_operator()
    probe = canary_probe("cams")["metadata"]["name"]

    def cameras() -> list[dict[str, Any]]:
        return [
            d
            for d in api.list(DEPLOYMENTS)
            if d["metadata"]["name"].startswith(f"{probe}-")
            and d["metadata"]["labels"].get(LABEL_ROLE) == "camera"
        ]

    eventually(lambda: len(cameras()) > 0, what="the probe's camera Deployments")

    def all_down() -> dict[str, Any] | None:
        """The condition once it names every camera Deployment (each has 0/1 available)."""
        condition = camera_down(api, probe)
        if condition is None or condition["status"] != "True":
            return None
        named = [f"Deployment {d['metadata']['name']} has 0/1 pods available" for d in cameras()]
        return condition if all(n in condition["message"] for n in named) else None

    # Nothing runs here: no camera Deployment has a pod available.
    down = eventually(all_down, what="CameraDown True, naming every camera Deployment")
    assert down["reason"] == "CameraUnavailable"
    labels = {"namespace": api.namespace, "integration": "cams", "probe": probe}
    tenants = {d["metadata"]["labels"].get(LABEL_TENANT) for d in cameras()}
    carried = [OBSERVED_TENANT, "bravo-2"] if None in tenants else sorted(tenants)
    for tenant in carried:
        assert operator.metric("canarywatch_camera_up", labels | {"tenant": tenant}) == 0
    eventually(lambda: "CameraDown" in api.events(probe), what="the CameraDown warning Event")

    # A stale frame of that tenant is what a camera that is down looks like: on record, no page.
    api.create(stale_leak("cams-stale-1", "cams", key))
    status = eventually(lambda: settled(api, "cams-stale-1"), what="the stale incident's decision")
    assert status["decision"].startswith(f"camera {probe}-"), status["decision"]
    assert ": recorded only; the policy would have said: " in status["decision"]
    assert status["state"] == "Resolved"
    assert status["paged"]["result"] == "Skipped"
    assert status["shutdown"]["done"] is False
    assert api.replicas("cams-ingest") == 3
    assert pagerduty.events == []

    # The cameras come up (as the Deployment controller reports a ready pod): the condition
    # and the gauge follow.
    for deployment in cameras():
        api.patch(
            DEPLOYMENTS,
            deployment["metadata"]["name"],
            {
                "status": {
                    "observedGeneration": deployment["metadata"]["generation"],
                    "replicas": 1,
                    "updatedReplicas": 1,
                    "readyReplicas": 1,
                    "availableReplicas": 1,
                }
            },
            subresource="status",
        )
    up = eventually(
        lambda: (c := camera_down(api, probe)) and c["status"] == "False" and c, what="CameraDown False"
    )
    assert up["reason"] == "CamerasAvailable"
    for tenant in carried:
        assert operator.metric("canarywatch_camera_up", labels | {"tenant": tenant}) == 1


def test_a_new_camera_is_starting_until_its_rollout_fails(
    api: Api,  # noqa: F811
    start_operator: Callable[..., Operator],  # noqa: F811
) -> None:
    """Within the start grace a camera Deployment with no pod yet is starting: a cold
    start flags no camera (no Warning Event, no status patch per probe). A rollout that
    has failed (``Progressing`` False) is down at once, grace or not. Both read from the
    Deployments as the operator's watch delivers them."""
    target(api, "fresh-ingest")
    trusted_probe(api, "fresh")
    api.apply(integration("fresh"))
    start_operator(CANARYWATCH_CAMERA_START_GRACE_SECONDS="3600")
    probe = canary_probe("fresh")["metadata"]["name"]
    starting = eventually(lambda: camera_down(api, probe), what="the probe's CameraDown condition")
    assert (starting["status"], starting["reason"]) == ("False", "CamerasStarting"), starting

    camera = next(
        d
        for d in api.list(DEPLOYMENTS)
        if d["metadata"]["name"].startswith(f"{probe}-")
        and d["metadata"]["labels"].get(LABEL_ROLE) == "camera"
    )
    failed = {
        "type": "Progressing",
        "status": "False",
        "reason": "ProgressDeadlineExceeded",
        "message": "no pod became available",
        "lastUpdateTime": "2026-01-01T00:00:00Z",
        "lastTransitionTime": "2026-01-01T00:00:00Z",
    }
    api.patch(
        DEPLOYMENTS,
        camera["metadata"]["name"],
        {"status": {"observedGeneration": camera["metadata"]["generation"], "conditions": [failed]}},
        subresource="status",
    )
    down = eventually(
        lambda: (c := camera_down(api, probe)) and c["status"] == "True" and c, what="CameraDown True"
    )
    assert down["reason"] == "CameraUnavailable"
    assert camera["metadata"]["name"] in down["message"]
    # Only the failed rollout was news: nothing was flagged while the camera was starting.
    assert api.events(probe).count("CameraDown") == 1, api.events(probe)
