"""A new probe's objects are created with a POST (half the API server's CPU of a
server-side apply), and later applies still prune what the builders stop producing
(``controller.ownership``): the fields the create set are handed over to the apply.
The request counts of a cold start are in test_operator_rbac (audit log)."""

# ruff: noqa: F811

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import pytest
from manifests import canary_probe, integration
from operator_process import AGENT_IMAGE, Operator
from polling import eventually
from test_operator import (  # noqa: F401  (fixtures)
    Api,
    api,
    loop,
    operator_crds,
    pagerduty,
    start_operator,
)

from canarywatch.api import CONFIG_HASH_ANNOTATION
from canarywatch.controller import manifests
from canarywatch.controller.kube import (
    CAMERA_INTEGRATIONS,
    CANARY_PROBES,
    DEPLOYMENTS,
    FIELD_MANAGER,
    POD_DISRUPTION_BUDGETS,
    Resource,
)

pytestmark = [pytest.mark.cluster, pytest.mark.usefixtures("operator_crds")]

SERVICES = Resource("", "v1", "services", "Service")
_RESOURCES = {"Deployment": DEPLOYMENTS, "PodDisruptionBudget": POD_DISRUPTION_BUDGETS, "Service": SERVICES}


def built(api: Api, probe_name: str, integration_name: str) -> list[dict[str, Any]]:
    """The probe's objects as the operator builds them now (its settings' defaults)."""
    probe = api.get(CANARY_PROBES, probe_name)
    ci = api.get(CAMERA_INTEGRATIONS, integration_name)
    return manifests.build_probe_workloads(probe, ci, image=AGENT_IMAGE)


def live_objects(api: Api, objects: list[dict[str, Any]]) -> list[dict[str, Any] | None]:
    return [api.get(_RESOURCES[o["kind"]], o["metadata"]["name"]) for o in objects]


def operations(obj: dict[str, Any]) -> list[str]:
    """The operations of the operator's entries in the object's managed fields."""
    return sorted(
        e["operation"]
        for e in obj["metadata"].get("managedFields") or []
        if e["manager"] == FIELD_MANAGER and not e.get("subresource")
    )


def all_there(api: Api, objects: list[dict[str, Any]]) -> list[dict[str, Any]] | None:
    found = live_objects(api, objects)
    return [o for o in found if o is not None] if all(found) else None


def as_applied(api: Api, obj: dict[str, Any]) -> dict[str, Any]:
    """``obj`` as a server-side apply creating it would leave it (a dry run, renamed)."""
    body = copy.deepcopy(obj)
    body["metadata"]["name"] += "-applied"
    body["metadata"]["namespace"] = api.namespace
    path = _RESOURCES[obj["kind"]].path(api.namespace, body["metadata"]["name"])
    return dict(
        api.call(
            "PATCH",
            path,
            body,
            "application/apply-patch+yaml",
            fieldManager=FIELD_MANAGER,
            force="true",
            dryRun="All",
        )
    )


def test_a_new_probes_objects_are_created_as_an_apply_would_have_made_them(
    api: Api, start_operator: Callable[..., Operator]
) -> None:
    api.apply(integration("relay", None, camera={"serve": {"port": 8080}}))
    name = api.apply(canary_probe("relay"))["metadata"]["name"]
    start_operator()
    objects = built(api, name, "relay")
    assert {o["kind"] for o in objects} == {"Deployment", "PodDisruptionBudget", "Service"}
    live = eventually(lambda: all_there(api, objects), what="the probe's objects")
    for want, got in zip(objects, live, strict=True):
        # Written by a create of the operator's (an apply would be an Apply entry).
        assert operations(got) == ["Update"], got["metadata"]["name"]
        applied = as_applied(api, want)
        assert _spec(got) == _spec(applied), got["metadata"]["name"]
        for key in ("labels", "annotations", "ownerReferences"):
            assert _ours(got, key) == _ours(applied, key), (got["metadata"]["name"], key)


def _spec(obj: dict[str, Any]) -> dict[str, Any]:
    """The spec, without the address a Service is given (a dry run's is a placeholder)."""
    return {k: v for k, v in obj["spec"].items() if k not in ("clusterIP", "clusterIPs")}


def _ours(obj: dict[str, Any], key: str) -> Any:
    """The metadata ``key``, without the Deployment controller's annotation."""
    value = obj["metadata"].get(key)
    if key == "annotations":
        return {k: v for k, v in value.items() if not k.startswith("deployment.kubernetes.io/")}
    return value


def test_what_a_change_stops_setting_is_removed_from_objects_a_create_wrote(
    api: Api, start_operator: Callable[..., Operator]
) -> None:
    """Tenant tokens dropped: the token volume, its mount and CANARYWATCH_TOKEN_DIR go
    from every Deployment; then the cameras' port moved: the old one goes from the
    Service and the camera's container. A create's fields not handed over to the
    apply would all stay."""
    api.apply(integration("relay", None, camera={"serve": {"port": 8080}}))
    probe = canary_probe("relay")
    name = probe["metadata"]["name"]
    api.apply(probe)
    start_operator()
    objects = built(api, name, "relay")
    deployments = [o for o in objects if o["kind"] == "Deployment"]
    first = eventually(lambda: all_there(api, deployments), what="the probe's Deployments")
    assert all(operations(d) == ["Update"] for d in first)
    assert all("token" in _volumes(d) for d in first)

    tenants = [{"id": t["id"]} for t in probe["spec"]["tenants"]]
    api.patch(CANARY_PROBES, name, {"spec": {"tenants": tenants}})

    def tokens_gone() -> list[dict[str, Any]] | None:
        now = all_there(api, deployments)
        hashes = {d["metadata"]["annotations"][CONFIG_HASH_ANNOTATION] for d in now or []}
        if not now or hashes & {d["metadata"]["annotations"][CONFIG_HASH_ANNOTATION] for d in first}:
            return None  # not every Deployment rolled yet
        return now

    rolled = eventually(tokens_gone, what="every Deployment to roll without tokens")
    for deployment in rolled:
        container = deployment["spec"]["template"]["spec"]["containers"][0]
        assert "token" not in _volumes(deployment), deployment["metadata"]["name"]
        assert "token" not in {m["name"] for m in container.get("volumeMounts") or []}
        assert "CANARYWATCH_TOKEN_DIR" not in {e["name"] for e in container["env"]}
        assert operations(deployment) == ["Apply"]

    api.patch(CAMERA_INTEGRATIONS, "relay", {"spec": {"camera": {"serve": {"port": 8081}}}})
    service_name = next(o["metadata"]["name"] for o in objects if o["kind"] == "Service")

    def moved() -> bool:
        ports = [p["port"] for p in api.get(SERVICES, service_name)["spec"]["ports"]]
        camera = api.get(DEPLOYMENTS, manifests.camera_name(name))
        container_ports = {
            p["containerPort"] for p in camera["spec"]["template"]["spec"]["containers"][0]["ports"]
        }
        return 8081 in ports and 8081 in container_ports

    eventually(moved, what="the Service and the camera to move to port 8081")
    service = api.get(SERVICES, service_name)
    assert [p["port"] for p in service["spec"]["ports"]] == [8081]
    assert operations(service) == ["Apply"]
    camera = api.get(DEPLOYMENTS, manifests.camera_name(name))
    assert 8080 not in {
        p["containerPort"] for p in camera["spec"]["template"]["spec"]["containers"][0]["ports"]
    }


def _volumes(deployment: dict[str, Any]) -> set[str]:
    return {v["name"] for v in deployment["spec"]["template"]["spec"].get("volumes") or []}


def test_a_leftover_is_applied_and_loses_what_its_create_set(
    api: Api, start_operator: Callable[..., Operator]
) -> None:
    """The operator stopped between creating a probe's budget and its Deployments (so
    the probe is new again when it starts): the create finds the budget there (409), and
    the apply of before brings it in line, a label the budget no longer has removed."""
    api.apply(integration("relay", None))
    probe = api.apply(canary_probe("relay"))
    name = probe["metadata"]["name"]
    [budget] = [o for o in built(api, name, "relay") if o["kind"] == "PodDisruptionBudget"]
    leftover = copy.deepcopy(budget)
    leftover["metadata"]["labels"]["canarywatch.io/left-over"] = "yes"
    leftover["spec"]["maxUnavailable"] = 3
    api.call("POST", POD_DISRUPTION_BUDGETS.path(api.namespace), leftover, fieldManager=FIELD_MANAGER)
    start_operator()
    deployments = [o for o in built(api, name, "relay") if o["kind"] == "Deployment"]
    created = eventually(lambda: all_there(api, deployments), what="the probe's Deployments")
    assert all(operations(d) == ["Update"] for d in created)  # created
    now = eventually(
        lambda: (
            (b := api.get(POD_DISRUPTION_BUDGETS, budget["metadata"]["name"]))["spec"]["maxUnavailable"] == 1
            and b
        ),
        what="the leftover budget to be applied",
    )
    assert "canarywatch.io/left-over" not in now["metadata"]["labels"]
    assert now["metadata"]["labels"] == budget["metadata"]["labels"]
    assert operations(now) == ["Apply"]
