"""Manifest builders: deterministic output, security defaults, NET_ADMIN only for tc,
labels and owner references, config hashes that follow the spec, probe status."""

from __future__ import annotations

import base64
import copy
import json
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from manifests import example

from canarywatch import api
from canarywatch.controller import manifests
from canarywatch.markers import Keyring
from canarywatch.viewer.network import POOR, NetworkProfile, netem_commands

IMAGE = "registry.example/canarywatch:0.1.0"
PROBE_UID = "3f1c2a9e-5b7d-4e21-9c0a-7d4b2e6f8a10"
DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")


@pytest.fixture
def probe() -> dict[str, Any]:
    """examples/canaryprobe.yaml as the API server hands it to the operator."""
    obj = example("CanaryProbe")
    obj["metadata"] = {**obj["metadata"], "namespace": "cameras", "uid": PROBE_UID, "generation": 1}
    return obj


@pytest.fixture
def integration() -> dict[str, Any]:
    obj = example("CameraIntegration")
    obj["metadata"] = {**obj["metadata"], "namespace": "cameras"}
    return obj


def build_all(probe: dict[str, Any], integration: dict[str, Any]) -> list[dict[str, Any]]:
    keys = {t["id"]: bytes([i + 1]) * 32 for i, t in enumerate(probe["spec"]["tenants"])}
    secret = manifests.build_keyring_secret(probe, keys)
    return [secret, *manifests.build_probe_workloads(probe, integration, image=IMAGE)]


def deployments(objects: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {o["metadata"]["name"]: o for o in objects if o["kind"] == "Deployment"}


def hashes(objects: list[dict[str, Any]]) -> dict[tuple[str, str], str]:
    return {
        (o["kind"], o["metadata"]["name"]): o["metadata"]["annotations"][api.CONFIG_HASH_ANNOTATION]
        for o in objects
    }


def pod_specs(objects: list[dict[str, Any]]) -> Iterator[tuple[str, dict[str, Any]]]:
    for name, deployment in deployments(objects).items():
        yield name, deployment["spec"]["template"]["spec"]


def env_of(deployment: dict[str, Any]) -> dict[str, Any]:
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container["env"]}


def reversed_keys(value: Any) -> Any:
    """The same data with every mapping's insertion order reversed."""
    if isinstance(value, dict):
        return {k: reversed_keys(value[k]) for k in reversed(list(value))}
    if isinstance(value, list):
        return [reversed_keys(v) for v in value]
    return value


# -- what gets built ---------------------------------------------------------------------


def test_the_example_probe_builds_one_secret_one_camera_and_one_viewer_deployment(
    probe: dict[str, Any], integration: dict[str, Any]
) -> None:
    # 2 tenants x 3 in-process shaped profiles: still one Secret and two Deployments
    # (plus the budget), whatever the number of tenants and profiles.
    objects = build_all(probe, integration)
    kinds = [(o["kind"], o["metadata"]["name"]) for o in objects]
    p = "reference-relay-canaries"
    assert kinds == [
        ("Secret", f"{p}-keyring"),
        ("PodDisruptionBudget", f"{p}-agents"),
        ("Deployment", f"{p}-camera"),
        ("Deployment", f"{p}-viewer"),
    ]
    assert set(manifests.expected_workload_names(probe)) == set(deployments(objects))
    built = deployments(objects)
    assert built[f"{p}-camera"]["spec"]["replicas"] == 1
    assert built[f"{p}-camera"]["spec"]["strategy"] == {"type": "Recreate"}
    assert built[f"{p}-viewer"]["spec"]["replicas"] == probe["spec"]["viewersPerProfile"]
    assert built[f"{p}-viewer"]["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
    # The one viewer process runs every tenant on every profile.
    assert env_of(built[f"{p}-viewer"])["CANARYWATCH_TENANTS"] == "acme-7,bravo-2"
    assert set(json.loads(env_of(built[f"{p}-viewer"])["CANARYWATCH_NETWORK_PROFILES"])) == {
        "good",
        "poor",
        "hub-wifi",
    }


def test_output_is_deterministic_and_independent_of_key_order(
    probe: dict[str, Any], integration: dict[str, Any]
) -> None:
    first = build_all(probe, integration)
    again = build_all(copy.deepcopy(probe), copy.deepcopy(integration))
    shuffled = build_all(reversed_keys(probe), reversed_keys(integration))
    assert json.dumps(first) == json.dumps(again)
    assert first == shuffled
    assert hashes(first) == hashes(shuffled)


def test_builders_do_not_modify_their_inputs(probe: dict[str, Any], integration: dict[str, Any]) -> None:
    before = (copy.deepcopy(probe), copy.deepcopy(integration))
    objects = build_all(probe, integration)
    camera = next(o for o in objects if o["kind"] == "Deployment")
    camera["spec"]["template"]["metadata"]["labels"]["edited"] = "yes"  # results share nothing
    assert (probe, integration) == before
    assert "edited" not in camera["metadata"]["labels"]


def test_defaults_are_the_crds_as_documented(probe: dict[str, Any]) -> None:
    # Read from crds/canaryprobes.yaml (the one place they are written); these are the
    # values the README documents, poor network viewers included.
    assert manifests.PROBE_DEFAULTS == {
        "camerasPerTenant": 1,
        "fps": 2,
        "frameSize": {"width": 640, "height": 360},
        "networkProfiles": ["good", "poor"],
        "viewersPerProfile": 1,
        "transports": ["snapshot"],
        "freshnessSeconds": 10,
        "placement": {"spreadAcross": "nodes", "whenUnsatisfiable": "ScheduleAnyway"},
    }
    # A spec the API server has not defaulted builds exactly what a defaulted one does.
    minimal = {
        "metadata": probe["metadata"],
        "spec": {"integrationRef": {"name": "r"}, "tenants": [{"id": "a"}]},
    }
    defaulted = copy.deepcopy(minimal)
    defaulted["spec"].update(copy.deepcopy(dict(manifests.PROBE_DEFAULTS)))
    assert manifests.parse_probe(minimal) == manifests.parse_probe(defaulted)


# -- security ----------------------------------------------------------------------------


def test_every_agent_runs_non_root_read_only_without_capabilities(
    probe: dict[str, Any], integration: dict[str, Any]
) -> None:
    objects = build_all(probe, integration)
    for name, pod in pod_specs(objects):
        assert pod["securityContext"]["runAsNonRoot"] is True, name
        assert pod["securityContext"]["runAsUser"] != 0, name
        assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}, name
        assert "initContainers" not in pod, name
        for container in pod["containers"]:
            context = container["securityContext"]
            assert context["readOnlyRootFilesystem"] is True, name
            assert context["allowPrivilegeEscalation"] is False, name
            assert context["capabilities"] == {"drop": ["ALL"]}, name
            assert container["resources"]["requests"] and container["resources"]["limits"], name
        # Cameras: the namespace's default account, no token; viewers: the shared one.
        role = deployments(objects)[name]["metadata"]["labels"][api.LABEL_ROLE]
        assert pod["automountServiceAccountToken"] is (role == "viewer"), name
        assert pod.get("serviceAccountName") == ("canarywatch-viewer" if role == "viewer" else None), name
    assert "NET_ADMIN" not in json.dumps(objects)


def test_net_admin_only_for_viewers_whose_profile_asks_for_tc(
    probe: dict[str, Any], integration: dict[str, Any]
) -> None:
    probe["spec"]["networkProfiles"] = ["good", "poor", "hub-wifi", "poor-tc"]
    probe["spec"]["customNetworkProfiles"][0]["shaper"] = "tc"
    probe["spec"]["customNetworkProfiles"].append({"name": "poor-tc", "preset": "poor", "shaper": "tc"})
    objects = build_all(probe, integration)

    privileged = {}
    for name, pod in pod_specs(objects):
        for container in pod["containers"]:  # the agents themselves never get a capability
            assert container["securityContext"]["capabilities"] == {"drop": ["ALL"]}, name
        if "initContainers" in pod:
            (init,) = pod["initContainers"]
            assert init["securityContext"]["capabilities"] == {"drop": ["ALL"], "add": ["NET_ADMIN"]}
            assert init["securityContext"]["allowPrivilegeEscalation"] is False
            privileged[name] = init["command"][-1]
    p = "reference-relay-canaries"
    # netem shapes a whole pod: each tc profile gets a viewer Deployment of its own (all
    # tenants on that profile); the in-process shaped ones share the other.
    assert set(privileged) == {f"{p}-viewer-hub-wifi", f"{p}-viewer-poor-tc"}
    assert (
        set(manifests.expected_workload_names(probe))
        == set(deployments(objects))
        == {
            f"{p}-camera",
            f"{p}-viewer",
            f"{p}-viewer-hub-wifi",
            f"{p}-viewer-poor-tc",
        }
    )
    # The init container runs exactly the commands netem_commands gives for the profile.
    poor_script = privileged[f"{p}-viewer-poor-tc"]
    for argv in netem_commands(POOR):
        assert " ".join(argv) in poor_script
    assert "delay 400ms 200ms loss 3%" in privileged[f"{p}-viewer-hub-wifi"]
    built = deployments(objects)
    tc = env_of(built[f"{p}-viewer-poor-tc"])
    assert tc["CANARYWATCH_NETWORK_SHAPER"] == "tc"
    assert list(json.loads(tc["CANARYWATCH_NETWORK_PROFILES"])) == ["poor-tc"]
    assert tc["CANARYWATCH_TENANTS"] == "acme-7,bravo-2"
    shared = env_of(built[f"{p}-viewer"])
    assert shared["CANARYWATCH_NETWORK_SHAPER"] == "application"
    assert set(json.loads(shared["CANARYWATCH_NETWORK_PROFILES"])) == {"good", "poor"}
    # No two viewer Deployments select each other's pods.
    viewers = [d for n, d in built.items() if "-viewer" in n]
    for deployment in viewers:
        for other in viewers:
            labels = other["spec"]["template"]["metadata"]["labels"]
            assert selects(deployment["spec"]["selector"], labels) == (deployment is other)


def selects(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    absent = [e["key"] for e in selector.get("matchExpressions", []) if e["operator"] == "DoesNotExist"]
    return all(labels.get(k) == v for k, v in selector["matchLabels"].items()) and not any(
        k in labels for k in absent
    )


def test_tc_with_nothing_for_netem_to_impose_stays_unprivileged(
    probe: dict[str, Any], integration: dict[str, Any]
) -> None:
    probe["spec"]["networkProfiles"] = ["stalls"]
    probe["spec"]["customNetworkProfiles"] = [
        {"name": "stalls", "stall": {"probability": 0.1, "seconds": "2s"}, "shaper": "tc"}
    ]
    assert "NET_ADMIN" not in json.dumps(build_all(probe, integration))


def test_viewers_may_create_leak_incidents_and_nothing_more() -> None:
    owners = [("probe-b", "uid-2"), ("probe-a", "uid-1")]
    objects = manifests.build_viewer_rbac("cameras", owners)
    assert [o["kind"] for o in objects] == ["ServiceAccount", "Role", "RoleBinding"]
    assert {o["metadata"]["name"] for o in objects} == {"canarywatch-viewer"}
    # The namespace's: every probe an owner, none the controller (deleting one probe
    # leaves it to the others; the garbage collector takes it with the last).
    for obj in objects:
        assert obj["metadata"]["ownerReferences"] == [
            {
                "apiVersion": "canarywatch.io/v1alpha1",
                "kind": "CanaryProbe",
                "name": "probe-a",
                "uid": "uid-1",
            },
            {
                "apiVersion": "canarywatch.io/v1alpha1",
                "kind": "CanaryProbe",
                "name": "probe-b",
                "uid": "uid-2",
            },
        ]
    assert manifests.build_viewer_rbac("cameras", reversed(owners)) == objects
    rbac = {o["kind"]: o for o in objects}
    assert rbac["ServiceAccount"]["automountServiceAccountToken"] is False
    assert rbac["Role"]["rules"] == [
        {"apiGroups": ["canarywatch.io"], "resources": ["leakincidents"], "verbs": ["create"]}
    ]
    assert rbac["RoleBinding"]["roleRef"]["name"] == rbac["Role"]["metadata"]["name"]
    assert rbac["RoleBinding"]["subjects"] == [
        {"kind": "ServiceAccount", "name": "canarywatch-viewer", "namespace": "cameras"}
    ]


# -- labels, owners, names ----------------------------------------------------------------


def test_labels_selectors_and_owner_references(probe: dict[str, Any], integration: dict[str, Any]) -> None:
    objects = build_all(probe, integration)
    for obj in objects:
        meta = obj["metadata"]
        assert meta["namespace"] == "cameras"
        assert meta["ownerReferences"] == [
            {
                "apiVersion": "canarywatch.io/v1alpha1",
                "kind": "CanaryProbe",
                "name": "reference-relay-canaries",
                "uid": PROBE_UID,
                "controller": True,
                "blockOwnerDeletion": True,
            }
        ]
        labels = meta["labels"]
        assert labels["app.kubernetes.io/name"] == "canarywatch"
        assert labels["app.kubernetes.io/managed-by"] == "canarywatch-operator"
        assert labels["app.kubernetes.io/instance"] == labels[api.LABEL_PROBE] == "reference-relay-canaries"
        assert labels[api.LABEL_INTEGRATION] == "reference-relay"
        assert DNS_LABEL.match(meta["name"]), meta["name"]
    for name, deployment in deployments(objects).items():
        selector = deployment["spec"]["selector"]["matchLabels"]
        template_labels = deployment["spec"]["template"]["metadata"]["labels"]
        assert selector.items() <= template_labels.items(), name
        # Selectors are immutable: nothing in them may change for one Deployment name.
        assert api.LABEL_INTEGRATION not in selector
        assert api.LABEL_TENANT not in selector  # a pod runs every tenant
        role = selector[api.LABEL_ROLE]
        assert name == f"reference-relay-canaries-{role}"
        # What tells a camera Deployment (unavailable) apart: its component and probe.
        assert deployment["metadata"]["labels"]["app.kubernetes.io/component"] == role


def test_names_and_labels_stay_valid_for_any_probe_or_tenant_name(
    probe: dict[str, Any], integration: dict[str, Any]
) -> None:
    probe["metadata"]["name"] = "a-very-long-probe-name-" + "x" * 200
    probe["spec"]["tenants"] = [{"id": "Acme_7"}, {"id": "acme-7"}, {"id": "9." + "t" * 58}]
    probe["spec"]["customNetworkProfiles"][0]["shaper"] = "tc"
    objects = build_all(probe, integration)
    names = [(o["kind"], o["metadata"]["name"]) for o in objects]
    assert len(names) == len(set(names))
    # Acme_7 and acme-7 never share a key: an item each, named as a Secret key must be.
    [secret] = [o for o in objects if o["kind"] == "Secret"]
    assert set(secret["data"]) == {"Acme_7.json", "acme-7.json", "9." + "t" * 58 + ".json"}
    assert all(re.fullmatch(r"[-._a-zA-Z0-9]+", item) for item in secret["data"])
    # Shortened names still say what they are.
    assert any(
        name.startswith("a-very-long-probe-name-") and "-viewer-hub-wifi-" in name for _, name in names
    )
    for obj in objects:
        assert DNS_LABEL.match(obj["metadata"]["name"]), obj["metadata"]["name"]
        for value in obj["metadata"]["labels"].values():
            assert len(value) <= 63 and re.fullmatch(r"([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]", value), (
                value
            )


# -- config hash --------------------------------------------------------------------------


def test_hash_is_on_the_object_and_its_pod_template(
    probe: dict[str, Any], integration: dict[str, Any]
) -> None:
    for obj in build_all(probe, integration):
        digest = obj["metadata"]["annotations"][api.CONFIG_HASH_ANNOTATION]
        assert digest == manifests.config_hash(obj)
        if obj["kind"] == "Deployment":
            assert obj["spec"]["template"]["metadata"]["annotations"][api.CONFIG_HASH_ANNOTATION] == digest


def test_hash_ignores_what_is_not_spec(probe: dict[str, Any], integration: dict[str, Any]) -> None:
    before = hashes(build_all(probe, integration))
    probe["metadata"].update(resourceVersion="981", generation=7, annotations={"note": "x"})
    probe["status"] = {"ready": "3/8", "verdictCounts": {"ok": 12}}
    integration["status"] = {"phase": "Suspended"}
    integration["spec"]["suspended"] = True
    # The response to a leak is the operator's business, not the agents'.
    integration["spec"]["policy"].update(mode="dry-run", killCap={"maxKills": 1, "windowSeconds": 60})
    integration["spec"]["killSwitch"]["actions"].pop()
    integration["spec"]["pagerduty"]["severity"] = {"stale": "info"}
    assert hashes(build_all(probe, integration)) == before


def test_hash_changes_exactly_for_the_workloads_a_spec_change_affects(
    probe: dict[str, Any], integration: dict[str, Any]
) -> None:
    p = "reference-relay-canaries"
    before = hashes(build_all(probe, integration))

    def changed(mutate: Any) -> set[str]:
        probe2, integration2 = copy.deepcopy(probe), copy.deepcopy(integration)
        mutate(probe2["spec"], integration2["spec"])
        after = hashes(build_all(probe2, integration2))
        return {name for (kind, name), digest in after.items() if before.get((kind, name)) != digest}

    every_deployment = set(manifests.expected_workload_names(probe))
    cameras = {f"{p}-camera"}
    viewers = {f"{p}-viewer"}

    assert changed(lambda s, i: s.update(fps=5)) == every_deployment
    assert changed(lambda s, i: s.update(frameSize={"width": 1280, "height": 720})) == cameras
    assert changed(lambda s, i: s.update(freshnessSeconds=30)) == viewers
    assert (
        changed(lambda s, i: i["viewer"]["snapshot"].update(url="http://relay:9000/{tenant}/{camera}.jpg"))
        == viewers
    )
    assert changed(lambda s, i: i["camera"]["push"].update(method="POST")) == cameras
    # The viewers confirm with the integration's verdict rules; its mode is not theirs.
    assert (
        changed(lambda s, i: i["policy"]["verdicts"]["foreign"].update(confirmation={"frames": 2})) == viewers
    )
    assert changed(lambda s, i: i["policy"].update(mode="alert-only", killCap={"maxKills": 1})) == set()
    assert changed(lambda s, i: s["customNetworkProfiles"][0].update(latency="900ms")) == viewers
    # A new profile rolls the viewers (they run it too) and leaves the cameras alone.
    assert changed(lambda s, i: s["networkProfiles"].append("extreme")) == viewers
    # A profile moved to tc gets a Deployment of its own; the cameras stay.
    assert changed(lambda s, i: s["customNetworkProfiles"][0].update(shaper="tc")) == {
        f"{p}-viewer",
        f"{p}-viewer-hub-wifi",
    }
    # A new tenant: its key in the Secret, its cameras in the camera pod, and every viewer
    # (they need its key to tell its frames from forgeries).
    assert (
        changed(lambda s, i: s["tenants"].append({"id": "charlie-3"})) == {f"{p}-keyring"} | every_deployment
    )


# -- agents' configuration ---------------------------------------------------------------


def test_keyring_secret_holds_one_item_per_tenant_each_with_exactly_its_key(probe: dict[str, Any]) -> None:
    keys = {"acme-7": bytes(range(32)), "bravo-2": bytes(range(1, 33))}
    secret = manifests.build_keyring_secret(probe, keys)
    assert secret["metadata"]["name"] == "reference-relay-canaries-keyring"
    # Not immutable: a tenant added later gets its item added (never an existing one
    # rewritten: the operator's business, controller.probes).
    assert "immutable" not in secret
    assert set(secret["data"]) == {"acme-7.json", "bravo-2.json"}
    for tenant, key in keys.items():
        keyring = Keyring.from_json(base64.b64decode(secret["data"][manifests.keyring_item(tenant)]).decode())
        assert dict(keyring.keys) == {tenant: key}
    assert manifests.keyring_data({"bravo-2": keys["bravo-2"]}) == {
        "bravo-2.json": secret["data"]["bravo-2.json"]
    }
    with pytest.raises(manifests.BuildError, match="at least 16 bytes"):
        manifests.build_keyring_secret(probe, {"bravo-2": b"short"})
    with pytest.raises(manifests.BuildError, match="no tenant 'zulu'"):
        manifests.build_keyring_secret(probe, {"zulu": keys["acme-7"]})


def test_each_pod_mounts_exactly_the_keyring_items_of_the_tenants_it_runs(
    probe: dict[str, Any], integration: dict[str, Any]
) -> None:
    built = deployments(build_all(probe, integration))

    def keyring(name: str) -> dict[str, Any]:
        volumes = {v["name"]: v for v in built[name]["spec"]["template"]["spec"]["volumes"]}
        return dict(volumes["keyring"]["secret"])

    for name in ("reference-relay-canaries-camera", "reference-relay-canaries-viewer"):
        assert keyring(name)["secretName"] == "reference-relay-canaries-keyring"
        assert keyring(name)["items"] == [
            {"key": "acme-7.json", "path": "acme-7.json"},
            {"key": "bravo-2.json", "path": "bravo-2.json"},
        ]


def test_agent_environment(probe: dict[str, Any], integration: dict[str, Any]) -> None:
    built = deployments(build_all(probe, integration))
    camera = env_of(built["reference-relay-canaries-camera"])
    viewer = env_of(built["reference-relay-canaries-viewer"])
    for env, role in ((camera, "camera"), (viewer, "viewer")):
        assert env["CANARYWATCH_ROLE"] == role
        assert env["CANARYWATCH_INTEGRATION"] == "reference-relay"
        assert env["CANARYWATCH_PROBE"] == "reference-relay-canaries"
        assert env["CANARYWATCH_TENANTS"] == "acme-7,bravo-2"
        assert env["CANARYWATCH_CAMERAS"] == "2"
        assert env["CANARYWATCH_FPS"] == "2"
        assert env["CANARYWATCH_KEYRING_DIR"] == manifests.KEYRING_DIR
        assert env["CANARYWATCH_TOKEN_DIR"] == manifests.TOKEN_DIR
        assert env["CANARYWATCH_NAMESPACE"] == {"fieldRef": {"fieldPath": "metadata.namespace"}}
    assert (camera["CANARYWATCH_FRAME_WIDTH"], camera["CANARYWATCH_FRAME_HEIGHT"]) == ("640", "360")
    assert json.loads(camera["CANARYWATCH_ADAPTER"]) == {
        "push": {
            "method": "PUT",
            "url": "http://canarywatch-relay:9000/v3/devices/{tenant}/{camera}/frame",
            "headers": {"Authorization": "Bearer {token}"},
        }
    }
    # The standalone config's integration.viewer block, limited to the probe's transports.
    viewer_adapter = json.loads(viewer["CANARYWATCH_ADAPTER"])
    assert set(viewer_adapter) == {"snapshot", "mjpeg", "events", "authzProbe", "pollInterval"}
    assert viewer_adapter["pollInterval"] == 0.5
    assert viewer_adapter["authzProbe"]["url"].endswith("/v3/devices/{tenant}/{camera}/live.jpg")
    assert viewer["CANARYWATCH_TRANSPORTS"] == "snapshot,mjpeg,events,authz"
    assert viewer["CANARYWATCH_FRESHNESS_SECONDS"] == "10"
    assert "CANARYWATCH_POLICY" not in camera
    assert json.loads(viewer["CANARYWATCH_POLICY"]) == {"verdicts": integration["spec"]["policy"]["verdicts"]}
    # Each profile's JSON is what the viewer hands to NetworkProfile.from_spec.
    profiles = json.loads(viewer["CANARYWATCH_NETWORK_PROFILES"])
    assert list(profiles) == ["good", "poor", "hub-wifi"]
    profile = NetworkProfile.from_spec(profiles["hub-wifi"], where="env")
    assert (profile.name, profile.bandwidth_bps, profile.latency_s, profile.loss) == (
        "hub-wifi",
        300_000,
        0.4,
        0.03,
    )
    assert NetworkProfile.from_spec(profiles["poor"], where="env") == POOR
    # Each tenant's token is a file of its own name: no token in the pod spec or env.
    for name in ("reference-relay-canaries-camera", "reference-relay-canaries-viewer"):
        volumes = built[name]["spec"]["template"]["spec"]["volumes"]
        token = next(v for v in volumes if v["name"] == "token")
        assert token["projected"]["sources"] == [
            {"secret": {"name": "canary-tokens", "items": [{"key": "acme-7", "path": "acme-7"}]}},
            {"secret": {"name": "canary-tokens", "items": [{"key": "bravo-2", "path": "bravo-2"}]}},
        ]


def test_secret_headers_become_env_references_never_values(
    probe: dict[str, Any], integration: dict[str, Any]
) -> None:
    api_key = {"header": "X-Api-Key", "secretKeyRef": {"name": "vendor-api", "key": "key"}}
    integration["spec"]["viewer"]["snapshot"]["headersFrom"] = [api_key]
    integration["spec"]["viewer"]["mjpeg"]["headersFrom"] = [api_key]
    for tenant in probe["spec"]["tenants"]:
        del tenant["tokenSecretRef"]
    built = deployments(build_all(probe, integration))
    viewer = built["reference-relay-canaries-viewer"]["spec"]["template"]["spec"]["containers"][0]
    env = {e["name"]: e for e in viewer["env"]}
    assert env["CANARYWATCH_SECRET_0"] == {
        "name": "CANARYWATCH_SECRET_0",
        "valueFrom": {"secretKeyRef": {"name": "vendor-api", "key": "key"}},
    }
    assert "CANARYWATCH_SECRET_1" not in env  # one Secret key, one variable
    adapter = json.loads(env["CANARYWATCH_ADAPTER"]["value"])
    assert adapter["snapshot"]["headersFrom"] == {"X-Api-Key": {"env": "CANARYWATCH_SECRET_0"}}
    assert adapter["mjpeg"]["headersFrom"] == {"X-Api-Key": {"env": "CANARYWATCH_SECRET_0"}}
    # No tenant has a token Secret: no token directory, no token volume.
    assert "CANARYWATCH_TOKEN_DIR" not in env
    assert all(m["name"] != "token" for m in viewer["volumeMounts"])


def test_a_transport_the_integration_lacks_is_a_build_error(
    probe: dict[str, Any], integration: dict[str, Any]
) -> None:
    del integration["spec"]["viewer"]["events"]
    with pytest.raises(manifests.BuildError) as error:
        manifests.build_probe_workloads(probe, integration, image=IMAGE)
    assert error.value.field == "spec.transports[2]"
    assert "viewer.events" in error.value.message
    probe["spec"]["transports"] = ["snapshot", "authz"]
    viewer = deployments(manifests.build_probe_workloads(probe, integration, image=IMAGE))[
        "reference-relay-canaries-viewer"
    ]
    assert set(json.loads(env_of(viewer)["CANARYWATCH_ADAPTER"])) == {
        "snapshot",
        "authzProbe",
        "pollInterval",
    }
    del integration["spec"]["viewer"]["authzProbe"]
    with pytest.raises(manifests.BuildError, match=r"transport authz needs viewer\.authzProbe"):
        manifests.build_probe_workloads(probe, integration, image=IMAGE)


def test_an_invalid_policy_is_a_build_error_naming_its_field(
    probe: dict[str, Any], integration: dict[str, Any]
) -> None:
    integration["spec"]["policy"]["verdicts"]["foreign"]["confirmation"] = {"frames": 6, "ofLast": 5}
    with pytest.raises(manifests.BuildError) as error:
        manifests.build_probe_workloads(probe, integration, image=IMAGE)
    assert error.value.field == "spec.policy.verdicts.foreign.confirmation.frames"
    assert "CameraIntegration" in error.value.message


def test_pulled_cameras_get_a_service(probe: dict[str, Any], integration: dict[str, Any]) -> None:
    assert manifests.build_camera_service(probe, integration) is None
    integration["spec"]["camera"] = {"serve": {"port": 8081}}
    service = manifests.build_camera_service(probe, integration)
    assert service is not None
    assert service["metadata"]["name"] == "reference-relay-canaries-camera"
    camera = deployments(build_all(probe, integration))["reference-relay-canaries-camera"]
    assert service["spec"]["selector"] == camera["spec"]["selector"]["matchLabels"]
    assert service["spec"]["ports"] == [
        {"name": "camera-http", "port": 8081, "targetPort": "camera-http", "protocol": "TCP"}
    ]
    ports = camera["spec"]["template"]["spec"]["containers"][0]["ports"]
    assert {"name": "camera-http", "containerPort": 8081, "protocol": "TCP"} in ports
    assert json.loads(env_of(camera)["CANARYWATCH_ADAPTER"]) == {"serve": {"host": "0.0.0.0", "port": 8081}}


def test_placement_and_resources(probe: dict[str, Any], integration: dict[str, Any]) -> None:
    probe["spec"]["placement"] = {
        "spreadAcross": "zones",
        "whenUnsatisfiable": "DoNotSchedule",
        "nodeSelector": {"kubernetes.io/arch": "arm64"},
    }
    built = deployments(build_all(probe, integration))
    viewer = built["reference-relay-canaries-viewer"]["spec"]["template"]["spec"]
    (spread,) = viewer["topologySpreadConstraints"]
    assert spread["topologyKey"] == "topology.kubernetes.io/zone"
    assert spread["whenUnsatisfiable"] == "DoNotSchedule"
    # Spread every viewer of the probe (all tenants and profiles), not one Deployment's.
    assert spread["labelSelector"]["matchLabels"] == {
        api.LABEL_PROBE: "reference-relay-canaries",
        api.LABEL_ROLE: "viewer",
    }
    (anti,) = viewer["affinity"]["podAntiAffinity"]["preferredDuringSchedulingIgnoredDuringExecution"]
    assert anti["podAffinityTerm"]["topologyKey"] == "topology.kubernetes.io/zone"
    assert (
        anti["podAffinityTerm"]["labelSelector"]["matchLabels"]
        == (built["reference-relay-canaries-viewer"]["spec"]["selector"]["matchLabels"])
    )
    assert viewer["nodeSelector"] == {"kubernetes.io/arch": "arm64"}
    assert "tolerations" not in viewer
    # The example overrides viewer requests/limits; cameras keep the defaults.
    assert viewer["containers"][0]["resources"] == {
        "requests": {"cpu": "100m", "memory": "128Mi"},
        "limits": {"cpu": "1", "memory": "256Mi"},
    }
    camera = built["reference-relay-canaries-camera"]["spec"]["template"]["spec"]
    assert camera["containers"][0]["resources"] == manifests.DEFAULT_RESOURCES["camera"]


def test_a_bad_profile_is_reported_on_the_probe(probe: dict[str, Any], integration: dict[str, Any]) -> None:
    probe["spec"]["customNetworkProfiles"][0]["bandwidth"] = "0bit"
    with pytest.raises(manifests.BuildError) as error:
        manifests.build_probe_workloads(probe, integration, image=IMAGE)
    assert error.value.field == "spec.customNetworkProfiles[hub-wifi].bandwidth"


# -- status -------------------------------------------------------------------------------


NOW = datetime(2026, 3, 14, 9, 30, tzinfo=UTC)


def live(deployment: dict[str, Any], *, ready: bool) -> dict[str, Any]:
    wanted = deployment["spec"]["replicas"]
    obj = copy.deepcopy(deployment)
    obj["metadata"]["generation"] = 2
    obj["status"] = {
        "observedGeneration": 2,
        "replicas": wanted,
        "updatedReplicas": wanted,
        "availableReplicas": wanted if ready else 0,
    }
    return obj


def test_status_counts_ready_workloads(probe: dict[str, Any], integration: dict[str, Any]) -> None:
    built = list(deployments(build_all(probe, integration)).values())
    stale = live(built[0], ready=True)
    stale["metadata"]["name"] = "reference-relay-canaries-viewer-removed-tc-profile"
    observed = [live(d, ready=i != 1) for i, d in enumerate(built)] + [stale]
    status = manifests.build_probe_status(
        probe,
        deployments=observed,
        keyring_tenants={"acme-7", "bravo-2"},
        verdict_counts={"ok": 1200, "stale": 3},
        last_frame_time=NOW - timedelta(seconds=2),
        now=NOW,
    )
    assert status["workloads"] == {"desired": 2, "ready": 1}
    assert status["ready"] == "1/2"
    assert status["tenants"] == 2
    assert status["verdictCounts"] == {"ok": 1200, "stale": 3}
    assert status["lastFrameTime"] == "2026-03-14T09:29:58Z"
    assert status["observedGeneration"] == 1
    ready, degraded, paused = status["conditions"]
    assert (paused["type"], paused["status"]) == ("Paused", "False")
    assert (ready["type"], ready["status"], ready["reason"]) == ("Ready", "False", "WorkloadsNotReady")
    assert built[1]["metadata"]["name"] in ready["message"]
    assert (degraded["type"], degraded["status"]) == ("Degraded", "False")

    later = NOW + timedelta(minutes=5)
    healed = manifests.build_probe_status(
        probe,
        deployments=[live(d, ready=True) for d in built],
        keyring_tenants={"acme-7", "bravo-2"},
        now=later,
        previous=status,
    )
    ready2, degraded2, _paused = healed["conditions"]
    assert (ready2["status"], ready2["reason"], ready2["lastTransitionTime"]) == (
        "True",
        "WorkloadsReady",
        "2026-03-14T09:35:00Z",
    )
    assert (
        degraded2["lastTransitionTime"] == degraded["lastTransitionTime"]
    )  # unchanged status keeps its time
    assert healed["verdictCounts"] == {"ok": 1200, "stale": 3}  # no new counts: previous ones kept
    assert healed["lastFrameTime"] == status["lastFrameTime"]  # never moves backwards


def test_status_reports_configuration_problems(probe: dict[str, Any]) -> None:
    status = manifests.build_probe_status(
        probe,
        deployments=[],
        keyring_tenants=set(),
        problems=["spec.integrationRef.name: CameraIntegration 'reference-relay' not found"],
        now=NOW,
    )
    ready, degraded, _paused = status["conditions"]
    assert (ready["status"], degraded["status"], degraded["reason"]) == (
        "False",
        "True",
        "ConfigurationProblem",
    )
    assert "not found" in degraded["message"]
    assert status["ready"] == "0/2" and status["tenants"] == 0
    with pytest.raises(ValueError, match="unknown verdicts"):
        manifests.build_probe_status(
            probe, deployments=[], keyring_tenants=(), verdict_counts={"leaky": 1}, now=NOW
        )
    with pytest.raises(ValueError, match="timezone-aware"):
        manifests.build_probe_status(probe, deployments=[], keyring_tenants=(), now=datetime(2026, 1, 1))


@pytest.mark.parametrize("paused", ["probe", "integration"])
def test_a_maintenance_pause_runs_no_pods_and_says_why(
    probe: dict[str, Any], integration: dict[str, Any], paused: str
) -> None:
    # spec.maintenance on the probe, or on its integration: the objects stay (keyrings,
    # RBAC, Services), every Deployment runs no replica; removing it rolls them back.
    running = deployments(build_all(probe, integration))
    held = {"probe": probe, "integration": integration}[paused]
    held["spec"]["maintenance"] = {"reason": "vendor upgrade 14:00-16:00"}
    objects = build_all(probe, integration)
    stopped = deployments(objects)
    assert stopped.keys() == running.keys()
    assert {d["spec"]["replicas"] for d in stopped.values()} == {0}
    assert {d["spec"]["replicas"] for d in running.values()} != {0}
    assert all(
        stopped[n]["metadata"]["annotations"][api.CONFIG_HASH_ANNOTATION]
        != running[n]["metadata"]["annotations"][api.CONFIG_HASH_ANNOTATION]
        for n in running
    )
    assert manifests.maintenance_reason(probe, integration) == "vendor upgrade 14:00-16:00"
    status = manifests.build_probe_status(
        probe,
        deployments=[live(d, ready=True) for d in stopped.values()],
        keyring_tenants={"acme-7", "bravo-2"},
        now=NOW,
        maintenance=manifests.maintenance_reason(probe, integration),
    )
    conditions = {c["type"]: c for c in status["conditions"]}
    assert (conditions["Paused"]["status"], conditions["Paused"]["reason"]) == ("True", "Maintenance")
    assert conditions["Paused"]["message"] == "vendor upgrade 14:00-16:00"
