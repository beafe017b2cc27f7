"""The spec model: the CRDs shipped in the package are the repository's, their schemas
validate and default a spec as the API server does, and errors name the field."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from canarywatch.api import KIND_INCIDENT, KIND_INTEGRATION, KIND_PROBE
from canarywatch.spec import CRD_FILES, Schema, SpecError, crd, read_probe

REPO = Path(__file__).resolve().parents[2]
PACKAGE_CRDS = REPO / "operator" / "canarywatch" / "crds"


def test_the_package_ships_byte_identical_copies_of_the_crds() -> None:
    source = {p.name: p.read_bytes() for p in (REPO / "crds").glob("*.yaml")}
    shipped = {p.name: p.read_bytes() for p in PACKAGE_CRDS.glob("*.yaml")}
    assert shipped.keys() == source.keys() == set(CRD_FILES.values())
    stale = sorted(name for name in source if shipped[name] != source[name])
    assert not stale, f"out of date: cp crds/{{{','.join(stale)}}} operator/canarywatch/crds/"
    for kind in (KIND_INTEGRATION, KIND_PROBE, KIND_INCIDENT):
        assert crd(kind)["spec"]["names"]["kind"] == kind


def minimal_probe(**extra: Any) -> dict[str, Any]:
    return {"integrationRef": {"name": "relay"}, "tenants": [{"id": "acme-7"}], **extra}


def test_defaults_come_from_the_crd_at_every_depth() -> None:
    schema = Schema.of(KIND_PROBE)
    spec = schema.read(minimal_probe(frameSize={"width": 320}), where="spec")
    props = crd(KIND_PROBE)["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
    assert spec["frameSize"] == {
        "width": 320,
        "height": props["properties"]["frameSize"]["properties"]["height"]["default"],
    }
    assert spec["placement"] == {"spreadAcross": "nodes", "whenUnsatisfiable": "ScheduleAnyway"}
    assert spec["networkProfiles"] == ["good", "poor"]
    custom = schema.read(minimal_probe(customNetworkProfiles=[{"name": "hub"}]), where="spec")
    assert custom["customNetworkProfiles"] == [{"name": "hub", "shaper": "application"}]


def test_reading_does_not_modify_the_document_and_drops_nulls() -> None:
    doc = minimal_probe(fps=None)
    spec = Schema.of(KIND_PROBE).read(doc, where="spec")
    assert doc == minimal_probe(fps=None)
    assert spec["fps"] == 2  # a null is absent, as on the API server: defaulted


@pytest.mark.parametrize(
    ("extra", "field", "message"),
    [
        ({"colour": "yellow"}, "probe.colour", "unknown field; accepted: camerasPerTenant"),
        ({"fps": "fast"}, "probe.fps", "expected a number, got str 'fast'"),
        ({"fps": 31}, "probe.fps", "expected a number in 0.1..30, got 31"),
        ({"camerasPerTenant": 0}, "probe.camerasPerTenant", "expected an integer in 1..16, got 0"),
        ({"camerasPerTenant": True}, "probe.camerasPerTenant", "expected an integer, got a boolean"),
        ({"transports": ["snapshot", "webrtc"]}, "probe.transports[1]", "expected one of snapshot, mjpeg"),
        ({"networkProfiles": ["good", "good"]}, "probe.networkProfiles[1]", "'good' is listed twice"),
        ({"networkProfiles": []}, "probe.networkProfiles", "expected at least 1 item(s), got 0"),
        ({"tenants": [{"id": "a"}, {"id": "a"}]}, "probe.tenants[1].id", "id 'a' is listed twice"),
        ({"tenants": [{"id": "a-"}]}, "probe.tenants[0].id", "does not match"),
        ({"tenants": [{"id": f"t{i}"} for i in range(17)]}, "probe.tenants", "at most 16 items"),
        ({"frameSize": {"width": 1}}, "probe.frameSize.width", "in 64..3840"),
        ({"integrationRef": {}}, "probe.integrationRef.name", "required"),
    ],
)
def test_schema_errors_name_the_field(extra: dict[str, Any], field: str, message: str) -> None:
    with pytest.raises(SpecError) as error:
        Schema.of(KIND_PROBE).read(minimal_probe(**extra), where="probe")
    assert error.value.field == field, str(error.value)
    assert message in error.value.message


def test_objects_that_preserve_unknown_fields_stay_open() -> None:
    action = {"name": "flag", "type": "patch"}
    action["patch"] = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "name": "f",
        "mergePatch": {"data": {"x": "1"}},
    }
    spec = {
        "camera": {"serve": {}},
        "viewer": {"snapshot": {"url": "http://h/{tenant}/{camera}"}},
        "killSwitch": {"actions": [action]},
    }
    read = Schema.of(KIND_INTEGRATION).read(spec, where="spec")
    assert read["killSwitch"]["actions"][0]["patch"]["mergePatch"] == {"data": {"x": "1"}}
    assert read["camera"]["serve"] == {"port": 8080}
    assert read["viewer"]["snapshot"]["method"] == "GET"
    assert read["viewer"]["pollInterval"] == 0.5


def test_the_example_probe_reads_with_its_custom_profile() -> None:
    (_, probe) = yaml.safe_load_all((REPO / "examples" / "canaryprobe.yaml").read_text())
    spec = read_probe(probe["spec"], name="p")
    assert spec.integration == "reference-relay"
    assert [p.name for p in spec.profiles] == ["good", "poor", "hub-wifi"]
    assert spec.profile("hub-wifi").network_profile(where="x").name == "hub-wifi"


@pytest.mark.parametrize(
    ("extra", "field"),
    [
        ({"networkProfiles": ["good", "lossy"]}, "spec.networkProfiles[1]"),
        ({"customNetworkProfiles": [{"name": "poor"}]}, "spec.customNetworkProfiles[0].name"),
        (
            {
                "networkProfiles": ["x"],
                "customNetworkProfiles": [{"name": "x", "preset": "poor", "loss": "1%"}],
            },
            "spec.customNetworkProfiles[0].preset",
        ),
        (
            {"networkProfiles": ["x"], "customNetworkProfiles": [{"name": "x", "bandwidth": "0bit"}]},
            "spec.customNetworkProfiles[x].bandwidth",
        ),
    ],
)
def test_the_crd_cel_rules_are_checked_by_the_reader(extra: dict[str, Any], field: str) -> None:
    with pytest.raises(SpecError) as error:
        read_probe(minimal_probe(**extra), name="p")
    assert error.value.field == field, str(error.value)


@pytest.mark.parametrize(
    "path", sorted((REPO / "examples" / "invalid").glob("probe-*.yaml")), ids=lambda path: path.stem
)
def test_every_probe_the_api_server_refuses_the_reader_refuses(path: Path) -> None:
    """examples/invalid: what the cluster tier shows the API server refusing (schema or
    CEL), the spec model refuses too, at the field the API server names (or inside it)."""
    text = path.read_text()
    (expected,) = [line.split(": ", 1)[1] for line in text.splitlines() if line.startswith("# expect-field:")]
    with pytest.raises(SpecError) as error:
        read_probe(yaml.safe_load(text)["spec"], name="p")
    assert error.value.field.startswith(expected), str(error.value)


@pytest.mark.parametrize(
    ("path", "value", "field", "message"),
    [
        ("times.recorded", "2026-03-14 09:26", "spec.times.recorded", "not an RFC 3339 date-time"),
        ("times.recorded", "2026-13-14T09:26:53Z", "spec.times.recorded", "not an RFC 3339 date-time"),
        ("evidence.thumbnail", "not base64!", "spec.evidence.thumbnail", "not base64"),
        ("observed.seq", 2**63, "spec.observed.seq", "int64"),
        ("observed.colour", "red", "spec.observed.colour", "unknown field"),
    ],
)
def test_formats_are_checked_as_the_api_server_does(
    path: str, value: object, field: str, message: str
) -> None:
    (incident,) = yaml.safe_load_all((REPO / "examples" / "leakincident.yaml").read_text())
    spec = incident["spec"]
    Schema.of(KIND_INCIDENT).read(spec, where="spec")  # the example is valid
    node = spec
    *parents, last = path.split(".")
    for key in parents:
        node = node[key]
    node[last] = value
    with pytest.raises(SpecError) as error:
        Schema.of(KIND_INCIDENT).read(spec, where="spec")
    assert error.value.field == field, str(error.value)
    assert message in error.value.message
