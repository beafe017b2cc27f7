"""The agents a CanaryProbe's Deployments run, against the reference relay and a real
API server: a leak becomes a LeakIncident the viewer creates itself, with its own
ServiceAccount token that can do nothing else; no fault, no LeakIncident.

There is no kubelet here, so this module plays its part: for each Deployment built by
``controller.manifests`` it starts the container's agent as a local process
(``python -m canarywatch.agents.<role>``, the role being the container's argument) with
the container's environment resolved as a kubelet resolves it (downward API fields,
Secret values read from the API server) and its volumes written to a local directory
(the keyring and token Secrets, read from the API server). Two things differ because a
process is not a pod: the metrics port (every pod has its own network namespace, these
processes share one) and the API credentials, a kubeconfig with a token minted for the
viewer's ServiceAccount by TokenRequest instead of the mounted one.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import aiohttp
import pytest
import yaml
from admission import AdmissionPolicies
from kubernetes import client, utils
from kubernetes.client.exceptions import ApiException
from polling import eventually
from prometheus_client.parser import text_string_to_metric_families

from canarywatch import api
from canarywatch.agents.camera import CameraAgent
from canarywatch.agents.env import CameraSettings, load_keyring
from canarywatch.agents.reporting import ATTRIBUTED_VERDICTS, REPORTABLE_VERDICTS, build_leak_incident
from canarywatch.controller import manifests
from canarywatch.controller.trust import judge_evidence
from canarywatch.incidents.evidence import collect_evidence
from canarywatch.incidents.records import IncidentRecord
from canarywatch.markers import Decoder, FrameSpec, Keyring, Status, encode_image, render_frame
from canarywatch.relay import Fault
from canarywatch.verdicts import Verdict

pytestmark = pytest.mark.cluster

REPO = Path(__file__).resolve().parents[2]
GROUP, VERSION = api.API_VERSION.split("/")
TENANTS = ("acme-7", "bravo-2")
INTEGRATION = "reference-relay"
PROBE = "relay-canaries"
IMAGE = "registry.example/canarywatch:0.1.0"
CLI = [sys.executable, "-m", "canarywatch.cli"]
T = TypeVar("T")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# -- the cluster side ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def crds(control_plane: Any) -> None:
    """The CRDs of crds/, installed and served."""
    extensions = client.ApiextensionsV1Api(control_plane.api_client)
    for path in sorted((REPO / "crds").glob("*.yaml")):
        try:
            extensions.create_custom_resource_definition(yaml.safe_load(path.read_text()))
        except ApiException as error:
            if error.status != 409:  # installed by an earlier module on this control plane
                raise
    custom = client.CustomObjectsApi(control_plane.api_client)

    def served() -> bool:
        try:
            custom.list_cluster_custom_object(GROUP, VERSION, "leakincidents")
        except ApiException:
            return False
        return True

    eventually(served, 30, "the CRDs to be served")


def secret_data(core: Any, namespace: str, name: str) -> dict[str, bytes]:
    secret = core.read_namespaced_secret(name, namespace)
    return {key: base64.b64decode(value) for key, value in (secret.data or {}).items()}


Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def total(samples: Samples, name: str, **labels: str) -> float:
    """The sum of ``name`` over the scraped samples carrying ``labels``."""
    wanted = set(labels.items())
    return sum(value for (sample, have), value in samples.items() if sample == name and wanted <= have)


@dataclass
class Agent:
    """One pod's container, run as a local process."""

    name: str
    role: str
    process: subprocess.Popen[bytes]
    log: Path
    metrics_port: int

    def metrics(self) -> Samples:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=5) as response:
            text = response.read().decode()
        return {
            (sample.name, frozenset(sample.labels.items())): sample.value
            for family in text_string_to_metric_families(text)
            for sample in family.samples
        }

    def count(self, name: str, **labels: str) -> float:
        """The sum of ``name`` over the samples carrying ``labels``; 0 before the agent
        has served /metrics."""
        try:
            samples = self.metrics()
        except OSError:
            return 0.0
        return total(samples, name, **labels)

    def healthy(self) -> bool:
        try:
            with urllib.request.urlopen(
                f"http://127.0.0.1:{self.metrics_port}/healthz", timeout=5
            ) as response:
                return bool(response.status == 200)
        except OSError:
            return False

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def stop(self) -> int:
        """SIGTERM, as the kubelet stops a pod; the exit code."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            return self.process.wait()


class Scenario:
    """A probe against the local relay: its objects in the API server, its pods as processes."""

    def __init__(
        self, control_plane: Any, namespace: str, workdir: Path, relay_url: str, tokens: dict[str, str]
    ) -> None:
        self.control_plane = control_plane
        self.namespace = namespace
        self.workdir = workdir
        self.api = control_plane.api_client
        self.core = client.CoreV1Api(self.api)
        self.custom = client.CustomObjectsApi(self.api)
        self.agents: list[Agent] = []
        self.keyring = Keyring.generate(TENANTS)
        self.tokens = tokens  # the ones the relay accepts
        self.relay_url = relay_url
        self.kubeconfig = workdir / "viewer.kubeconfig"
        self.probe: dict[str, Any] = {}
        self.integration: dict[str, Any] = {}
        self.rbac: list[dict[str, Any]] = []

    # -- objects -------------------------------------------------------------------------
    def create_objects(self) -> None:
        """Secrets, the CameraIntegration and CanaryProbe, its keyring, and the namespace's
        viewer ServiceAccount; not yet the viewers' Role and RoleBinding (``grant``)."""
        ns = self.namespace
        self._create(
            {
                "apiVersion": "v1",
                "kind": "Secret",
                "metadata": {"name": "canary-tokens"},
                "stringData": dict(self.tokens),
            }
        )
        # An API key the relay does not need, so that the headersFrom path is exercised too.
        self._create(
            {
                "apiVersion": "v1",
                "kind": "Secret",
                "metadata": {"name": "relay-api"},
                "stringData": {"key": "k1"},
            }
        )
        device = self.relay_url + "/v3/devices/{tenant}/{camera}"
        bearer = {"Authorization": "Bearer {token}"}
        api_key = [{"header": "X-Api-Key", "secretKeyRef": {"name": "relay-api", "key": "key"}}]
        self.integration = self.custom.create_namespaced_custom_object(
            GROUP,
            VERSION,
            ns,
            "cameraintegrations",
            {
                "apiVersion": api.API_VERSION,
                "kind": "CameraIntegration",
                "metadata": {"name": INTEGRATION},
                "spec": {
                    "camera": {
                        "push": {
                            "method": "PUT",
                            "url": device + "/frame",
                            "headers": bearer,
                            "headersFrom": api_key,
                        }
                    },
                    "viewer": {
                        "snapshot": {"url": device + "/live.jpg", "headers": bearer, "headersFrom": api_key},
                        "authzProbe": {"url": device + "/live.jpg", "headers": bearer},
                        "pollInterval": 0.25,
                    },
                    "policy": {"mode": "alert-only"},
                },
            },
        )
        self.probe = self.custom.create_namespaced_custom_object(
            GROUP,
            VERSION,
            ns,
            "canaryprobes",
            {
                "apiVersion": api.API_VERSION,
                "kind": "CanaryProbe",
                "metadata": {"name": PROBE},
                "spec": {
                    "integrationRef": {"name": INTEGRATION},
                    "tenants": [
                        {"id": tenant, "tokenSecretRef": {"name": "canary-tokens", "key": tenant}}
                        for tenant in TENANTS
                    ],
                    "camerasPerTenant": 2,
                    "fps": 4,
                    "frameSize": {"width": 320, "height": 180},
                    # The 2019 leak reached only hubs on poor connections.
                    "networkProfiles": ["poor"],
                    "transports": ["snapshot", "authz"],
                },
            },
        )
        self._create(manifests.build_keyring_secret(self.probe, self.keyring.keys))
        self.rbac = manifests.build_viewer_rbac(ns)
        for obj in self.rbac:
            if obj["kind"] == "ServiceAccount":
                self._create(obj)

    def grant(self) -> None:
        """The viewers' Role and RoleBinding: create LeakIncidents, nothing more."""
        for obj in self.rbac:
            if obj["kind"] in ("Role", "RoleBinding"):
                self._create(obj)

    def viewer_token(self) -> str:
        """A token of the viewers' ServiceAccount, as a pod's projected token would be."""
        (account,) = [
            o for o in self.rbac if o["kind"] == "ServiceAccount" and o["metadata"]["name"].endswith("viewer")
        ]
        request = client.AuthenticationV1TokenRequest(
            spec=client.V1TokenRequestSpec(audiences=[], expiration_seconds=3600)
        )
        return str(
            self.core.create_namespaced_service_account_token(
                account["metadata"]["name"], self.namespace, request
            ).status.token
        )

    def leak_incidents(self) -> list[dict[str, Any]]:
        listed = self.custom.list_namespaced_custom_object(GROUP, VERSION, self.namespace, "leakincidents")
        return list(listed["items"])

    def _create(self, obj: dict[str, Any]) -> None:
        utils.create_from_dict(self.api, obj, namespace=self.namespace)

    # -- pods ----------------------------------------------------------------------------
    def start(self, deployment: dict[str, Any]) -> Agent:
        """The Deployment's pod: its container's agent with the container's environment."""
        name = f"{deployment['metadata']['name']}-{secrets.token_hex(3)}"
        root = self.workdir / name
        root.mkdir()
        pod = deployment["spec"]["template"]["spec"]
        (container,) = pod["containers"]
        environ = self._environment(pod, container, name, root)
        port = free_port()
        environ |= {
            "PATH": os.environ["PATH"],
            "HOME": str(root),
            "PYTHONUNBUFFERED": "1",
            # a pod's own network namespace, emulated: a port of its own, loopback only
            "CANARYWATCH_METRICS_PORT": str(port),
            "CANARYWATCH_METRICS_HOST": "127.0.0.1",
            "CANARYWATCH_SUMMARY_SECONDS": "5",
        }
        if pod.get("automountServiceAccountToken"):
            environ["KUBECONFIG"] = str(self.kubeconfig)
        (role,) = container["args"]
        log = root / "agent.log"
        with log.open("wb") as out:
            process = subprocess.Popen(
                [sys.executable, "-m", f"canarywatch.agents.{role}"],
                env=environ,
                cwd=root,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        agent = Agent(name, role, process, log, port)
        self.agents.append(agent)
        return agent

    def _environment(
        self, pod: dict[str, Any], container: dict[str, Any], pod_name: str, root: Path
    ) -> dict[str, str]:
        volumes = {volume["name"]: volume for volume in pod["volumes"]}
        mounts: dict[str, Path] = {}
        for mount in container["volumeMounts"]:
            local = root / "mounts" / mount["name"]
            local.mkdir(parents=True)
            self._write_volume(volumes[mount["name"]], local)
            mounts[mount["mountPath"]] = local
        fields = {"metadata.namespace": self.namespace, "metadata.name": pod_name, "spec.nodeName": "local"}
        environ: dict[str, str] = {}
        for entry in container["env"]:
            if "value" in entry:
                value = entry["value"]
                for path in sorted(mounts, key=len, reverse=True):  # the innermost mount holds it
                    if value == path or value.startswith(path + "/"):
                        value = str(mounts[path]) + value[len(path) :]
                        break
            elif "fieldRef" in entry["valueFrom"]:
                value = fields[entry["valueFrom"]["fieldRef"]["fieldPath"]]
            else:
                ref = entry["valueFrom"]["secretKeyRef"]
                value = secret_data(self.core, self.namespace, ref["name"])[ref["key"]].decode()
            environ[entry["name"]] = value
        return environ

    def _write_volume(self, volume: dict[str, Any], directory: Path) -> None:
        if "emptyDir" in volume:
            return
        if "projected" in volume:
            sources = [source["secret"] for source in volume["projected"]["sources"]]
        else:
            sources = [{"name": volume["secret"]["secretName"], "items": volume["secret"]["items"]}]
        for source in sources:
            data = secret_data(self.core, self.namespace, source["name"])
            for item in source["items"]:
                target = directory / item["path"]
                target.write_bytes(data[item["key"]])
                target.chmod(0o440)

    def eventually(self, probe: Callable[[], T], timeout: float, what: str) -> T:
        """``eventually``, failing at once (with the logs) when an agent has exited."""

        def running_probe() -> T:
            exited = [agent.name for agent in self.agents if agent.process.poll() is not None]
            if exited:
                pytest.fail(f"{', '.join(exited)} exited while waiting for {what}:\n{self.logs()}")
            return probe()

        return eventually(running_probe, timeout, what)

    def stop(self) -> dict[str, int]:
        return {agent.name: agent.stop() for agent in self.agents}

    def logs(self) -> str:
        return "\n".join(
            f"--- {a.name} (exit {a.process.poll()}):\n{a.output()[-4000:]}" for a in self.agents
        )


@pytest.fixture
def relay(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, dict[str, str]]]:
    """The reference relay as a process, with the fault the test is parametrized with;
    yields its URL and the tenants' tokens."""
    fault: Fault = request.param
    tokens = {tenant: f"tok-{tenant}-{secrets.token_hex(6)}" for tenant in TENANTS}
    config = tmp_path / "relay.yaml"
    config.write_text(yaml.safe_dump({"tenants": tokens, "admin_token": "admin-" + secrets.token_hex(8)}))
    port = free_port()
    log = tmp_path / "relay.log"
    with log.open("wb") as out:  # a file, not a pipe nobody reads: the relay never blocks on it
        process = subprocess.Popen(
            [*CLI, "relay", "--config", str(config), "--port", str(port), "--fault", fault.value],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        eventually(lambda: process.poll() is None and "relay listening" in log.read_text(), 30, "the relay")
        yield f"http://127.0.0.1:{port}", tokens
    finally:
        process.terminate()
        process.wait(timeout=20)


@pytest.fixture
def scenario(
    control_plane: Any, crds: None, namespace: str, tmp_path: Path, relay: tuple[str, dict[str, str]]
) -> Iterator[Scenario]:
    scenario = Scenario(control_plane, namespace, tmp_path, *relay)
    try:
        yield scenario
    finally:
        scenario.stop()
        print(scenario.logs())  # pytest shows it for a failed test only


@pytest.fixture
def admission(control_plane: Any, namespace: str) -> Iterator[AdmissionPolicies]:
    policies = AdmissionPolicies(control_plane.api_client, namespace)
    yield policies
    policies.remove()


def start_probe(scenario: Scenario) -> tuple[list[Agent], list[Agent]]:
    """Every camera and viewer Deployment builders make for the probe, as processes: one
    camera process for both tenants' cameras (each pushing with its own tenant's token),
    one viewer process watching as both tenants."""
    probe, integration = scenario.probe, scenario.integration
    cameras = [scenario.start(manifests.build_camera_deployment(probe, integration, image=IMAGE))]
    viewers = [scenario.start(manifests.build_viewer_deployment(probe, integration, image=IMAGE))]
    return cameras, viewers


LEAK = {"verdict": "cross_tenant"}


@pytest.mark.parametrize("relay", [Fault.XIAOMI_2019], indirect=True, ids=str)
def test_a_leak_becomes_a_leak_incident_created_by_the_viewer(
    control_plane: Any, scenario: Scenario, admission: AdmissionPolicies
) -> None:
    scenario.create_objects()
    # The chart's admission policy is in force: the viewer processes, with their
    # ServiceAccount's token, are the ones it admits.
    admission.install()
    scenario.control_plane.write_kubeconfig(scenario.kubeconfig, user="viewer", token=scenario.viewer_token())
    cameras, viewers = start_probe(scenario)
    # The viewers catch the leak before their ServiceAccount may report it: the API
    # server answers 403 and the incident waits in the viewer's queue.
    scenario.eventually(
        lambda: any(v.count("canarywatch_viewer_reports_total", **LEAK) for v in viewers), 60, "a leak"
    )
    scenario.eventually(lambda: any("HTTP 403" in v.output() for v in viewers), 30, "a refused attempt")
    assert scenario.leak_incidents() == []
    scenario.grant()
    incidents = scenario.eventually(scenario.leak_incidents, 60, "a LeakIncident")
    assert all(agent.healthy() for agent in cameras + viewers)

    # The leak goes on: the viewers count every leaked frame, but report each
    # incident once (a storm is one incident) and every incident they opened.
    def leaked() -> float:
        return sum(v.count("canarywatch_frames_total", **LEAK) for v in viewers)

    def opened() -> float:
        return sum(v.count("canarywatch_viewer_reports_total", **LEAK) for v in viewers)

    scenario.eventually(lambda: leaked() >= opened() + 2, 120, "more leaked frames than incidents")

    def each_reported_once() -> list[dict[str, Any]] | None:
        incidents = scenario.leak_incidents()
        reported = {v.name: 0 for v in viewers}
        for incident in incidents:
            reported[incident["spec"]["viewer"]["pod"]] += 1
        wanted = {v.name: int(v.count("canarywatch_viewer_reports_total", **LEAK)) for v in viewers}
        return incidents if reported == wanted else None

    incidents = scenario.eventually(each_reported_once, 30, "one LeakIncident per incident opened")
    by_pod = {v.name: v for v in viewers}
    decoder = Decoder(scenario.keyring)
    for incident in incidents:
        spec = incident["spec"]
        assert spec["integrationRef"] == {"name": INTEGRATION} and spec["probeRef"] == {"name": PROBE}
        viewer = spec["viewer"]
        assert viewer["pod"] in by_pod and viewer["networkProfile"] == "poor"
        assert viewer["path"] in ("snapshot", "probe")
        observed = spec["observed"]
        assert observed["verdict"] == "cross_tenant"
        assert {viewer["tenant"], observed["tenant"]} == set(TENANTS)
        assert spec["times"]["frameReceived"] <= spec["times"]["recorded"]
        # No frame whole, even a verified canary's (real content may sit beside the marker):
        # the proof is the signed payload below.
        assert spec["evidence"]["kept"] == "hash-and-pixelated-thumbnail"
        thumbnail = decoder.decode(base64.b64decode(spec["evidence"]["thumbnail"]))
        assert thumbnail.status is not Status.VERIFIED  # 16x9 flat cells: nothing left to read
        # And the operator will act on it: its signed payload verifies under the observed
        # tenant's keyring Secret of the probe (controller.trust).
        secret = manifests.build_keyring_secret(scenario.probe, scenario.keyring.keys)
        trust = judge_evidence(incident, probe=scenario.probe, keyring_secret=secret)
        assert trust.verified, trust.reason

    # The viewers' token creates LeakIncidents and can do nothing else, not even read them.
    viewer_api = control_plane.token_api_client(scenario.viewer_token())
    try:
        core, custom = client.CoreV1Api(viewer_api), client.CustomObjectsApi(viewer_api)
        name = incidents[0]["metadata"]["name"]
        for forbidden in (
            lambda: core.list_namespaced_secret(scenario.namespace),
            lambda: core.list_namespaced_pod(scenario.namespace),
            lambda: custom.list_namespaced_custom_object(GROUP, VERSION, scenario.namespace, "leakincidents"),
            lambda: custom.get_namespaced_custom_object(
                GROUP, VERSION, scenario.namespace, "leakincidents", name
            ),
            lambda: custom.delete_namespaced_custom_object(
                GROUP, VERSION, scenario.namespace, "leakincidents", name
            ),
            lambda: custom.get_namespaced_custom_object(
                GROUP, VERSION, scenario.namespace, "cameraintegrations", INTEGRATION
            ),
        ):
            with pytest.raises(ApiException) as refused:
                forbidden()
            assert refused.value.status == 403
    finally:
        viewer_api.close()
    assert set(scenario.stop().values()) == {0}, scenario.logs()


@pytest.mark.parametrize("relay", [Fault.NONE], indirect=True, ids=str)
def test_without_a_fault_no_leak_incident_is_created(scenario: Scenario) -> None:
    scenario.create_objects()
    scenario.grant()
    scenario.control_plane.write_kubeconfig(scenario.kubeconfig, user="viewer", token=scenario.viewer_token())
    _, viewers = start_probe(scenario)
    for viewer in viewers:
        scenario.eventually(
            lambda v=viewer: v.count("canarywatch_frames_total", verdict="ok") >= 12, 60, "ok frames"
        )
    time.sleep(6)  # more frames under a poor network, with the RoleBinding in place
    # One scrape per viewer: frames keep arriving, so separate reads would not add up.
    scrapes = {v.name: v.metrics() for v in viewers}
    counts = {name: total(samples, "canarywatch_frames_total") for name, samples in scrapes.items()}
    ok = {name: total(samples, "canarywatch_frames_total", verdict="ok") for name, samples in scrapes.items()}
    incidents = sum(total(samples, "canarywatch_viewer_reports_total") for samples in scrapes.values())
    # A viewer pod counts no incident: the operator does, once per incident.
    assert not any(total(samples, "canarywatch_incidents_total") for samples in scrapes.values())
    assert scenario.leak_incidents() == []
    assert incidents == 0 and counts == ok, (counts, ok)
    assert set(scenario.stop().values()) == {0}, scenario.logs()


# -- the CRD's own rules, run by the API server --------------------------------------------------


def test_every_verdict_the_viewer_reports_is_accepted_by_the_api_server(
    control_plane: Any, crds: None, namespace: str
) -> None:
    """Server-side dry runs of ``build_leak_incident`` for each reportable verdict and
    path: the real schema and CEL rules (the unit tier checks a mirror of them)."""
    keys = Keyring.generate(TENANTS)
    custom = client.CustomObjectsApi(control_plane.api_client)
    now = time.time()
    for verdict in sorted(REPORTABLE_VERDICTS):
        attributed = verdict in ATTRIBUTED_VERDICTS
        observed = {"cross_tenant": "acme-7"}.get(verdict, "bravo-2") if attributed else None
        camera = 0 if verdict is Verdict.MISROUTED else 1
        frame = encode_image(
            render_frame(FrameSpec(observed or "acme-7", camera, 9, now - 1), keys.key(observed or "acme-7"))
        )
        data = b"\x89PNG broken" if verdict is Verdict.UNDECODABLE else frame
        for path in ("snapshot", "mjpeg", "thumbnail", "probe"):
            record = IncidentRecord(
                id=f"{verdict}-{path}",
                integration=INTEGRATION,
                probe=PROBE,
                verdict=verdict.value,
                reason=f"{verdict} seen through {path}",
                viewer_tenant="bravo-2",
                viewer_camera=1 if path in ("snapshot", "mjpeg") else None,
                stream=f"{INTEGRATION}/{PROBE}/bravo-2/1/{path}/poor",
                path=path,
                network_profile="poor",
                observed_tenant=observed,
                observed_camera=camera if attributed else None,
                observed_seq=9 if attributed else None,
                observed_time=now - 1 if attributed else None,
                frame_received_at=now,
                recorded_at=now + 0.01,
                detection_seconds=0.01,
                mode="enforce",
            )
            evidence = collect_evidence(data, verdict=verdict, received_at=now)
            manifest = build_leak_incident(record, evidence=evidence, namespace=namespace, pod="viewer-pod-1")
            created = custom.create_namespaced_custom_object(
                GROUP, VERSION, namespace, "leakincidents", manifest, dry_run="All"
            )
            assert created["spec"] == json.loads(json.dumps(manifest["spec"])), (verdict, path)


# -- a camera the integration pulls from (no cluster needed) --------------------------------------


async def test_a_camera_the_integration_pulls_from_serves_signed_frames(tmp_path: Path) -> None:
    keys = Keyring.generate(["acme-7"])
    (tmp_path / "acme-7.json").write_text(keys.to_json())
    serve_port, metrics_port = free_port(), free_port()
    environ = {
        "CANARYWATCH_ROLE": "camera",
        "CANARYWATCH_NAMESPACE": "cameras",
        "CANARYWATCH_POD_NAME": "relay-canaries-camera-acme-7-0",
        "CANARYWATCH_INTEGRATION": INTEGRATION,
        "CANARYWATCH_PROBE": PROBE,
        "CANARYWATCH_TENANTS": "acme-7",
        "CANARYWATCH_CAMERAS": "2",
        "CANARYWATCH_FPS": "10",
        "CANARYWATCH_KEYRING_DIR": str(tmp_path),
        "CANARYWATCH_ADAPTER": json.dumps({"serve": {"host": "127.0.0.1", "port": serve_port}}),
        "CANARYWATCH_METRICS_HOST": "127.0.0.1",
        "CANARYWATCH_METRICS_PORT": str(metrics_port),
        "CANARYWATCH_FRAME_WIDTH": "320",
        "CANARYWATCH_FRAME_HEIGHT": "180",
    }
    settings = CameraSettings.from_environ(environ)
    agent = CameraAgent(settings, keyring=load_keyring(tmp_path, require=("acme-7",)))
    stop = asyncio.Event()
    running = asyncio.create_task(agent.run(stop))
    try:
        async with aiohttp.ClientSession() as session:

            async def get(url: str) -> tuple[int, bytes]:
                for _ in range(50):  # until the camera has rendered its first frame
                    with contextlib.suppress(aiohttp.ClientError):
                        async with session.get(url) as response:
                            if response.status != 404:
                                return response.status, await response.read()
                    await asyncio.sleep(0.1)
                pytest.fail(f"{url} never answered")

            status, body = await get(f"http://127.0.0.1:{serve_port}/cameras/acme-7/1/snapshot.jpg")
            observation = Decoder(keys).decode(body)
            assert status == 200 and observation.status is Status.VERIFIED
            assert (observation.tenant, observation.payload and observation.payload.camera) == ("acme-7", 1)
            assert (await get(f"http://127.0.0.1:{metrics_port}/healthz"))[0] == 200
            assert (await get(f"http://127.0.0.1:{metrics_port}/metrics"))[0] == 200
            async with session.get(f"http://127.0.0.1:{serve_port}/cameras/bravo-2/0/snapshot.jpg") as other:
                assert other.status == 404  # another tenant's camera is not this pod's
    finally:
        stop.set()
        await asyncio.wait_for(running, timeout=10)
