"""What a viewer reports: LeakIncidents the CRD accepts (its schema and its CEL rules),
one per incident rather than one per frame, no pixels but the allowed thumbnail, and a
queue that keeps them until the API server takes them."""

from __future__ import annotations

import asyncio
import base64
import copy
import json
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
import skimage.data
import yaml
from manifests import example
from prometheus_client import generate_latest

from canarywatch.agents.env import ViewerSettings
from canarywatch.agents.reporting import (
    ATTRIBUTED_VERDICTS,
    MAX_THUMBNAIL_BASE64,
    REPORTABLE_VERDICTS,
    build_leak_incident,
    leak_incident_name,
    rfc3339,
)
from canarywatch.agents.viewer import IncidentReporter, ReportRejected, ViewerAgent
from canarywatch.controller.manifests import build_keyring_secret
from canarywatch.controller.trust import judge_evidence
from canarywatch.incidents.evidence import THUMBNAIL_CELL_PIXELS, THUMBNAIL_CELLS, collect_evidence
from canarywatch.incidents.records import IncidentRecord
from canarywatch.markers import Decoder, FrameSpec, Keyring, encode_image, render_frame
from canarywatch.spec import Schema, SpecError
from canarywatch.verdicts import Verdict
from canarywatch.viewer.judging import FrameResult, StreamJudge, ViewerStream

REPO = Path(__file__).resolve().parents[2]
CRD = yaml.safe_load((REPO / "crds" / "leakincidents.yaml").read_text())
(VERSION,) = CRD["spec"]["versions"]
SCHEMA = VERSION["schema"]["openAPIV3Schema"]
INCIDENT = Schema(SCHEMA)
NOW = 1_773_480_413.412  # 2026-03-14T09:26:53.412Z
TENANTS = ("acme-7", "bravo-2")
DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
LABEL_VALUE = re.compile(r"^([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?$")


# -- the CRD, mirrored -------------------------------------------------------------------------


_ATTRIBUTED = ("cross_tenant", "misrouted", "stale")

# The spec's CEL rules, each with its Python mirror; the guard test below fails when the
# CRD's rules change, so the two cannot drift apart. (The e2e tier runs the real ones.)
CEL_MIRROR: dict[str, Callable[[dict[str, Any]], bool]] = {
    "self == oldSelf": lambda spec: True,  # an update rule; a create has no oldSelf
    "has(self.observed.tenant) == (self.observed.verdict in ['cross_tenant', 'misrouted', 'stale'])": (
        lambda spec: ("tenant" in spec["observed"]) == (spec["observed"]["verdict"] in _ATTRIBUTED)
    ),
    "!has(self.observed.tenant) || !(self.observed.verdict in ['cross_tenant', 'misrouted', 'stale']) "
    "|| (self.observed.verdict == 'cross_tenant') == (self.observed.tenant != self.viewer.tenant)": (
        lambda spec: (
            "tenant" not in spec["observed"]
            or spec["observed"]["verdict"] not in _ATTRIBUTED
            or (spec["observed"]["verdict"] == "cross_tenant")
            == (spec["observed"]["tenant"] != spec["viewer"]["tenant"])
        )
    ),
    "self.observed.verdict != 'misrouted' || !has(self.observed.camera) || !has(self.viewer.camera) "
    "|| self.observed.camera != self.viewer.camera": (
        lambda spec: (
            spec["observed"]["verdict"] != "misrouted"
            or "camera" not in spec["observed"]
            or "camera" not in spec["viewer"]
            or spec["observed"]["camera"] != spec["viewer"]["camera"]
        )
    ),
}


def crd_problems(manifest: dict[str, Any]) -> list[str]:
    try:
        # What the API server's structural validation would object to (schema, formats,
        # unknown fields it would prune): the spec model reads with the CRD's own schema.
        INCIDENT.read(manifest, where="LeakIncident")
    except SpecError as error:
        return [str(error)]
    problems: list[str] = []
    assert manifest["apiVersion"] == f"{CRD['spec']['group']}/{VERSION['name']}"
    assert manifest["kind"] == CRD["spec"]["names"]["kind"]
    for rule in SCHEMA["properties"]["spec"]["x-kubernetes-validations"]:
        if not CEL_MIRROR[" ".join(rule["rule"].split())](manifest["spec"]):
            problems.append(f"CEL: {rule.get('message') or rule.get('messageExpression')}")
    return problems


def test_the_cel_mirror_covers_exactly_the_crds_rules() -> None:
    rules = {" ".join(r["rule"].split()) for r in SCHEMA["properties"]["spec"]["x-kubernetes-validations"]}
    assert rules == set(CEL_MIRROR), "crds/leakincidents.yaml changed its rules: update CEL_MIRROR"


def test_the_reportable_verdicts_are_the_crds_enum() -> None:
    observed = SCHEMA["properties"]["spec"]["properties"]["observed"]["properties"]
    assert set(observed["verdict"]["enum"]) == {v.value for v in REPORTABLE_VERDICTS}
    assert {v.value for v in ATTRIBUTED_VERDICTS} == set(_ATTRIBUTED)
    thumbnail = SCHEMA["properties"]["spec"]["properties"]["evidence"]["properties"]["thumbnail"]
    assert thumbnail["maxLength"] == MAX_THUMBNAIL_BASE64


# -- frames -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def keys() -> Keyring:
    return Keyring.generate(TENANTS)


def canary(
    keys: Keyring, tenant: str, camera: int = 0, *, seq: int = 7, at: float = NOW, width: int = 640
) -> bytes:
    spec = FrameSpec(tenant, camera, seq, at, width, width * 9 // 16)
    return encode_image(render_frame(spec, keys.key(tenant)), quality=80)


def photo() -> bytes:
    """A real photograph: what a stranger's camera would show."""
    ok, encoded = cv2.imencode(".jpg", cv2.cvtColor(skimage.data.astronaut(), cv2.COLOR_RGB2BGR))
    assert ok
    return encoded.tobytes()


def record(**fields: Any) -> IncidentRecord:
    base: dict[str, Any] = {
        "id": "cross-tenant-20260314T092653Z-1-ab12",
        "integration": "reference-relay",
        "probe": "reference-relay-canaries",
        "verdict": "cross_tenant",
        "reason": "frame signed by tenant 'acme-7' (camera 1) shown to 'bravo-2'",
        "viewer_tenant": "bravo-2",
        "viewer_camera": 1,
        "stream": "reference-relay/reference-relay-canaries/bravo-2/1/snapshot/poor",
        "path": "snapshot",
        "network_profile": "poor",
        "observed_tenant": "acme-7",
        "observed_camera": 1,
        "observed_seq": 1842,
        "observed_time": NOW - 0.25,
        "frame_received_at": NOW,
        "recorded_at": NOW + 0.019,
        "detection_seconds": 0.019,
        "mode": "enforce",
    }
    return IncidentRecord(**(base | fields))


POD = "reference-relay-canaries-viewer-bravo-2-poor-5d9c7b7f4-x2x8v"


# -- build_leak_incident ------------------------------------------------------------------------


def test_a_cross_tenant_incident_carries_its_payload_and_only_a_pixelated_thumbnail(keys: Keyring) -> None:
    frame = canary(keys, "acme-7", 1)
    evidence = collect_evidence(frame, verdict=Verdict.CROSS_TENANT, received_at=NOW)
    manifest = build_leak_incident(record(), evidence=evidence, namespace="cameras", pod=POD)
    assert crd_problems(manifest) == []
    spec = manifest["spec"]
    assert spec["integrationRef"] == {"name": "reference-relay"}
    assert spec["probeRef"] == {"name": "reference-relay-canaries"}
    assert spec["viewer"] == {
        "tenant": "bravo-2",
        "camera": 1,
        "path": "snapshot",
        "networkProfile": "poor",
        "pod": POD,
    }
    assert spec["observed"] == {
        "verdict": "cross_tenant",
        "tenant": "acme-7",
        "camera": 1,
        "seq": 1842,
        "time": "2026-03-14T09:26:53.162Z",
        "reason": "frame signed by tenant 'acme-7' (camera 1) shown to 'bravo-2'",
    }
    assert spec["times"] == {
        "frameReceived": "2026-03-14T09:26:53.412Z",
        "recorded": "2026-03-14T09:26:53.431Z",
    }
    # A verified marker does not make every pixel around it synthetic: no frame whole.
    assert spec["evidence"]["kept"] == "hash-and-pixelated-thumbnail"
    assert base64.b64decode(spec["evidence"]["thumbnail"]) == evidence.thumbnail != frame
    assert (spec["evidence"]["sha256"], spec["evidence"]["size"]) == (evidence.sha256, len(frame))
    assert (spec["evidence"]["width"], spec["evidence"]["height"]) == (640, 360)
    metadata = manifest["metadata"]
    assert metadata["namespace"] == "cameras"
    assert metadata["labels"]["canarywatch.io/verdict"] == "cross_tenant"
    assert metadata["labels"]["canarywatch.io/tenant"] == "bravo-2"


def test_the_crd_has_no_way_to_say_a_frame_was_kept_whole(keys: Keyring) -> None:
    """Even a verified canary may carry a real photo inside its marker (issue 10 #12):
    the schema admits no LeakIncident that claims a frame was kept whole."""
    evidence = collect_evidence(canary(keys, "acme-7", 1), verdict=Verdict.CROSS_TENANT, received_at=NOW)
    manifest = build_leak_incident(record(), evidence=evidence, namespace="cameras", pod=POD)
    manifest["spec"]["evidence"]["kept"] = "whole"
    assert any("kept" in problem for problem in crd_problems(manifest))


def test_a_foreign_frame_leaves_no_pixels_but_the_pixelated_thumbnail() -> None:
    frame = photo()
    evidence = collect_evidence(frame, verdict=Verdict.FOREIGN, received_at=NOW)
    unattributed = record(
        verdict="foreign",
        reason="no canary marker",
        observed_tenant=None,
        observed_camera=None,
        observed_seq=None,
        observed_time=None,
    )
    manifest = build_leak_incident(unattributed, evidence=evidence, namespace="cameras", pod=POD)
    assert crd_problems(manifest) == []
    assert manifest["spec"]["observed"] == {"verdict": "foreign", "reason": "no canary marker"}
    kept = manifest["spec"]["evidence"]
    assert kept["kept"] == "hash-and-pixelated-thumbnail"
    thumbnail = cv2.imdecode(
        np.frombuffer(base64.b64decode(kept["thumbnail"]), np.uint8), cv2.IMREAD_UNCHANGED
    )
    columns, rows = THUMBNAIL_CELLS
    assert thumbnail.shape == (rows * THUMBNAIL_CELL_PIXELS, columns * THUMBNAIL_CELL_PIXELS)
    text = json.dumps(manifest)
    assert base64.b64encode(frame).decode()[:64] not in text
    assert len(text) < 8 * 1024  # a hash, some words and 144 gray cells


@pytest.mark.parametrize("verdict", sorted(REPORTABLE_VERDICTS), ids=str)
@pytest.mark.parametrize("path", ["snapshot", "mjpeg", "thumbnail", "probe"])
def test_every_reportable_verdict_on_every_path_satisfies_the_crd(
    keys: Keyring, verdict: Verdict, path: str
) -> None:
    attributed = verdict in ATTRIBUTED_VERDICTS
    observed_tenant = {"cross_tenant": "acme-7", "misrouted": "bravo-2", "stale": "bravo-2"}.get(verdict)
    data = {Verdict.FOREIGN: photo(), Verdict.UNDECODABLE: b"<html>502</html>"}.get(verdict) or canary(
        keys, observed_tenant or "acme-7", 0 if verdict is Verdict.MISROUTED else 1
    )
    incident = record(
        verdict=verdict.value,
        path=path,
        viewer_camera=1 if path in ("snapshot", "mjpeg") else None,
        observed_tenant=observed_tenant,
        observed_camera=(0 if verdict is Verdict.MISROUTED else 1) if attributed else None,
        observed_seq=5 if attributed else None,
        observed_time=NOW - 60 if attributed else None,
    )
    evidence = collect_evidence(data, verdict=verdict, received_at=NOW)
    manifest = build_leak_incident(incident, evidence=evidence, namespace="cameras", pod=POD)
    assert crd_problems(manifest) == []
    assert ("tenant" in manifest["spec"]["observed"]) is attributed
    if verdict is Verdict.UNDECODABLE:  # not an image: a hash and a size, nothing to look at
        assert "thumbnail" not in manifest["spec"]["evidence"] and "width" not in manifest["spec"]["evidence"]


def test_an_incident_without_evidence_is_still_reported() -> None:
    manifest = build_leak_incident(
        record(reason="", network_profile=""), evidence=None, namespace="ns", pod=POD
    )
    assert crd_problems(manifest) == []
    assert "evidence" not in manifest["spec"] and "reason" not in manifest["spec"]["observed"]


@pytest.mark.parametrize(
    ("fields", "says"),
    [
        ({"verdict": "ok"}, "not a leak"),
        ({"observed_tenant": None}, "must name the observed tenant"),
        ({"verdict": "foreign"}, "must not name the observed tenant"),
        ({"path": "webrtc"}, "path 'webrtc'"),
    ],
)
def test_a_record_the_crd_would_reject_is_a_bug_raised_here(fields: dict[str, Any], says: str) -> None:
    with pytest.raises(ValueError, match=says):
        build_leak_incident(record(**fields), evidence=None, namespace="ns", pod=POD)


def test_evidence_of_another_frame_is_refused(keys: Keyring) -> None:
    evidence = collect_evidence(photo(), verdict=Verdict.FOREIGN, received_at=NOW)
    with pytest.raises(ValueError, match="evidence of a foreign frame"):
        build_leak_incident(record(), evidence=evidence, namespace="ns", pod=POD)


def test_names_are_stable_per_incident_and_pod_and_valid_labels() -> None:
    first = leak_incident_name(record(), namespace="ns", pod=POD)
    assert first == leak_incident_name(record(), namespace="ns", pod=POD)  # a retry meets itself
    assert first.startswith("reference-relay-cross-tenant-") and DNS_LABEL.match(first)
    assert first != leak_incident_name(record(), namespace="ns", pod=POD + "x")  # another replica
    assert first != leak_incident_name(record(id="cross-tenant-x-2-ffff"), namespace="ns", pod=POD)
    long_name = "camera-relay.eu-west-1.example.internal." + "a" * 200
    manifest = build_leak_incident(
        record(integration=long_name, probe=long_name), evidence=None, namespace="ns", pod=POD
    )
    assert crd_problems(manifest) == []
    assert DNS_LABEL.match(manifest["metadata"]["name"])
    assert all(len(v) <= 63 and LABEL_VALUE.match(v) for v in manifest["metadata"]["labels"].values())


def test_rfc3339_is_utc_with_milliseconds() -> None:
    assert rfc3339(0) == "1970-01-01T00:00:00.000Z"
    assert rfc3339(NOW) == "2026-03-14T09:26:53.412Z"


# -- the viewer: one LeakIncident per incident ---------------------------------------------------


class Reported:
    """A creator that records what it was asked to create."""

    def __init__(self) -> None:
        self.manifests: list[dict[str, Any]] = []

    def __call__(self, manifest: Mapping[str, Any]) -> None:
        self.manifests.append(dict(manifest))


def settings(tmp_path: Path, **extra: str) -> ViewerSettings:
    environ = {
        "CANARYWATCH_ROLE": "viewer",
        "CANARYWATCH_NAMESPACE": "cameras",
        "CANARYWATCH_POD_NAME": POD,
        "CANARYWATCH_INTEGRATION": "reference-relay",
        "CANARYWATCH_PROBE": "reference-relay-canaries",
        "CANARYWATCH_TENANTS": ",".join(TENANTS),
        "CANARYWATCH_CAMERAS": "2",
        "CANARYWATCH_FPS": "2",
        "CANARYWATCH_KEYRING_DIR": str(tmp_path),
        "CANARYWATCH_ADAPTER": json.dumps({"snapshot": {"url": "http://relay/{tenant}/{camera}"}}),
        "CANARYWATCH_METRICS_PORT": "0",
        "CANARYWATCH_NETWORK_PROFILES": '{"poor": "poor"}',
        "CANARYWATCH_NETWORK_SHAPER": "application",
        "CANARYWATCH_TRANSPORTS": "snapshot",
        "CANARYWATCH_FRESHNESS_SECONDS": "10",
    }
    return ViewerSettings.from_environ(environ | extra)


# The cross_tenant series of the test viewer's stream.
LEAKED_STREAM = {
    "integration": "reference-relay",
    "probe": "reference-relay-canaries",
    "tenant": "bravo-2",
    "verdict": "cross_tenant",
    "path": "snapshot",
    "network_profile": "poor",
}


class Viewer:
    """A ViewerAgent fed judged frames directly (no network), reporting into ``reported``."""

    def __init__(self, tmp_path: Path, keys: Keyring, **extra: str) -> None:
        self.reported = Reported()
        self.agent = ViewerAgent(
            settings(tmp_path, **extra),
            keyring=keys,
            reporter=IncidentReporter(self.reported),
            clock=lambda: NOW,
        )
        decoder = Decoder(keys)
        stream = ViewerStream("reference-relay", "reference-relay-canaries", "bravo-2", 1, "snapshot", "poor")
        self.judge = StreamJudge(decoder, stream, max_age=10.0, clock=lambda: NOW)

    async def show(self, frame: bytes, at: float = NOW) -> FrameResult:
        result = self.judge.judge(frame, received_at=at)
        await self.agent.handle(result)
        return result

    async def reports(self) -> list[dict[str, Any]]:
        await self.agent.reporter.flush(timeout=5)
        return self.reported.manifests


async def test_a_leak_storm_is_one_leak_incident(tmp_path: Path, keys: Keyring) -> None:
    viewer = Viewer(tmp_path, keys)
    for seq in range(1, 11):
        result = await viewer.show(canary(keys, "acme-7", 1, seq=seq), at=NOW + seq / 10)
        assert result.verdict is Verdict.CROSS_TENANT
    (manifest,) = await viewer.reports()
    assert crd_problems(manifest) == []
    assert manifest["spec"]["observed"]["seq"] == 1  # the first leaked frame is the evidence
    assert (
        viewer.agent.metrics.sample(
            "canarywatch_frames_total",
            LEAKED_STREAM,
        )
        == 10
    )
    # One report; the incident itself is counted by the operator, which decides whether
    # the LeakIncident is new (before, both counted it: incidents_total doubled).
    leak = {"integration": "reference-relay", "probe": "reference-relay-canaries", "verdict": "cross_tenant"}
    assert viewer.agent.metrics.sample("canarywatch_viewer_reports_total", leak) == 1
    assert viewer.agent.metrics.sample("canarywatch_incidents_total", {"namespace": "", **leak}) is None
    assert "canarywatch_incidents_total{" not in generate_latest(viewer.agent.metrics.registry).decode()


async def test_a_viewer_primes_its_verdict_series_before_the_first_frame(
    tmp_path: Path, keys: Keyring
) -> None:
    # Before: a viewer pod never primed, so the first leaked frame created its series at 1,
    # and after a scrape gap the rules' "new series" branch counted a whole old counter.
    viewer = Viewer(tmp_path, keys)
    started = viewer.agent.viewers.start()
    try:
        assert viewer.agent.metrics.sample("canarywatch_frames_total", LEAKED_STREAM) == 0
    finally:
        await viewer.agent.viewers.stop()
    assert started


async def test_foreign_content_is_reported_once_confirmed(tmp_path: Path, keys: Keyring) -> None:
    viewer = Viewer(tmp_path, keys)
    own = canary(keys, "bravo-2", 1)
    for frame in (photo(), own, photo(), own):
        await viewer.show(frame)
    assert await viewer.reports() == []  # 2 of the last 5: could be a glitch
    await viewer.show(photo())
    (manifest,) = await viewer.reports()
    assert crd_problems(manifest) == []
    assert manifest["spec"]["observed"]["verdict"] == "foreign"
    assert manifest["spec"]["evidence"]["kept"] == "hash-and-pixelated-thumbnail"


async def test_a_leak_that_comes_back_after_the_quiet_period_is_a_new_incident(
    tmp_path: Path, keys: Keyring
) -> None:
    quiet = {"CANARYWATCH_INCIDENT_QUIET_SECONDS": "60", "CANARYWATCH_INCIDENT_REPEAT_SECONDS": "3600"}
    viewer = Viewer(tmp_path, keys, **quiet)
    await viewer.show(canary(keys, "acme-7", 1, seq=1))
    viewer.agent.expire_incidents(NOW + 30)  # still within the quiet period
    await viewer.show(canary(keys, "acme-7", 1, seq=2), at=NOW + 40)
    viewer.agent.expire_incidents(NOW + 99)  # 59 s after the last leaked frame
    await viewer.show(canary(keys, "acme-7", 1, seq=3), at=NOW + 99)
    assert len(await viewer.reports()) == 1
    viewer.agent.expire_incidents(NOW + 160)
    await viewer.show(canary(keys, "acme-7", 1, seq=4), at=NOW + 161)
    first, second = await viewer.reports()
    assert first["metadata"]["name"] != second["metadata"]["name"]


async def test_a_leak_that_goes_on_is_reported_again_at_the_repeat_interval(
    tmp_path: Path, keys: Keyring
) -> None:
    viewer = Viewer(tmp_path, keys, CANARYWATCH_INCIDENT_REPEAT_SECONDS="120")
    for second in range(0, 300, 10):  # a leaked frame every 10 s for 5 minutes
        viewer.agent.expire_incidents(NOW + second)
        await viewer.show(canary(keys, "acme-7", 1, seq=second + 1), at=NOW + second)
    reported = await viewer.reports()
    assert [m["spec"]["times"]["frameReceived"] for m in reported] == [
        rfc3339(NOW),
        rfc3339(NOW + 120),
        rfc3339(NOW + 240),
    ]


async def test_stale_frames_follow_the_integrations_policy(tmp_path: Path, keys: Keyring) -> None:
    old = [canary(keys, "bravo-2", 1, seq=seq, at=NOW - 120) for seq in range(1, 6)]
    default = Viewer(tmp_path, keys)
    for frame in old:
        assert (await default.show(frame)).verdict is Verdict.STALE
    assert await default.reports() == []  # the built-in policy only warns about staleness
    policy = {"mode": "enforce", "verdicts": {"stale": {"incident": True, "page": True, "warn": False}}}
    strict = Viewer(tmp_path, keys, CANARYWATCH_POLICY=json.dumps(policy))
    for frame in old:
        await strict.show(frame)
    (manifest,) = await strict.reports()
    assert crd_problems(manifest) == []
    assert manifest["spec"]["observed"]["tenant"] == manifest["spec"]["viewer"]["tenant"] == "bravo-2"


# -- the queue ------------------------------------------------------------------------------


def manifests(count: int) -> list[dict[str, Any]]:
    return [{"metadata": {"name": f"leak-{i}"}} for i in range(count)]


class Flaky:
    """Fails the first ``failures`` calls with ``error``, then records."""

    def __init__(self, failures: int, error: Exception) -> None:
        self.failures = failures
        self.error = error
        self.calls: list[str] = []
        self.created: list[str] = []

    def __call__(self, manifest: Mapping[str, Any]) -> None:
        self.calls.append(manifest["metadata"]["name"])
        if len(self.calls) <= self.failures:
            raise self.error
        self.created.append(manifest["metadata"]["name"])


async def test_the_queue_retries_until_the_api_server_takes_each_incident_in_order() -> None:
    create = Flaky(3, ConnectionRefusedError("API server down"))
    reporter = IncidentReporter(create, base_delay=0.001, max_delay=0.01)
    task = asyncio.create_task(reporter.run())
    try:
        for manifest in manifests(3):
            assert reporter.submit(manifest)
        while reporter.pending:
            await asyncio.sleep(0.005)
    finally:
        task.cancel()
    assert create.calls == ["leak-0"] * 4 + ["leak-1", "leak-2"]
    assert create.created == ["leak-0", "leak-1", "leak-2"]
    assert (reporter.created, reporter.attempts) == (3, 6)


async def test_a_rejected_incident_is_not_retried_and_does_not_block_the_next() -> None:
    create = Flaky(1, ReportRejected("HTTP 422: spec.observed.tenant: Invalid value"))
    reporter = IncidentReporter(create, base_delay=0.001)
    for manifest in manifests(2):
        reporter.submit(manifest)
    await reporter.flush(timeout=5)
    assert create.calls == ["leak-0", "leak-1"] and create.created == ["leak-1"]
    assert (reporter.rejected, reporter.created, reporter.pending) == (1, 1, 0)


async def test_a_full_queue_keeps_the_earliest_incidents(caplog: pytest.LogCaptureFixture) -> None:
    create = Flaky(10**6, TimeoutError())
    reporter = IncidentReporter(create, capacity=2, base_delay=0.001, max_delay=0.005)
    accepted = [reporter.submit(manifest) for manifest in manifests(3)]
    assert accepted == [True, True, False] and reporter.dropped == 1
    await reporter.flush(timeout=0.1)  # the API server never answers
    assert reporter.pending == 2 and set(create.calls) == {"leak-0"}
    assert "leak-2 dropped" in caplog.text and "leak-0 was never created" in caplog.text


def test_manifests_are_plain_json(keys: Keyring) -> None:
    evidence = collect_evidence(canary(keys, "acme-7", 1), verdict=Verdict.CROSS_TENANT, received_at=NOW)
    manifest = build_leak_incident(record(), evidence=evidence, namespace="ns", pod=POD)
    assert json.loads(json.dumps(manifest)) == manifest


def probe_of_this_viewer(keys: Keyring) -> tuple[dict[str, Any], dict[str, Any]]:
    """The viewer's CanaryProbe, as the API server holds it, and acme-7's keyring Secret."""
    probe = example("CanaryProbe")
    probe["metadata"] |= {"namespace": "cameras", "uid": "0d9c4d1e-probe"}
    return probe, build_keyring_secret(probe, {"acme-7": keys.key("acme-7")})


async def test_the_operator_verifies_what_a_viewer_reports_and_nothing_else(
    tmp_path: Path, keys: Keyring
) -> None:
    """The signed payload the viewer copies from the frame is what the operator checks
    before it acts (controller.trust): the real report verifies, an edited one does not."""
    viewer = Viewer(tmp_path, keys)
    await viewer.show(canary(keys, "acme-7", 1, seq=7))
    (manifest,) = await viewer.reports()
    assert crd_problems(manifest) == []
    probe, secret = probe_of_this_viewer(keys)
    trust = judge_evidence(manifest, probe=probe, keyring_secret=secret)
    assert trust.verified, trust.reason
    edited = copy.deepcopy(manifest)
    edited["spec"]["observed"]["camera"] = 2
    assert not judge_evidence(edited, probe=probe, keyring_secret=secret).verified
    other_key = build_keyring_secret(probe, {"acme-7": b"k" * 32})
    assert "does not verify" in judge_evidence(manifest, probe=probe, keyring_secret=other_key).reason
    foreign_secret = copy.deepcopy(secret)
    foreign_secret["metadata"]["ownerReferences"][0]["uid"] = "someone-else"
    assert "not owned by" in judge_evidence(manifest, probe=probe, keyring_secret=foreign_secret).reason
