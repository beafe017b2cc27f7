"""The CRDs in a real API server: examples apply, invalid specs are rejected with
messages that name the field, defaults (the spec model's the same as the server's),
printer columns, the status subresource, the policy schema agreeing with
``Policy.from_mapping``, and the builders' manifests (RBAC included) accepted and
enforced as built."""

from __future__ import annotations

import base64
import copy
import itertools
import json
import re
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import controlplane
import cv2
import pytest
import skimage
import yaml
from kubernetes.client.exceptions import ApiException
from manifests import CRD_FILES, EXAMPLES, REPO, documents, example
from polling import eventually

from canarywatch.agents.reporting import build_leak_incident
from canarywatch.controller import manifests
from canarywatch.incidents.evidence import collect_evidence
from canarywatch.incidents.policy import Policy, PolicyError
from canarywatch.incidents.records import IncidentRecord
from canarywatch.markers import FrameSpec, Keyring, encode_image, render_frame
from canarywatch.spec import Schema
from canarywatch.verdicts import Verdict

pytestmark = pytest.mark.cluster

INVALID_EXAMPLES = sorted((REPO / "examples" / "invalid").glob("*.yaml"))
GROUP_VERSION = "canarywatch.io/v1alpha1"
MANAGER = "canarywatch-tests"
TABLE = "application/json;as=Table;v=v1;g=meta.k8s.io"

# kind -> (API path prefix, plural) for everything these tests write.
RESOURCES = {
    "CameraIntegration": (f"/apis/{GROUP_VERSION}", "cameraintegrations"),
    "CanaryProbe": (f"/apis/{GROUP_VERSION}", "canaryprobes"),
    "LeakIncident": (f"/apis/{GROUP_VERSION}", "leakincidents"),
    "Secret": ("/api/v1", "secrets"),
    "ServiceAccount": ("/api/v1", "serviceaccounts"),
    "Service": ("/api/v1", "services"),
    "ConfigMap": ("/api/v1", "configmaps"),
    "Deployment": ("/apis/apps/v1", "deployments"),
    "Role": ("/apis/rbac.authorization.k8s.io/v1", "roles"),
    "RoleBinding": ("/apis/rbac.authorization.k8s.io/v1", "rolebindings"),
    "PodDisruptionBudget": ("/apis/policy/v1", "poddisruptionbudgets"),
}


# -- talking to the API server -------------------------------------------------------------


def request(
    api_client: Any,
    method: str,
    path: str,
    *,
    body: Any = None,
    query: list[tuple[str, str]] | None = None,
    content_type: str = "application/json",
    accept: str = "application/json",
) -> Any:
    """One raw API call (the typed client has no server-side apply or Table support)."""
    serialized = api_client.param_serialize(
        method,
        path,
        query_params=query or [],
        header_params={"Content-Type": content_type, "Accept": accept},
        body=body,
        auth_settings=["BearerToken"],
    )
    response = api_client.call_api(*serialized)
    response.read()
    if response.status >= 400:
        raise ApiException(http_resp=response)
    return json.loads(response.data) if response.data else None


def object_path(obj: dict[str, Any], namespace: str | None = None, subresource: str = "") -> str:
    prefix, plural = RESOURCES[obj["kind"]]
    ns = f"/namespaces/{namespace}" if namespace else ""
    name = f"/{obj['metadata']['name']}" if obj.get("metadata", {}).get("name") else ""
    return f"{prefix}{ns}/{plural}{name}{'/' + subresource if subresource else ''}"


def apply(api_client: Any, obj: dict[str, Any], namespace: str, *, dry_run: bool = False) -> Any:
    """``kubectl apply --server-side`` of one object, with strict field validation."""
    query = [("fieldManager", MANAGER), ("fieldValidation", "Strict"), ("force", "true")]
    if dry_run:
        query.append(("dryRun", "All"))
    return request(
        api_client,
        "PATCH",
        object_path(obj, namespace),
        body=obj,
        query=query,
        content_type="application/apply-patch+yaml",
    )


def get(api_client: Any, kind: str, name: str, namespace: str) -> Any:
    return request(api_client, "GET", object_path({"kind": kind, "metadata": {"name": name}}, namespace))


def merge_patch(
    api_client: Any, kind: str, name: str, namespace: str, patch: Any, subresource: str = ""
) -> Any:
    path = object_path({"kind": kind, "metadata": {"name": name}}, namespace, subresource)
    return request(api_client, "PATCH", path, body=patch, content_type="application/merge-patch+json")


def apply_example_probe(api_client: Any, namespace: str) -> Any:
    """The examples' CameraIntegration and CanaryProbe applied; the probe as read back."""
    for kind in ("CameraIntegration", "CanaryProbe"):
        apply(api_client, example(kind), namespace)
    return get(api_client, "CanaryProbe", "reference-relay-canaries", namespace)


def rejection(call: Callable[[], Any]) -> tuple[int, str]:
    """Status and message of a call that must fail."""
    with pytest.raises(ApiException) as rejected:
        call()
    error = rejected.value
    try:
        message = json.loads(error.body)["message"]
    except (TypeError, ValueError, KeyError):
        message = str(error.body)
    return error.status, message


# -- fixtures -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def crds(control_plane: controlplane.ControlPlane) -> list[dict[str, Any]]:
    """The CRDs of crds/, installed (server-side apply) and established."""
    api = control_plane.api_client
    installed = []
    for path in CRD_FILES:
        crd = yaml.safe_load(path.read_text())
        installed.append(
            request(
                api,
                "PATCH",
                f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{crd['metadata']['name']}",
                body=crd,
                query=[("fieldManager", MANAGER), ("fieldValidation", "Strict"), ("force", "true")],
                content_type="application/apply-patch+yaml",
            )
        )

    def established() -> list[dict[str, Any]] | None:
        current = [
            request(
                api, "GET", f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{c['metadata']['name']}"
            )
            for c in installed
        ]
        for crd in current:
            conditions = {c["type"]: c["status"] for c in ((crd.get("status") or {}).get("conditions") or [])}
            if conditions.get("Established") != "True":
                return None
        try:  # discovery has caught up when the resources can be listed
            for _, plural in (RESOURCES[k] for k in ("CameraIntegration", "CanaryProbe", "LeakIncident")):
                request(api, "GET", f"/apis/{GROUP_VERSION}/{plural}")
        except ApiException:
            return None
        return current

    return eventually(established, timeout=30, what="the CRDs to be established")


# -- the CRDs themselves --------------------------------------------------------------------


def test_crds_are_structural_and_carry_names_and_categories(crds: list[dict[str, Any]]) -> None:
    by_kind = {crd["spec"]["names"]["kind"]: crd for crd in crds}
    assert set(by_kind) == {"CameraIntegration", "CanaryProbe", "LeakIncident"}
    short_names = {"CameraIntegration": ["camint"], "CanaryProbe": ["cprobe"], "LeakIncident": ["leak"]}
    for kind, crd in by_kind.items():
        conditions = {c["type"]: c for c in crd["status"]["conditions"]}
        assert conditions["Established"]["status"] == "True"
        assert conditions["NamesAccepted"]["status"] == "True"
        assert "NonStructuralSchema" not in conditions, conditions.get("NonStructuralSchema")
        assert crd["spec"]["group"] == "canarywatch.io"
        (version,) = crd["spec"]["versions"]
        assert (version["name"], version["served"], version["storage"]) == ("v1alpha1", True, True)
        assert version["subresources"] == {"status": {}}
        assert crd["spec"]["names"]["categories"] == ["canarywatch"]
        assert crd["spec"]["names"]["shortNames"] == short_names[kind]


# -- examples ----------------------------------------------------------------------------


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_example_applies_server_side(
    control_plane: controlplane.ControlPlane, crds: Any, namespace: str, path: Path
) -> None:
    api = control_plane.api_client
    for doc in documents(path):
        applied = apply(api, doc, namespace)
        assert applied["metadata"]["uid"]
        stored = get(api, doc["kind"], doc["metadata"]["name"], namespace)
        if doc["kind"] in ("CameraIntegration", "CanaryProbe", "LeakIncident"):
            assert_contains(stored["spec"], doc["spec"])  # nothing pruned, nothing rewritten
            # The spec model (both shells) defaults exactly as the API server does.
            assert Schema.of(doc["kind"]).read(doc["spec"], where="spec") == stored["spec"]


def assert_contains(actual: Any, expected: Any, where: str = "spec") -> None:
    """Every value of ``expected`` is in ``actual`` (which may add defaults)."""
    if isinstance(expected, dict):
        assert isinstance(actual, dict), where
        for key, value in expected.items():
            assert key in actual, f"{where}.{key} was dropped"
            assert_contains(actual[key], value, f"{where}.{key}")
    elif isinstance(expected, list):
        assert isinstance(actual, list) and len(actual) == len(expected), where
        for index, (a, e) in enumerate(zip(actual, expected, strict=True)):
            assert_contains(a, e, f"{where}[{index}]")
    else:
        assert actual == expected, where


def _expectations(path: Path) -> tuple[str, str]:
    text = path.read_text()
    field = re.search(r"^# expect-field: (.+)$", text, re.M)
    message = re.search(r"^# expect-message: (.+)$", text, re.M)
    assert field and message, f"{path.name} must say what it expects (# expect-field:, # expect-message:)"
    return field.group(1).strip(), message.group(1).strip()


@pytest.mark.parametrize("path", INVALID_EXAMPLES, ids=lambda p: p.name)
def test_invalid_example_is_rejected_naming_the_field(
    control_plane: controlplane.ControlPlane, crds: Any, namespace: str, path: Path
) -> None:
    field, expected = _expectations(path)
    (obj,) = documents(path)
    status, message = rejection(lambda: apply(control_plane.api_client, obj, namespace))
    # 422 Invalid for schema and CEL rules; server-side apply reports duplicate list-map
    # keys as 500 and undeclared fields as 400 (upstream behaviour), naming the field too.
    assert status in (400, 422, 500), message
    # The field itself, not a parent or a child of it (SSA writes paths with a leading dot).
    named = re.search(rf"(?<![\w-]){re.escape(field)}(?![\w.\[-])", message)
    assert named, f"{field!r} not named in: {message}"
    assert expected in message, message
    with pytest.raises(ApiException) as missing:
        get(control_plane.api_client, obj["kind"], obj["metadata"]["name"], namespace)
    assert missing.value.status == 404


def test_every_rejection_scenario_is_named_once() -> None:
    expectations = [_expectations(p) for p in INVALID_EXAMPLES]
    assert len(set(expectations)) == len(expectations)
    kinds = {documents(p)[0]["kind"] for p in INVALID_EXAMPLES}
    assert kinds == {"CameraIntegration", "CanaryProbe", "LeakIncident"}


# -- defaults ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "publish",
    [
        {"protocol": "rtsp", "url": "rtsp://{tenant}:{token}@ingest:8554/{tenant}/{camera}"},
        {"protocol": "rtmp", "url": "rtmp://ingest/live/{tenant}-{camera}?token={token}", "bitrate": 300000},
        {"protocol": "mjpeg", "url": "http://ingest/{tenant}/{camera}/stream", "keyframeInterval": 1},
    ],
)
def test_a_streaming_camera_applies_with_its_defaults(
    control_plane: controlplane.ControlPlane, crds: Any, namespace: str, publish: dict[str, Any]
) -> None:
    integration = {
        "apiVersion": GROUP_VERSION,
        "kind": "CameraIntegration",
        "metadata": {"name": f"streams-{publish['protocol']}"},
        "spec": {
            "camera": {"publish": publish},
            "viewer": {"snapshot": {"url": "http://relay/{tenant}/{camera}.jpg"}},
            "policy": {"mode": "alert-only"},
        },
    }
    spec = apply(control_plane.api_client, integration, namespace)["spec"]
    assert Schema.of("CameraIntegration").read(integration["spec"], where="spec") == spec
    stored = spec["camera"]["publish"]
    assert stored == {"keyframeInterval": 2, "bitrate": 1000000, **publish}


def test_a_hub_viewer_applies_with_its_defaults(
    control_plane: controlplane.ControlPlane, crds: Any, namespace: str
) -> None:
    hub = {"url": "http://relay/v3/smarthome/fulfillment", "headers": {"Authorization": "Bearer {token}"}}
    integration = {
        "apiVersion": GROUP_VERSION,
        "kind": "CameraIntegration",
        "metadata": {"name": "smart-display"},
        "spec": {"camera": {"serve": {}}, "viewer": {"hub": hub}, "policy": {"mode": "alert-only"}},
    }
    spec = apply(control_plane.api_client, integration, namespace)["spec"]
    assert Schema.of("CameraIntegration").read(integration["spec"], where="spec") == spec
    assert spec["viewer"]["hub"] == {**hub, "protocol": "google", "device": "{camera}"}


def test_defaults_are_applied(control_plane: controlplane.ControlPlane, crds: Any, namespace: str) -> None:
    api = control_plane.api_client
    webhook_action = {
        "name": "off",
        "type": "webhook",
        "webhook": {"url": "http://relay/kill", "resume": {"url": "http://relay/on"}},
    }
    scale_action = {"name": "scale", "type": "scale", "scale": {"name": "relay"}}
    network_policy_action = {
        "name": "cut",
        "type": "networkPolicy",
        "networkPolicy": {"podSelector": {"matchLabels": {"app": "relay"}}},
    }
    integration = {
        "apiVersion": GROUP_VERSION,
        "kind": "CameraIntegration",
        "metadata": {"name": "minimal"},
        "spec": {
            "camera": {"serve": {}},
            "viewer": {"snapshot": {"url": "http://relay/{tenant}/{camera}.jpg"}},
            "killSwitch": {"actions": [webhook_action, scale_action, network_policy_action]},
        },
    }
    spec = apply(api, integration, namespace)["spec"]
    assert Schema.of("CameraIntegration").read(integration["spec"], where="spec") == spec
    assert spec["suspended"] is False
    assert spec["resolveAfterCleanSeconds"] == 300
    assert spec["policy"] == {"mode": "enforce"}
    assert spec["camera"]["serve"] == {"port": 8080}
    assert spec["viewer"]["snapshot"]["method"] == "GET"
    assert spec["viewer"]["pollInterval"] == 0.5
    webhook, scale, cut = (a[a["type"]] for a in spec["killSwitch"]["actions"])
    assert (webhook["method"], webhook["contentType"], webhook["timeout"], webhook["maxAttempts"]) == (
        "POST",
        "application/json",
        10,
        4,
    )
    assert webhook["resume"]["method"] == "POST"
    assert scale["kind"] == "Deployment"
    assert cut["direction"] == "Both"

    probe = {
        "apiVersion": GROUP_VERSION,
        "kind": "CanaryProbe",
        "metadata": {"name": "minimal"},
        "spec": {
            "integrationRef": {"name": "minimal"},
            "tenants": [{"id": "acme-7"}],
            "customNetworkProfiles": [{"name": "hub", "latency": "300ms"}],
        },
    }
    spec = apply(api, probe, namespace)["spec"]
    # The builders apply the same defaults to a spec the server has not defaulted.
    assert Schema.of("CanaryProbe").read(probe["spec"], where="spec") == spec
    for key, value in manifests.PROBE_DEFAULTS.items():
        assert spec[key] == value, key
    assert spec["customNetworkProfiles"] == [{"name": "hub", "latency": "300ms", "shaper": "application"}]


# -- printer columns ---------------------------------------------------------------------


def table(api_client: Any, kind: str, namespace: str) -> tuple[list[str], dict[str, list[Any]]]:
    prefix, plural = RESOURCES[kind]
    listing = request(api_client, "GET", f"{prefix}/namespaces/{namespace}/{plural}", accept=TABLE)
    columns = [c["name"] for c in listing["columnDefinitions"]]
    rows = {row["cells"][0]: row["cells"] for row in listing["rows"]}
    return columns, rows


def test_printer_columns_tell_the_story(
    control_plane: controlplane.ControlPlane, crds: Any, namespace: str
) -> None:
    api = control_plane.api_client
    for path in EXAMPLES:
        for doc in documents(path):
            apply(api, doc, namespace)
    leak = "reference-relay-cross-tenant-7k2qd"
    statuses = {
        ("CameraIntegration", "reference-relay"): {
            "phase": "KillSwitchFailed",
            "killSwitch": {"state": "EngageFailed", "incident": leak},
            "openIncidents": 1,
            "incidents": 1,
            "lastIncident": {"name": leak, "verdict": "cross_tenant", "time": "2026-03-14T09:26:53Z"},
        },
        ("CanaryProbe", "reference-relay-canaries"): {
            "tenants": 2,
            "ready": "8/8",
            "lastFrameTime": "2026-03-14T09:26:54Z",
        },
        ("LeakIncident", leak): {
            "state": "Open",
            "occurrences": 3,
            "paged": {"result": "Accepted"},
            "shutdown": {"done": True, "seconds": 0.4},
        },
    }
    for (kind, name), status in statuses.items():
        merge_patch(api, kind, name, namespace, {"status": status}, subresource="status")

    columns, rows = table(api, "CameraIntegration", namespace)
    # A kill switch that did not complete shows as such, not as "Suspended".
    assert columns == [
        "Name",
        "Phase",
        "Mode",
        "Kill Switch",
        "Held For",
        "Open",
        "Incidents",
        "Last Leak",
        "Age",
    ]
    assert rows["reference-relay"][1:7] == ["KillSwitchFailed", "enforce", "EngageFailed", leak, 1, 1]
    assert rows["reference-relay"][7]  # rendered as an age

    columns, rows = table(api, "CanaryProbe", namespace)
    assert columns == ["Name", "Integration", "Tenants", "Ready", "Last Frame", "Detects", "Age"]
    assert rows["reference-relay-canaries"][1:4] == ["reference-relay", 2, "8/8"]

    columns, rows = table(api, "LeakIncident", namespace)
    assert columns == [
        "Name",
        "Integration",
        "Verdict",
        "Path",
        "Network",
        "Viewer",
        "Observed",
        "State",
        "Occurrences",
        "Paged",
        "Shut Down",
        "Age",
    ]
    assert rows["reference-relay-cross-tenant-7k2qd"][1:11] == [
        "reference-relay",
        "cross_tenant",
        "snapshot",
        "poor",
        "bravo-2",
        "acme-7",
        "Open",
        3,
        "Accepted",
        True,
    ]

    # `kubectl get canarywatch`: the category lists all three kinds.
    listing = request(api, "GET", f"/apis/{GROUP_VERSION}")
    categorized = {r["kind"] for r in listing["resources"] if "canarywatch" in r.get("categories", [])}
    assert categorized == {"CameraIntegration", "CanaryProbe", "LeakIncident"}


# -- status subresource and immutability ---------------------------------------------------


def test_status_is_a_subresource(control_plane: controlplane.ControlPlane, crds: Any, namespace: str) -> None:
    api = control_plane.api_client
    integration = example("CameraIntegration")
    created = apply(api, integration, namespace)
    generation = created["metadata"]["generation"]

    # Status written through the main resource is ignored ...
    merge_patch(api, "CameraIntegration", "reference-relay", namespace, {"status": {"phase": "Degraded"}})
    assert "status" not in get(api, "CameraIntegration", "reference-relay", namespace)
    # ... and through /status it sticks, without bumping the generation or the spec.
    status = {
        "phase": "Suspended",
        "observedGeneration": generation,
        "killSwitch": {
            "state": "Engaged",
            "engagedAt": "2026-03-14T09:26:54Z",
            "actions": [
                {
                    "name": "scale-relay-ingest",
                    "type": "scale",
                    "target": "Deployment/canarywatch-relay-ingest",
                    "step": "engage",
                    "result": "Succeeded",
                    "previous": {"replicas": 3},
                },
            ],
            "resumeHint": "set spec.suspended to false",
        },
        "conditions": [
            {
                "type": "Suspended",
                "status": "True",
                "reason": "KillSwitchEngaged",
                "message": "cross_tenant leak",
                "lastTransitionTime": "2026-03-14T09:26:54Z",
            }
        ],
    }
    patched = merge_patch(
        api,
        "CameraIntegration",
        "reference-relay",
        namespace,
        {"status": status, "spec": {"suspended": True}},
        "status",
    )
    assert patched["status"]["killSwitch"]["actions"][0]["previous"] == {"replicas": 3}
    assert patched["spec"]["suspended"] is False
    assert patched["metadata"]["generation"] == generation
    # The status schema is validated too.
    code, message = rejection(
        lambda: merge_patch(
            api, "CameraIntegration", "reference-relay", namespace, {"status": {"phase": "Broken"}}, "status"
        )
    )
    assert code == 422 and "status.phase" in message and "Unsupported value" in message
    # Resuming is a spec change the operator will see.
    resumed = merge_patch(
        api, "CameraIntegration", "reference-relay", namespace, {"spec": {"suspended": False}}
    )
    assert resumed["status"]["phase"] == "Suspended"


def test_a_leak_incidents_spec_is_immutable_evidence(
    control_plane: controlplane.ControlPlane, crds: Any, namespace: str
) -> None:
    api = control_plane.api_client
    incident = example("LeakIncident")
    apply(api, incident, namespace)
    code, message = rejection(
        lambda: merge_patch(
            api, "LeakIncident", incident["metadata"]["name"], namespace, {"spec": {"observed": {"seq": 1}}}
        )
    )
    assert code == 422 and "spec" in message and "cannot change" in message
    status = {
        "state": "Resolved",
        "paged": {"dedupKey": "canarywatch/reference-relay/cross_tenant/7k2qd", "attempts": 2},
    }
    updated = merge_patch(
        api, "LeakIncident", incident["metadata"]["name"], namespace, {"status": status}, "status"
    )
    assert updated["status"]["state"] == "Resolved"


def viewer_incident(verdict: Verdict, namespace: str) -> dict[str, Any]:
    """The LeakIncident a viewer pod creates, evidence picture included: the whole
    synthetic frame for ``cross_tenant``, the pixelated thumbnail of a real photograph
    for ``foreign``."""
    now = 1_773_480_413.4
    if verdict is Verdict.CROSS_TENANT:
        keys = Keyring.generate(["acme-7", "bravo-2"])
        frame = encode_image(
            render_frame(FrameSpec("acme-7", 1, 1842, now - 0.25, 640, 360), keys.key("acme-7"))
        )
        attribution: dict[str, Any] = {
            "observed_tenant": "acme-7",
            "observed_camera": 1,
            "observed_seq": 1842,
        }
    else:
        ok, encoded = cv2.imencode(".jpg", cv2.cvtColor(skimage.data.astronaut(), cv2.COLOR_RGB2BGR))
        assert ok
        frame = encoded.tobytes()
        attribution = {"observed_tenant": None, "observed_camera": None, "observed_seq": None}
    record = IncidentRecord(
        id=f"{verdict.value}-20260314T092653Z-1-ab12",
        integration="reference-relay",
        probe="reference-relay-canaries",
        verdict=verdict.value,
        reason="seen by a test",
        viewer_tenant="bravo-2",
        viewer_camera=1,
        stream="reference-relay/reference-relay-canaries/bravo-2/1/snapshot/poor",
        path="snapshot",
        network_profile="poor",
        observed_time=now - 0.25 if verdict is Verdict.CROSS_TENANT else None,
        frame_received_at=now,
        recorded_at=now + 0.019,
        detection_seconds=0.019,
        mode="enforce",
        **attribution,
    )
    evidence = collect_evidence(frame, verdict=verdict, received_at=now)
    return build_leak_incident(record, evidence=evidence, namespace=namespace, pod="viewer-bravo-2-x2x8v")


@pytest.mark.parametrize("verdict", [Verdict.CROSS_TENANT, Verdict.FOREIGN], ids=lambda v: v.value)
def test_the_operator_can_record_progress_on_an_incident_with_a_picture(
    control_plane: controlplane.ControlPlane, crds: Any, namespace: str, verdict: Verdict
) -> None:
    """What a viewer pod creates, the operator must be able to update: the spec's
    immutability rule once failed on the server for any spec with a thumbnail
    (``illegal base64 data`` evaluating ``self == oldSelf`` over a ``format: byte``
    field), so no page and no kill switch ever followed a real viewer's incident."""
    api = control_plane.api_client
    incident = viewer_incident(verdict, namespace)
    assert len(incident["spec"]["evidence"]["thumbnail"]) > 500  # a real picture, as pods send
    name = incident["metadata"]["name"]
    incidents = object_path({"kind": "LeakIncident"}, namespace)
    request(api, "POST", incidents, body=incident)
    status = {"state": "Open", "paged": {"dedupKey": f"canarywatch/reference-relay/{name}", "attempts": 1}}
    updated = merge_patch(api, "LeakIncident", name, namespace, {"status": status}, "status")
    assert updated["status"]["state"] == "Open"
    assert updated["spec"]["evidence"]["thumbnail"] == incident["spec"]["evidence"]["thumbnail"]
    # ... and the evidence itself still cannot be swapped.
    swapped = {"spec": {"evidence": {"thumbnail": base64.b64encode(b"\xff\xd8 another frame").decode()}}}
    code, message = rejection(lambda: merge_patch(api, "LeakIncident", name, namespace, swapped))
    assert code == 422 and "cannot change" in message
    # A picture must be base64: refused at creation, naming the field.
    garbled = copy.deepcopy(incident)
    garbled["metadata"]["name"] = f"{name}-garbled"
    garbled["spec"]["evidence"]["thumbnail"] = "not base64!"
    code, message = rejection(lambda: request(api, "POST", incidents, body=garbled))
    assert code == 422 and "spec.evidence.thumbnail" in message


# -- the policy schema and Policy.from_mapping agree ------------------------------------------


def policy_corpus() -> Iterator[dict[str, Any]]:
    """Policies around every rule of the schema: each verdict with every combination of
    flags (absent, true, false), confirmations around the defaults, modes, kill caps."""
    flags = ("incident", "page", "kill", "warn")
    for verdict in Verdict:
        for values in itertools.product((None, True, False), repeat=len(flags)):
            rule = {flag: value for flag, value in zip(flags, values, strict=True) if value is not None}
            yield {"mode": "alert-only", "verdicts": {verdict.value: rule}}
        for confirmation in (
            {},
            {"frames": 1},
            {"frames": 2},
            {"frames": 4},
            {"ofLast": 1},
            {"ofLast": 2},
            {"ofLast": 4},
            {"frames": 2, "ofLast": 2},
            {"frames": 3, "ofLast": 2},
            {"frames": 100, "ofLast": 100},
        ):
            yield {"verdicts": {verdict.value: {"confirmation": confirmation}}}
    for mode in ("enforce", "alert-only", "dry-run", "Enforce", "monitor"):
        yield {"mode": mode}
    for cap in (
        {"maxKills": 0},
        {"maxKills": -1},
        {"windowSeconds": 0},
        {"windowSeconds": 0.5},
        {"maxKills": 500},
    ):
        yield {"killCap": cap}


def test_policy_schema_accepts_exactly_what_policy_from_mapping_accepts(
    control_plane: controlplane.ControlPlane, crds: Any, namespace: str
) -> None:
    api = control_plane.api_client
    base = example("CameraIntegration")

    def verdicts(policy: dict[str, Any]) -> tuple[str, bool, str, bool, str]:
        try:
            Policy.from_mapping(policy)
            python_ok, python_says = True, ""
        except PolicyError as error:
            python_ok, python_says = False, str(error)
        obj = json.loads(json.dumps(base))
        obj["metadata"] = {"name": f"policy-{uuid.uuid4().hex[:8]}"}
        obj["spec"]["policy"] = policy
        try:
            apply(api, obj, namespace, dry_run=True)
            server_ok, server_says = True, ""
        except ApiException as error:
            server_ok, server_says = False, str(error.body)[:300]
        return json.dumps(policy), python_ok, python_says, server_ok, server_says

    corpus = list(policy_corpus())
    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(verdicts, corpus))
    disagreements = [r for r in results if r[1] != r[3]]
    assert not disagreements, "\n".join(
        f"{policy}: from_mapping {'accepts' if ok else 'rejects (' + says + ')'}, "
        f"API server {'accepts' if server_ok else 'rejects (' + server_says + ')'}"
        for policy, ok, says, server_ok, server_says in disagreements[:10]
    )
    accepted = sum(r[1] for r in results)
    assert 0 < accepted < len(results)  # the corpus exercises both sides


# -- built manifests against the real API server ----------------------------------------------


def test_built_manifests_are_accepted_and_viewer_rbac_is_exactly_create_leak_incidents(
    control_plane: controlplane.ControlPlane, crds: Any, namespace: str
) -> None:
    api = control_plane.api_client
    probe = apply_example_probe(api, namespace)
    integration = get(api, "CameraIntegration", "reference-relay", namespace)
    probe["spec"]["networkProfiles"].append("poor-tc")
    probe["spec"]["customNetworkProfiles"].append({"name": "poor-tc", "preset": "poor", "shaper": "tc"})

    keys = {t["id"]: bytes([i + 1]) * 32 for i, t in enumerate(probe["spec"]["tenants"])}
    objects = [manifests.build_keyring_secret(probe, keys)]
    objects += manifests.build_probe_workloads(probe, integration, image="registry.example/canarywatch:0.1.0")
    for obj in objects:
        created = apply(api, obj, namespace)
        assert created["metadata"]["ownerReferences"][0]["uid"] == probe["metadata"]["uid"]
    owner = (probe["metadata"]["name"], probe["metadata"]["uid"])
    for obj in manifests.build_viewer_rbac(namespace, [owner]):  # the namespace's, every probe an owner
        objects.append(obj)
        assert apply(api, obj, namespace)["metadata"]["ownerReferences"][0]["uid"] == owner[1]
    secret = get(api, "Secret", manifests.keyring_secret_name("reference-relay-canaries"), namespace)
    for tenant in keys:
        document = json.loads(base64.b64decode(secret["data"][manifests.keyring_item(tenant)]))
        assert document["tenants"].keys() == {tenant}
    # Every built Deployment is valid as the API server checks it, the tc profile's own
    # viewers (with their selector excluding each other's pods) included.
    assert {d["metadata"]["name"] for d in objects if d["kind"] == "Deployment"} == {
        "reference-relay-canaries-camera",
        "reference-relay-canaries-viewer",
        "reference-relay-canaries-viewer-poor-tc",
    }

    # The viewers' ServiceAccount may create LeakIncidents and do nothing else.
    from kubernetes import client

    token = (
        client.CoreV1Api(api)
        .create_namespaced_service_account_token(
            manifests.VIEWER_ACCOUNT,
            namespace,
            client.AuthenticationV1TokenRequest(
                spec=client.V1TokenRequestSpec(audiences=[], expiration_seconds=600)
            ),
        )
        .status.token
    )
    viewer = control_plane.token_api_client(token)
    try:
        incident = example("LeakIncident")

        def can_create() -> bool:
            try:
                request(viewer, "POST", object_path({"kind": "LeakIncident"}, namespace), body=incident)
            except ApiException as error:
                assert error.status == 403, error.body
                return False
            return True

        eventually(can_create, timeout=30, what="the viewer RoleBinding to take effect")
        name = incident["metadata"]["name"]
        resolve = {"status": {"state": "Resolved"}}
        suspend = {"spec": {"suspended": True}}
        config_map = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x"}}
        for forbidden in (
            lambda: get(viewer, "LeakIncident", name, namespace),
            lambda: request(viewer, "GET", object_path({"kind": "LeakIncident"}, namespace)),
            lambda: merge_patch(viewer, "LeakIncident", name, namespace, resolve, "status"),
            lambda: request(viewer, "DELETE", object_path(incident, namespace)),
            lambda: get(viewer, "Secret", secret["metadata"]["name"], namespace),
            lambda: get(viewer, "CameraIntegration", "reference-relay", namespace),
            lambda: merge_patch(viewer, "CameraIntegration", "reference-relay", namespace, suspend),
            lambda: request(viewer, "POST", object_path({"kind": "ConfigMap"}, namespace), body=config_map),
        ):
            code, message = rejection(forbidden)
            assert code == 403, message
    finally:
        viewer.close()

    if not control_plane.controller_manager:
        return
    # Owned by the probe: deleting it takes every built object with it.
    request(api, "DELETE", object_path(probe, namespace), query=[("propagationPolicy", "Background")])

    def all_collected() -> bool:
        for obj in objects:
            try:
                get(api, obj["kind"], obj["metadata"]["name"], namespace)
            except ApiException as error:
                assert error.status == 404
                continue
            return False
        return True

    eventually(all_collected, timeout=60, what="garbage collection of the probe's objects")
