"""Cameras known down and the stale frames they explain (``canarywatch.outages``, shared
by both shells), the operator's reading of camera Deployments (``controller.cameras``)
and the standalone publishers' health (``PublishWatch``)."""

from __future__ import annotations

import asyncio
import time
from typing import Any, cast

import pytest
from manifests import example

from canarywatch import api
from canarywatch.controller import manifests
from canarywatch.controller.cameras import camera_workloads, observe_cameras, stale_excuse
from canarywatch.controller.indexes import deployments_by_probe
from canarywatch.controller.runtime import Runtime, timestamp
from canarywatch.controller.settings import OperatorSettings
from canarywatch.metrics import Metrics
from canarywatch.outages import CameraOutages, PublishWatch
from canarywatch.verdicts import Verdict

NS, UID = "cameras", "3f1c2a9e-5b7d-4e21-9c0a-7d4b2e6f8a10"


# -- the shared core -------------------------------------------------------------------------


def test_only_stale_frames_of_a_tenant_whose_camera_is_down_are_explained() -> None:
    outages = CameraOutages(grace_seconds=60)
    went, back = outages.update({"bravo-2": ("probe-camera-bravo-2", "0/1 available")}, at=100.0)
    assert (went, back) == (["bravo-2"], [])
    why = outages.explains(Verdict.STALE, "bravo-2", 101.0)
    assert why == "camera probe-camera-bravo-2 is down (0/1 available)"
    # a leak is a leak whatever the camera does; other tenants' stale frames still count
    for verdict in set(Verdict) - {Verdict.STALE}:
        assert outages.explains(verdict, "bravo-2", 101.0) is None
    assert outages.explains("stale", "acme-7", 101.0) is None


def test_a_camera_back_up_explains_stale_frames_for_the_grace_period_only() -> None:
    outages = CameraOutages(grace_seconds=60)
    outages.update({"bravo-2": ("cam", "down")}, at=100.0)
    outages.update({"bravo-2": ("cam", "still down")}, at=150.0)
    assert outages.down["bravo-2"].since == 100.0  # the outage started when first seen
    assert outages.update({}, at=200.0) == ([], ["bravo-2"])
    assert outages.explains("stale", "bravo-2", 190.0) is not None  # received during the outage
    assert outages.explains("stale", "bravo-2", 260.0) is not None
    assert outages.explains("stale", "bravo-2", 261.0) is None
    assert outages.update({}, at=300.0) == ([], [])  # said once


def test_a_publisher_is_down_once_it_fails_without_publishing_for_a_while() -> None:
    watch = PublishWatch(after_seconds=1.0)
    assert not watch.observe("cam", published=0, failed=0, at=0.0)
    assert not watch.observe("cam", published=5, failed=0, at=1.0)
    assert not watch.observe("cam", published=5, failed=1, at=1.5)  # one failure is no outage
    assert watch.observe("cam", published=5, failed=3, at=2.0)
    assert watch.observe("cam", published=5, failed=3, at=3.0)  # no new attempt: still down
    assert not watch.observe("cam", published=6, failed=4, at=3.5)  # it published again
    # a camera that simply stops being asked (serve mode, nobody pulls) never fails
    assert not watch.observe("served", published=3, failed=0, at=0.0)
    assert not watch.observe("served", published=3, failed=0, at=100.0)


# -- the operator: camera Deployments as its index keeps them ---------------------------------


@pytest.fixture
def probe() -> dict[str, Any]:
    obj = example("CanaryProbe")
    obj["metadata"] = {**obj["metadata"], "namespace": NS, "uid": UID, "generation": 1}
    return obj


def built(probe: dict[str, Any]) -> list[dict[str, Any]]:
    """The probe's Deployments, built by the builders, as the index trims them."""
    integration = example("CameraIntegration")
    integration["metadata"] = {**integration["metadata"], "namespace": NS}
    objects = manifests.build_probe_workloads(probe, integration, image="canarywatch:test")
    views = [deployments_by_probe(cast(Any, o)) for o in objects if o["kind"] == "Deployment"]
    return [view for found in views for view in found.values()]


def camera(
    name: str,
    probe: str,
    tenant: str | None = None,
    *,
    available: int = 0,
    replicas: int = 1,
    created: float | None = None,
    conditions: list[dict[str, str]] | None = None,
) -> Any:
    """A camera Deployment as the index keeps it (labels, replicas, availability)."""
    labels = {"app.kubernetes.io/component": "camera", api.LABEL_ROLE: "camera", api.LABEL_PROBE: probe}
    if tenant is not None:
        labels[api.LABEL_TENANT] = api.label_value(tenant)
    metadata: dict[str, Any] = {"name": name, "labels": labels}
    if created is not None:
        metadata["creationTimestamp"] = timestamp(created)
    return {
        "metadata": metadata,
        "spec": {"replicas": replicas},
        "status": {"availableReplicas": available, "conditions": conditions or []},
    }


def test_a_new_camera_is_starting_until_the_grace_is_over_or_its_rollout_fails(probe: dict[str, Any]) -> None:
    """A cold start of many probes must not call every new camera down (a Warning Event
    and a status patch per probe) before its pod could have started."""
    spec = manifests.parse_probe(probe)
    now = 1_000_000.0
    young = camera("cam", spec.name, created=now - 30)
    [starting] = camera_workloads(spec.tenant_ids, [young], now=now, start_grace=120)
    assert starting.starting and not starting.down
    [late] = camera_workloads(
        spec.tenant_ids, [camera("cam", spec.name, created=now - 121)], now=now, start_grace=120
    )
    assert late.down
    failed = camera(
        "cam", spec.name, created=now - 30, conditions=[{"type": "Progressing", "status": "False"}]
    )
    assert camera_workloads(spec.tenant_ids, [failed], now=now, start_grace=120)[0].down
    assert camera_workloads(spec.tenant_ids, [young], now=now, start_grace=0)[0].down


async def test_a_starting_camera_shows_in_the_condition_without_an_event(probe: dict[str, Any]) -> None:
    rt, kube = runtime(start_grace=600)
    spec = manifests.parse_probe(probe)
    status = observe_cameras(rt, probe, spec, [camera("cam", spec.name, created=time.time())], {})
    [condition] = status["conditions"]
    assert (condition["status"], condition["reason"]) == ("False", "CamerasStarting")
    await asyncio.gather(*rt.tasks)
    assert kube.events == []
    labels = {"namespace": NS, "integration": spec.integration, "probe": spec.name}
    assert rt.metrics.sample("canarywatch_camera_up", labels | {"tenant": spec.tenant_ids[0]}) == 1


def test_the_built_camera_deployments_carry_every_tenant_once(probe: dict[str, Any]) -> None:
    # Whatever the topology (one camera Deployment per tenant or one for all), found by labels.
    spec = manifests.parse_probe(probe)
    workloads = camera_workloads(spec.tenant_ids, built(probe))
    carried = [t for w in workloads for t in w.tenants]
    assert sorted(carried) == sorted(spec.tenant_ids)
    assert all(w.down and w.reason == f"Deployment {w.name} has 0/1 pods available" for w in workloads)


def test_each_camera_deployment_carries_its_tenant_or_every_tenant(probe: dict[str, Any]) -> None:
    spec = manifests.parse_probe(probe)
    acme, bravo = spec.tenant_ids
    per_tenant = [camera("cam-a", spec.name, acme, available=1), camera("cam-b", spec.name, bravo)]
    assert [(w.name, w.tenants, w.down) for w in camera_workloads(spec.tenant_ids, per_tenant)] == [
        ("cam-a", (acme,), False),
        ("cam-b", (bravo,), True),
    ]
    # one camera workload per probe running all tenants' cameras: down for all of them
    [shared] = camera_workloads(spec.tenant_ids, [camera("all-cameras", spec.name)])
    assert shared.tenants == spec.tenant_ids and shared.down
    # scaled to zero on purpose (a maintenance pause): not down
    assert not camera_workloads(spec.tenant_ids, [camera("all", spec.name, replicas=0)])[0].down
    # a removed tenant's camera (the reconciler deletes it) carries nobody
    assert camera_workloads(spec.tenant_ids, [camera("old", spec.name, "gone-9")]) == []


class Kube:
    def __init__(self) -> None:
        self.events: list[tuple[str, str]] = []

    async def post_event(self, body: Any, *, reason: str, message: str, warning: bool) -> None:
        self.events.append((reason, message))


def runtime(start_grace: float = 0.001) -> tuple[Runtime, Kube]:
    kube = Kube()
    settings = OperatorSettings.from_env(
        {"CANARYWATCH_LEADER_ELECTION": "false", "CANARYWATCH_CAMERA_START_GRACE_SECONDS": str(start_grace)}
    )
    return Runtime(settings=settings, kube=cast(Any, kube), metrics=Metrics()), kube


async def test_a_camera_down_shows_in_the_condition_the_gauge_and_one_event(probe: dict[str, Any]) -> None:
    rt, kube = runtime()
    spec = manifests.parse_probe(probe)
    acme, bravo = spec.tenant_ids
    ready = {"type": "Ready", "status": "False"}
    deployments = [camera("cam-a", spec.name, acme, available=1), camera("cam-b", spec.name, bravo)]
    status = observe_cameras(rt, probe, spec, deployments, {})
    [condition] = status["conditions"]
    assert (condition["type"], condition["status"], condition["reason"]) == (
        "CameraDown",
        "True",
        "CameraUnavailable",
    )
    assert condition["message"] == f"Deployment cam-b has 0/1 pods available (tenants {bravo})"
    labels = {"namespace": NS, "integration": spec.integration, "probe": spec.name}
    assert rt.metrics.sample("canarywatch_camera_up", labels | {"tenant": bravo}) == 0
    assert rt.metrics.sample("canarywatch_camera_up", labels | {"tenant": acme}) == 1
    # the summary's other conditions stay; the Event is posted once, not every summary
    again = observe_cameras(rt, probe, spec, deployments, {"conditions": [ready, condition]})
    assert [c["type"] for c in again["conditions"]] == ["Ready", "CameraDown"]
    await asyncio.gather(*rt.tasks)
    assert [reason for reason, _ in kube.events] == ["CameraDown"]
    assert "cam-b" in kube.events[0][1]

    everything = [camera(f"cam-{t}", spec.name, t, available=1) for t in spec.tenant_ids]
    fine = observe_cameras(rt, probe, spec, everything, again)
    condition = fine["conditions"][-1]
    assert (condition["status"], condition["reason"]) == ("False", "CamerasAvailable")
    assert rt.metrics.sample("canarywatch_camera_up", labels | {"tenant": bravo}) == 1
    # deleted: the gauges go with it
    rt.metrics.forget_probe(namespace=NS, integration=spec.integration, probe=spec.name)
    assert rt.metrics.sample("canarywatch_camera_up", labels | {"tenant": bravo}) is None


def stale(probe: dict[str, Any], tenant: str, verdict: str = "stale") -> dict[str, Any]:
    return {
        "metadata": {"name": "i", "namespace": NS},
        "spec": {
            "probeRef": {"name": probe["metadata"]["name"]},
            "viewer": {"tenant": tenant},
            "observed": {"verdict": verdict},
        },
    }


def test_a_stale_incident_is_excused_by_the_index_as_it_is_now(probe: dict[str, Any]) -> None:
    rt, _ = runtime()
    spec = manifests.parse_probe(probe)
    acme, bravo = spec.tenant_ids
    index = {(NS, UID): [camera("cam-a", spec.name, acme, available=1), camera("cam-b", spec.name, bravo)]}
    why = stale_excuse(rt, cast(Any, index), stale(probe, bravo), 1.0)
    assert why == "camera cam-b is down (Deployment cam-b has 0/1 pods available)"
    assert stale_excuse(rt, cast(Any, index), stale(probe, acme), 1.0) is None
    assert stale_excuse(rt, cast(Any, index), stale(probe, bravo, "cross_tenant"), 1.0) is None
    # another namespace's probe of the same name is another probe
    elsewhere = {("other", UID): index[(NS, UID)]}
    assert stale_excuse(runtime()[0], cast(Any, elsewhere), stale(probe, bravo), 1.0) is None
