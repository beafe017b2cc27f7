"""The operator and the CLI read one spec: the same CanaryProbe values are refused by
both, with the field named the same way, and the same defaults come out.

Before the spec model the two parsers disagreed (``controller.manifests.parse_probe``
against ``standalone.config._probe``); each case below was accepted by one of them and
refused by the CRD. The CLI's ``probe`` block is the CanaryProbe ``spec``; only the
prefix of the path differs (``probe.`` for the file, ``spec.`` for the object).
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml
from manifests import example

from canarywatch.controller import manifests
from canarywatch.standalone import ConfigError, StandaloneConfig

STANDALONE = Path(__file__).resolve().parents[2] / "examples" / "standalone.yaml"


def probe_object() -> dict[str, Any]:
    obj = example("CanaryProbe")
    obj["metadata"] = {**obj["metadata"], "namespace": "cameras", "uid": "u-1"}
    return obj


def config() -> dict[str, Any]:
    doc: dict[str, Any] = yaml.safe_load(STANDALONE.read_text())
    return doc


def put(node: Any, path: str, value: object) -> None:
    keys = [int(k) if k.isdigit() else k for k in path.split(".")]
    for key in keys[:-1]:
        node = node[key]
    node[keys[-1]] = value


# (path in the spec, value, the field named in the error)
DISAGREEMENTS = [
    # the operator's parser took any count, rate, size or bound > 0
    ("camerasPerTenant", 17, "camerasPerTenant"),
    ("fps", 31, "fps"),
    ("fps", 0.05, "fps"),
    ("frameSize", {"width": 32, "height": 360}, "frameSize.width"),
    ("frameSize", {"width": 640, "height": 4000}, "frameSize.height"),
    ("freshnessSeconds", 0.1, "freshnessSeconds"),
    # ... and an empty profile list (a probe without viewers)
    ("networkProfiles", [], "networkProfiles"),
    # the CLI's parser took a profile twice (every stream twice) ...
    ("networkProfiles", ["poor", "poor"], "networkProfiles[1]"),
    # ... and a tenant id ending in '-', '.' or '_', which the CRD refuses
    ("tenants.0.id", "acme-", "tenants[0].id"),
    # neither checked the CRD's 16 tenants at most
    ("tenants", [{"id": f"t{i}", "token": "x"} for i in range(17)], "tenants"),
]


@pytest.mark.parametrize(("path", "value", "field"), DISAGREEMENTS)
def test_both_shells_refuse_what_the_crd_refuses(path: str, value: object, field: str) -> None:
    probe = probe_object()
    put(probe["spec"], path, copy.deepcopy(value))
    with pytest.raises(manifests.BuildError) as built:
        manifests.parse_probe(probe)
    assert built.value.field == f"spec.{field}", str(built.value)

    doc = config()
    put(doc["probe"], path, copy.deepcopy(value))
    with pytest.raises(ConfigError) as read:
        StandaloneConfig.from_mapping(doc)
    assert read.value.field == f"probe.{field}", str(read.value)
    assert read.value.message == built.value.message


def test_both_shells_apply_the_crds_defaults() -> None:
    probe = probe_object()
    probe["spec"] = {"integrationRef": {"name": "relay"}, "tenants": [{"id": "acme-7"}]}
    operator = manifests.parse_probe(probe)
    doc = config()
    doc["probe"] = {"tenants": [{"id": "acme-7", "token": "t"}]}
    standalone = StandaloneConfig.from_mapping(doc).probe
    assert standalone.spec.tenant_ids == operator.tenant_ids
    for name in ("cameras", "fps", "width", "height", "profiles", "transports", "freshness_seconds"):
        assert getattr(standalone.spec, name) == getattr(operator, name), name
    assert [p.name for p in standalone.network_profiles] == ["good", "poor"]


def test_the_cli_reads_the_crds_custom_network_profiles() -> None:
    """The file once took explicit profiles inline in networkProfiles, a shape the CRD
    does not have; it now takes the CRD's customNetworkProfiles."""
    doc = config()
    doc["probe"]["networkProfiles"] = ["poor", "hub-wifi"]
    doc["probe"]["customNetworkProfiles"] = [{"name": "hub-wifi", "bandwidth": "300kbit", "latency": "400ms"}]
    profiles = StandaloneConfig.from_mapping(doc).probe.network_profiles
    assert [p.name for p in profiles] == ["poor", "hub-wifi"]
    assert profiles[1].latency_s == pytest.approx(0.4)
    doc["probe"]["customNetworkProfiles"][0]["shaper"] = "tc"
    with pytest.raises(ConfigError) as error:
        StandaloneConfig.from_mapping(doc)
    assert error.value.field == "probe.customNetworkProfiles[0].shaper"


@pytest.mark.parametrize(
    ("path", "value", "field"),
    [
        ("probe.placement", {"spreadAcross": "zones"}, "probe.placement"),
        ("probe.integrationRef", {"name": "relay"}, "probe.integrationRef"),
        ("integration.suspended", True, "integration.suspended"),
        ("integration.incidentHistoryLimit", 10, "integration.incidentHistoryLimit"),
        ("probe.tenants.0.tokenSecretRef", {"name": "s", "key": "k"}, "probe.tenants[0].tokenSecretRef"),
        (
            "integration.pagerduty",
            {"routingKeySecretRef": {"name": "pd", "key": "k"}},
            "integration.pagerduty.routingKeySecretRef",
        ),
    ],
)
def test_kubernetes_only_fields_are_refused_with_a_hint(path: str, value: object, field: str) -> None:
    doc = config()
    put(doc, path, value)
    with pytest.raises(ConfigError) as error:
        StandaloneConfig.from_mapping(doc)
    assert error.value.field == field, str(error.value)
    assert "Kubernetes" in error.value.message


def test_integration_values_are_the_crds_in_both_shells() -> None:
    """The operator's parser took any poll interval > 0 and any push method; the CLI's
    took 0.05..3600 (the CRD's range) and left method checks to the request."""
    probe, integration = probe_object(), example("CameraIntegration")
    integration["metadata"] = {**integration["metadata"], "namespace": "cameras"}
    integration["spec"]["viewer"]["pollInterval"] = 0.01
    with pytest.raises(manifests.BuildError) as built:
        manifests.build_probe_workloads(probe, integration, image="canarywatch:test")
    assert built.value.field == "spec.viewer.pollInterval"
    doc = config()
    doc["integration"]["viewer"]["pollInterval"] = 0.01
    with pytest.raises(ConfigError) as read:
        StandaloneConfig.from_mapping(doc)
    assert read.value.field == "integration.viewer.pollInterval"

    integration["spec"]["viewer"]["pollInterval"] = 1
    integration["spec"]["camera"] = {"push": {"method": "DELETE", "url": "http://h/{tenant}/{camera}"}}
    with pytest.raises(manifests.BuildError) as built:
        manifests.build_probe_workloads(probe, integration, image="canarywatch:test")
    assert built.value.field == "spec.camera.push.method"


def test_webhook_retries_and_content_type_of_the_crd_reach_the_cli() -> None:
    doc = config()
    doc["integration"]["killSwitch"]["webhook"] |= {"maxAttempts": 2, "contentType": "text/plain"}
    (action,) = StandaloneConfig.from_mapping(doc).integration.kill_actions
    assert action.max_attempts == 2  # type: ignore[union-attr]
    assert action.request.content_type == "text/plain"  # type: ignore[union-attr]


@pytest.mark.parametrize("endpoint", ["camera.push", "viewer.snapshot"])
def test_a_shared_camera_endpoint_is_refused_as_the_crd_refuses_it(endpoint: str) -> None:
    """examples/invalid/integration-shared-camera-endpoint.yaml: the API server refuses a
    per-camera endpoint without {camera}; the CLI's parser used to take it, and every
    canary camera of a tenant then published to (or was fetched from) one URL."""
    doc = config()
    put(doc["integration"], f"{endpoint}.url", "http://127.0.0.1:9000/v3/devices/{tenant}/frame")
    with pytest.raises(ConfigError) as error:
        StandaloneConfig.from_mapping(doc)
    assert error.value.field == f"integration.{endpoint}.url"
    assert "{camera}" in error.value.message
