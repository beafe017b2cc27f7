"""The viewer plan: which streams hub viewers open, decided once for both shells.

The pod agent (from the environment ``controller.manifests`` gives it) and the standalone
pipeline (from a config file) must watch an integration the same way; here the same
CanaryProbe and CameraIntegration, read by each shell, give the same plan.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
from manifests import example, secrets_of

from canarywatch.agents.env import ViewerSettings
from canarywatch.agents.viewer import viewer_spec as pod_viewer_spec
from canarywatch.controller import manifests
from canarywatch.standalone.config import StandaloneConfig
from canarywatch.standalone.pipeline import viewer_spec as standalone_viewer_spec
from canarywatch.viewer.http import RequestTemplate
from canarywatch.viewer.network import GOOD, POOR, NetworkProfile
from canarywatch.viewer.plan import StreamPlan, ViewerSpec, Watcher, plan_streams

IMAGE = "registry.example/canarywatch:0.1.0"
RELAY = "http://relay:9000/v3"
#: the path a transport's frames come through
PATH_OF = {"snapshot": "snapshot", "mjpeg": "mjpeg", "events": "thumbnail", "authz": "probe", "hub": "hub"}


def template(path: str) -> RequestTemplate:
    return RequestTemplate(url=RELAY + path, headers={"Authorization": "Bearer {token}"})


ENDPOINTS = {
    "snapshot": template("/devices/{tenant}/{camera}/live.jpg"),
    "mjpeg": template("/devices/{tenant}/{camera}/stream.mjpg"),
    "events": template("/events"),
    "authzProbe": template("/devices/{tenant}/{camera}/live.jpg"),
}


def spec(**changes: Any) -> ViewerSpec:
    fields: dict[str, Any] = {
        "integration": "relay",
        "probe": "canaries",
        "tenants": ("acme-7", "bravo-2", "charlie-3"),
        "watchers": (Watcher("acme-7", "t-acme"),),
        "cameras": 2,
        "endpoints": ENDPOINTS,
        "profiles": (POOR,),
        "freshness_seconds": 10.0,
        "poll_interval": 0.5,
    }
    return ViewerSpec(**(fields | changes))


def paths(plan: tuple[StreamPlan, ...]) -> list[tuple[str, int | None, str]]:
    return [(p.stream.tenant, p.stream.camera, p.path) for p in plan]


# -- what one hub opens --------------------------------------------------------------------------


def test_a_hub_polls_and_streams_each_camera_reads_its_events_and_probes_the_others() -> None:
    plan = plan_streams(spec())
    assert paths(plan) == [
        ("acme-7", 0, "snapshot"),
        ("acme-7", 0, "mjpeg"),
        ("acme-7", 1, "snapshot"),
        ("acme-7", 1, "mjpeg"),
        ("acme-7", None, "thumbnail"),
        ("acme-7", None, "probe"),
    ]
    snapshot, mjpeg, _, _, thumbnail, probe = plan
    assert snapshot.requests[0].url == f"{RELAY}/devices/acme-7/0/live.jpg"
    assert snapshot.requests[0].headers["Authorization"] == "Bearer t-acme"
    assert (snapshot.interval_s, mjpeg.interval_s) == (0.5, None)
    # an event's thumbnail is as old as the event: no freshness bound on it
    assert (snapshot.max_age, mjpeg.max_age, thumbnail.max_age) == (10.0, 10.0, None)
    # every other tenant's camera, with acme's own token; never faster than once a second
    assert [(r.tenant, r.camera) for r in probe.requests] == [
        ("bravo-2", "0"),
        ("bravo-2", "1"),
        ("charlie-3", "0"),
        ("charlie-3", "1"),
    ]
    assert {r.headers["Authorization"] for r in probe.requests} == {"Bearer t-acme"}
    assert probe.interval_s == 1.0
    assert {p.hub for p in plan} == {("acme-7", "poor")}


def test_only_an_mjpeg_stream_on_a_slow_link_waits_for_the_links_measurement() -> None:
    poor = plan_streams(spec(profiles=(POOR,)))
    assert [p.path for p in poor if p.measure_first] == ["mjpeg", "mjpeg"]
    # unshaped, a request without hints is what the hub is: fast
    assert not any(p.measure_first for p in plan_streams(spec(profiles=(GOOD,))))
    # under tc the shaper applies only stalls, but the kernel makes the link slow
    stalls_only = NetworkProfile("poor", stall_probability=0.03, stall_s=2.0)
    kernel = plan_streams(spec(profiles=(stalls_only,), kernel_shaped=True))
    assert [p.path for p in kernel if p.measure_first] == ["mjpeg", "mjpeg"]


def test_every_hub_probes_authorization_when_there_are_other_tenants() -> None:
    # a path picked by the client's hints may skip the check: probe on every network
    two_networks = plan_streams(spec(profiles=(GOOD, POOR)))
    assert [p.stream.profile for p in two_networks if p.path == "probe"] == ["good", "poor"]
    alone = plan_streams(spec(tenants=("acme-7",)))
    assert "probe" not in [p.path for p in alone]


def test_only_the_configured_paths_are_opened() -> None:
    plan = plan_streams(spec(endpoints={"events": ENDPOINTS["events"]}))
    assert paths(plan) == [("acme-7", None, "thumbnail")]


def test_a_viewer_spec_names_what_it_lacks() -> None:
    with pytest.raises(ValueError, match="not tenants of probe"):
        spec(watchers=(Watcher("mallory", "x"),))
    with pytest.raises(ValueError, match="at least one"):
        spec(profiles=())


def test_tokens_never_show_in_a_spec_or_a_plan() -> None:
    text = repr(spec()) + repr(plan_streams(spec()))
    assert "t-acme" not in text


# -- the same spec, read by either shell ---------------------------------------------------------


def custom_resources(transports: list[str]) -> tuple[dict[str, Any], dict[str, Any]]:
    probe = copy.deepcopy(example("CanaryProbe"))
    probe["metadata"] |= {"namespace": "cameras", "uid": "0f0e0d0c-0000-4000-8000-000000000001"}
    probe["spec"]["transports"] = transports
    integration = copy.deepcopy(example("CameraIntegration"))
    integration["spec"]["viewer"]["hub"] = {
        "url": "http://canarywatch-relay:9000/v3/smarthome/fulfillment",
        "headers": {"Authorization": "Bearer {token}"},
        "device": "cam-{camera}",
    }
    return probe, integration


def tokens() -> dict[str, str]:
    (secret,) = secrets_of("CanaryProbe")
    return dict(secret["stringData"])


def pod_settings(deployment: dict[str, Any], tmp_path: Path, tokens: dict[str, str]) -> ViewerSettings:
    """The viewer's settings from its container's environment, as a kubelet gives it."""
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    fields = {"metadata.namespace": "cameras", "metadata.name": "viewer-pod", "spec.nodeName": "node-1"}
    environ = {
        entry["name"]: entry["value"]
        if "value" in entry
        else fields[entry["valueFrom"]["fieldRef"]["fieldPath"]]
        for entry in container["env"]
    }
    token_dir = tmp_path / "token"
    token_dir.mkdir()
    for tenant, token in tokens.items():
        (token_dir / tenant).write_text(token + "\n")
    return ViewerSettings.from_environ(environ | {"CANARYWATCH_TOKEN_DIR": str(token_dir)})


def standalone_document(
    probe: dict[str, Any], integration: dict[str, Any], transports: list[str]
) -> dict[str, Any]:
    """The same probe and integration as a standalone config file."""
    spec, viewer = probe["spec"], integration["spec"]["viewer"]
    return {
        "integration": {
            "name": spec["integrationRef"]["name"],
            "camera": integration["spec"]["camera"],
            # every endpoint the integration has: the probe's transports choose, as in a cluster
            "viewer": viewer,
            "policy": {"mode": "alert-only"},
        },
        "probe": {
            "name": probe["metadata"]["name"],
            "tenants": [{"id": t["id"], "token": tokens()[t["id"]]} for t in spec["tenants"]],
            "camerasPerTenant": spec["camerasPerTenant"],
            "networkProfiles": spec["networkProfiles"],
            "customNetworkProfiles": spec["customNetworkProfiles"],
            "transports": transports,
            "freshnessSeconds": spec["freshnessSeconds"],
        },
    }


@pytest.mark.parametrize(
    "transports",
    [["snapshot", "mjpeg", "events", "authz"], ["mjpeg", "authz"], ["hub", "authz"]],
    ids=["all", "mjpeg-authz", "hub-authz"],
)
def test_the_pod_agents_and_the_standalone_pipeline_plan_the_same_streams(
    transports: list[str], tmp_path: Path
) -> None:
    probe, integration = custom_resources(transports)
    secret_tokens = tokens()
    # One viewer pod runs every tenant on every profile, as the standalone process does.
    deployment = manifests.build_viewer_deployment(probe, integration, image=IMAGE)
    pods: list[StreamPlan] = list(
        plan_streams(pod_viewer_spec(pod_settings(deployment, tmp_path, secret_tokens)))
    )
    config = StandaloneConfig.from_mapping(standalone_document(probe, integration, transports))
    standalone = plan_streams(standalone_viewer_spec(config, secret_tokens))
    assert tuple(pods) == standalone
    if "hub" in transports:  # each hub stream asks its fulfillment for its camera's device
        assert {(p.stream.camera, p.device, p.requests[0].method) for p in standalone if p.path == "hub"} == {
            (0, "cam-0", "POST"),
            (1, "cam-1", "POST"),
        }
    # the plans are not trivially equal: every hub, every path, requests with credentials
    assert {p.hub for p in standalone} == {
        (tenant, profile) for tenant in ("acme-7", "bravo-2") for profile in ("good", "poor", "hub-wifi")
    }
    assert {p.path for p in standalone} == {PATH_OF[t] for t in transports}
    assert [p.hub for p in standalone if p.measure_first] == [
        (tenant, profile)
        for tenant in ("acme-7", "bravo-2")
        for profile in ("poor", "hub-wifi")
        for _ in (0, 1)
    ]


def test_a_smart_display_watches_each_camera_through_its_fulfillment() -> None:
    hub = RequestTemplate(
        url=RELAY + "/smarthome/fulfillment", method="POST", headers={"Authorization": "Bearer {token}"}
    )
    plan = plan_streams(spec(endpoints={"hub": hub}, hub_device="{tenant}.cam{camera}"))
    assert [(p.path, p.stream.camera, p.device, p.measure_first) for p in plan] == [
        ("hub", 0, "acme-7.cam0", True),  # a poor link: the player picks its variant once measured
        ("hub", 1, "acme-7.cam1", True),
    ]
    assert plan[0].requests[0].headers == {"Authorization": "Bearer t-acme"}
