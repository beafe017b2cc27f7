"""The agents read exactly the environment ``controller.manifests`` gives their containers
(both name it through ``canarywatch.api.AgentEnv``), and a bad value stops them with a
message naming the variable (never a secret)."""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from fresh_imports import loaded_after
from manifests import example

from canarywatch.agents.camera import run_camera_agent
from canarywatch.agents.env import CameraSettings, EnvError, ViewerSettings, load_keyring
from canarywatch.agents.viewer import run_viewer_agent
from canarywatch.api import AgentEnv
from canarywatch.controller import manifests
from canarywatch.incidents.policy import Confirmation, Policy
from canarywatch.markers import Keyring
from canarywatch.verdicts import Verdict
from canarywatch.viewer.network import POOR

REPO = Path(__file__).resolve().parents[2]
IMAGE = "registry.example/canarywatch:0.1.0"
TOKEN = "t-acme-secret-token"
BRAVO_TOKEN = "t-bravo-secret-token"
API_KEY = "k-relay-api-key-value"


@pytest.fixture
def probe() -> dict[str, Any]:
    obj = example("CanaryProbe")
    obj["metadata"] = {
        **obj["metadata"],
        "namespace": "cameras",
        "uid": "0f0e0d0c-0000-4000-8000-000000000001",
    }
    obj["spec"]["customNetworkProfiles"].append({"name": "poor-tc", "preset": "poor", "shaper": "tc"})
    obj["spec"]["networkProfiles"].append("poor-tc")
    return obj


@pytest.fixture
def integration() -> dict[str, Any]:
    """The example integration, its snapshot and push endpoints also carrying an API key
    from a Secret (``headersFrom``)."""
    obj = example("CameraIntegration")
    api_key = {"header": "X-Api-Key", "secretKeyRef": {"name": "relay-api", "key": "key"}}
    obj["spec"]["viewer"]["snapshot"]["headersFrom"] = [api_key]
    obj["spec"]["camera"]["push"]["headersFrom"] = [api_key]
    return obj


def pod_environment(deployment: dict[str, Any], files: dict[str, Path]) -> dict[str, str]:
    """The container's environment as a kubelet would give it, with the mounted
    directories moved to ``files`` (mount path -> local directory)."""
    secrets = {("relay-api", "key"): API_KEY}
    fields = {"metadata.namespace": "cameras", "metadata.name": "pod-abc12", "spec.nodeName": "node-1"}
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    environ: dict[str, str] = {}
    for entry in container["env"]:
        if "value" in entry:
            value = entry["value"]
            for mount, local in files.items():
                if value == mount or value.startswith(mount + "/"):
                    value = str(local) + value[len(mount) :]
        elif "fieldRef" in entry["valueFrom"]:
            value = fields[entry["valueFrom"]["fieldRef"]["fieldPath"]]
        else:
            ref = entry["valueFrom"]["secretKeyRef"]
            value = secrets[(ref["name"], ref["key"])]
        environ[entry["name"]] = value
    return environ


@pytest.fixture
def mounts(tmp_path: Path) -> dict[str, Path]:
    keyring_dir = tmp_path / "keyring"
    keyring_dir.mkdir()
    for tenant, key in Keyring.generate(["acme-7", "bravo-2"]).keys.items():
        (keyring_dir / f"{tenant}.json").write_text(Keyring({tenant: key}).to_json())
    token_dir = tmp_path / "token"
    token_dir.mkdir()
    (token_dir / "acme-7").write_text(TOKEN + "\n")  # Secret files often end in a newline
    (token_dir / "bravo-2").write_text(BRAVO_TOKEN)
    return {manifests.KEYRING_DIR: keyring_dir, manifests.TOKEN_DIR: token_dir}


def viewer_env(
    probe: dict[str, Any], integration: dict[str, Any], mounts: dict[str, Path], profile: str | None = None
) -> dict[str, str]:
    deployment = manifests.build_viewer_deployment(probe, integration, profile, image=IMAGE)
    return pod_environment(deployment, mounts)


def camera_env(probe: dict[str, Any], integration: dict[str, Any], mounts: dict[str, Path]) -> dict[str, str]:
    deployment = manifests.build_camera_deployment(probe, integration, image=IMAGE)
    return pod_environment(deployment, mounts)


# -- what the agents read ---------------------------------------------------------------------


def test_viewer_reads_the_environment_builders_give_it(
    probe: dict[str, Any], integration: dict[str, Any], mounts: dict[str, Path]
) -> None:
    settings = ViewerSettings.from_environ(viewer_env(probe, integration, mounts))
    assert (settings.namespace, settings.pod_name, settings.node_name) == ("cameras", "pod-abc12", "node-1")
    assert (settings.integration, settings.probe) == ("reference-relay", "reference-relay-canaries")
    assert (settings.tenants, settings.cameras) == (("acme-7", "bravo-2"), 2)
    # Every tenant watches with its own token.
    assert (settings.token("acme-7"), settings.token("bravo-2")) == (TOKEN, BRAVO_TOKEN)
    assert settings.metrics_port == manifests.METRICS_PORT and settings.metrics_host == "0.0.0.0"
    assert settings.transports == ("snapshot", "mjpeg", "events", "authz")
    assert set(settings.endpoints) == {"snapshot", "mjpeg", "events", "authzProbe"}
    assert (settings.poll_interval, settings.freshness_seconds) == (0.5, 10.0)
    # Every profile shaped in-process (not poor-tc: netem shapes a pod of its own), the
    # custom "hub-wifi" profile of examples/canaryprobe.yaml among them.
    assert settings.shaper == "application"
    profiles = {p.name: p for p in settings.profiles}
    assert list(profiles) == ["good", "poor", "hub-wifi"]
    assert profiles["poor"] == dataclasses.replace(POOR, name="poor")
    profile = profiles["hub-wifi"]
    assert (profile.bandwidth_bps, profile.latency_s, profile.loss) == (300_000, 0.4, 0.03)
    assert (profile.stall_probability, profile.stall_s, profile.loss_timeout_s) == (0.05, 2.0, 10.0)
    # The integration's verdict rules confirm and de-duplicate; mode and cap stay the operator's.
    foreign, stale = settings.policy.rule(Verdict.FOREIGN), settings.policy.rule(Verdict.STALE)
    assert (foreign.confirmation.frames, foreign.confirmation.of_last) == (3, 5)
    assert stale.incident and not stale.warn and stale.confirmation.frames == 5
    assert settings.policy.rule(Verdict.CROSS_TENANT) == Policy().rule(Verdict.CROSS_TENANT)
    assert settings.policy.mode == Policy().mode
    keyring = load_keyring(settings.keyring_dir, require=settings.tenants)
    assert set(keyring) == {"acme-7", "bravo-2"}  # a viewer holds every tenant's key

    snapshot = settings.endpoints["snapshot"].render(
        tenant="acme-7", camera="1", token=settings.token("acme-7")
    )
    assert snapshot.url == "http://canarywatch-relay:9000/v3/devices/acme-7/1/live.jpg"
    assert snapshot.headers == {"Authorization": f"Bearer {TOKEN}", "X-Api-Key": API_KEY}
    mjpeg = settings.endpoints["mjpeg"].render(tenant="acme-7", camera="0", token=settings.token("acme-7"))
    assert mjpeg.headers == {"Authorization": f"Bearer {TOKEN}"}  # headersFrom only where configured


def test_builders_and_agents_name_the_environment_from_one_vocabulary(
    probe: dict[str, Any], integration: dict[str, Any]
) -> None:
    built = {
        entry["name"]
        for obj in manifests.build_probe_workloads(probe, integration, image=IMAGE)
        if obj["kind"] == "Deployment"
        for entry in obj["spec"]["template"]["spec"]["containers"][0]["env"]
    }
    secrets = {AgentEnv.secret_variable(0)}
    assert built - secrets <= {str(v) for v in AgentEnv}, built - {str(v) for v in AgentEnv}


def test_camera_reads_the_environment_builders_give_it(
    probe: dict[str, Any], integration: dict[str, Any], mounts: dict[str, Path]
) -> None:
    settings = CameraSettings.from_environ(camera_env(probe, integration, mounts))
    assert (settings.tenants, settings.cameras, settings.fps) == (("acme-7", "bravo-2"), 2, 2.0)
    assert (settings.width, settings.height) == (640, 360)
    assert settings.push is not None
    push = settings.push.render(tenant="acme-7", camera="1", token=settings.token("acme-7"))
    assert (push.method, push.url) == ("PUT", "http://canarywatch-relay:9000/v3/devices/acme-7/1/frame")
    assert push.headers == {"Authorization": f"Bearer {TOKEN}", "X-Api-Key": API_KEY}
    bravo = settings.push.render(tenant="bravo-2", camera="0", token=settings.token("bravo-2"))
    assert bravo.headers["Authorization"] == f"Bearer {BRAVO_TOKEN}"
    keyring = load_keyring(settings.keyring_dir, require=settings.tenants)
    assert set(keyring) == {"acme-7", "bravo-2"}


def test_a_camera_the_integration_pulls_from_serves_on_every_interface(
    probe: dict[str, Any], integration: dict[str, Any], mounts: dict[str, Path]
) -> None:
    integration["spec"]["camera"] = {"serve": {"port": 8081}}
    settings = CameraSettings.from_environ(camera_env(probe, integration, mounts))
    assert settings.push is None
    assert (settings.serve_host, settings.serve_port) == ("0.0.0.0", 8081)


@pytest.mark.parametrize("protocol", ["rtsp", "rtmp", "mjpeg"])
def test_a_streaming_camera_reads_its_stream_and_credentials(
    protocol: str, probe: dict[str, Any], integration: dict[str, Any], mounts: dict[str, Path]
) -> None:
    url = {
        "rtsp": "rtsp://{tenant}:{token}@ingest:8554/{tenant}/{camera}",
        "rtmp": "rtmp://ingest/live/{tenant}-{camera}?token={token}",
        "mjpeg": "http://ingest/cameras/{tenant}/{camera}/stream",
    }[protocol]
    publish: dict[str, Any] = {"protocol": protocol, "url": url, "bitrate": 300000}
    if protocol == "mjpeg":
        publish["headersFrom"] = [
            {"header": "X-Api-Key", "secretKeyRef": {"name": "relay-api", "key": "key"}}
        ]
    integration["spec"]["camera"] = {"publish": publish}
    settings = CameraSettings.from_environ(camera_env(probe, integration, mounts))
    assert settings.push is None and settings.publish is not None and settings.stream_endpoint is not None
    assert settings.publish.protocol == protocol
    assert (settings.publish.bitrate, settings.publish.keyframe_interval) == (
        300000,
        2.0,
    )  # the CRD's default
    request = settings.stream_endpoint.render(tenant="acme-7", camera="1", token=settings.token("acme-7"))
    assert request.url == url.format(tenant="acme-7", camera="1", token=TOKEN)
    if protocol == "mjpeg":
        assert (request.method, request.headers["X-Api-Key"]) == ("POST", API_KEY)


def test_with_a_tc_shaper_the_viewer_adds_only_what_netem_cannot(
    probe: dict[str, Any], integration: dict[str, Any], mounts: dict[str, Path]
) -> None:
    settings = ViewerSettings.from_environ(viewer_env(probe, integration, mounts, profile="poor-tc"))
    assert settings.shaper == "tc"
    (profile,) = settings.profiles
    assert profile.name == "poor-tc"
    assert (profile.bandwidth_bps, profile.latency_s, profile.jitter_s, profile.loss) == (None, 0.0, 0.0, 0.0)
    assert (profile.stall_probability, profile.stall_s) == (POOR.stall_probability, POOR.stall_s)


def test_the_integrations_policy_is_applied_when_given(
    probe: dict[str, Any], integration: dict[str, Any], mounts: dict[str, Path]
) -> None:
    environ = viewer_env(probe, integration, mounts)
    environ["CANARYWATCH_POLICY"] = json.dumps(integration["spec"]["policy"])
    policy = ViewerSettings.from_environ(environ).policy
    stale = policy.rule(Verdict.STALE)
    assert stale.incident and stale.confirmation == Confirmation(frames=5, of_last=10)


def test_without_a_token_secret_the_token_is_empty(
    probe: dict[str, Any], integration: dict[str, Any], mounts: dict[str, Path]
) -> None:
    for tenant in probe["spec"]["tenants"]:
        del tenant["tokenSecretRef"]
    environ = viewer_env(probe, integration, mounts)
    assert "CANARYWATCH_TOKEN_DIR" not in environ
    assert ViewerSettings.from_environ(environ).token("acme-7") == ""


# -- what stops them ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("variable", "value", "named", "says"),
    [
        ("CANARYWATCH_TENANTS", None, "CANARYWATCH_TENANTS", "required"),
        ("CANARYWATCH_TENANTS", "acme-7,acme 7", "CANARYWATCH_TENANTS", "not a valid tenant id"),
        ("CANARYWATCH_TENANTS", "acme-7,acme-7", "CANARYWATCH_TENANTS", "lists an item twice"),
        ("CANARYWATCH_ROLE", "camera", "CANARYWATCH_ROLE", "this is the viewer agent"),
        ("CANARYWATCH_FPS", "fast", "CANARYWATCH_FPS", "expected a number"),
        ("CANARYWATCH_FPS", "-2", "CANARYWATCH_FPS", "expected a number > 0"),
        ("CANARYWATCH_CAMERAS", "0", "CANARYWATCH_CAMERAS", "from 1 to 16"),
        ("CANARYWATCH_METRICS_PORT", "70000", "CANARYWATCH_METRICS_PORT", "from 0 to 65535"),
        ("CANARYWATCH_ADAPTER", "{not json", "CANARYWATCH_ADAPTER", "not valid JSON"),
        ("CANARYWATCH_ADAPTER", "[]", "CANARYWATCH_ADAPTER", "expected a JSON object"),
        (
            "CANARYWATCH_NETWORK_PROFILES",
            '{"good": "good", "wifi": "wifi-7"}',
            "CANARYWATCH_NETWORK_PROFILES.wifi",
            "good, poor, extreme",
        ),
        ("CANARYWATCH_NETWORK_PROFILES", "{}", "CANARYWATCH_NETWORK_PROFILES", "at least one"),
        ("CANARYWATCH_NETWORK_PROFILES", '["poor"]', "CANARYWATCH_NETWORK_PROFILES", "a JSON object"),
        ("CANARYWATCH_NETWORK_SHAPER", "iptables", "CANARYWATCH_NETWORK_SHAPER", "application, tc"),
        ("CANARYWATCH_TRANSPORTS", "snapshot,webrtc", "CANARYWATCH_TRANSPORTS", "unknown transport 'webrtc'"),
        ("CANARYWATCH_FRESHNESS_SECONDS", "0", "CANARYWATCH_FRESHNESS_SECONDS", "> 0"),
        ("CANARYWATCH_SECRET_0", None, "CANARYWATCH_SECRET_0", "not set"),
        ("CANARYWATCH_TOKEN_DIR", "/nonexistent/token", "CANARYWATCH_TOKEN_DIR", "cannot read"),
        ("CANARYWATCH_POLICY", '{"mode": "yolo"}', "CANARYWATCH_POLICY.mode", "accepted: enforce"),
        ("CANARYWATCH_INCIDENT_QUIET_SECONDS", "soon", "CANARYWATCH_INCIDENT_QUIET_SECONDS", "a number"),
        ("CANARYWATCH_INCIDENT_REPEAT_SECONDS", "0", "CANARYWATCH_INCIDENT_REPEAT_SECONDS", "> 0"),
    ],
)
def test_a_bad_viewer_variable_is_named(
    probe: dict[str, Any],
    integration: dict[str, Any],
    mounts: dict[str, Path],
    variable: str,
    value: str | None,
    named: str,
    says: str,
) -> None:
    environ = viewer_env(probe, integration, mounts)
    if value is None:
        del environ[variable]
    else:
        environ[variable] = value
    with pytest.raises(EnvError) as raised:
        ViewerSettings.from_environ(environ)
    assert raised.value.variable == named
    assert str(raised.value).startswith(f"{named}: ") and says in str(raised.value)


def test_an_adapter_without_the_endpoint_of_a_transport_is_named(
    probe: dict[str, Any], integration: dict[str, Any], mounts: dict[str, Path]
) -> None:
    environ = viewer_env(probe, integration, mounts)
    adapter = json.loads(environ["CANARYWATCH_ADAPTER"])
    del adapter["events"]
    environ["CANARYWATCH_ADAPTER"] = json.dumps(adapter)
    with pytest.raises(EnvError, match=r"^CANARYWATCH_ADAPTER: transport events needs the events endpoint"):
        ViewerSettings.from_environ(environ)
    adapter["events"] = {"url": "ftp://relay/{tenant}"}
    environ["CANARYWATCH_ADAPTER"] = json.dumps(adapter)
    with pytest.raises(EnvError) as raised:
        ViewerSettings.from_environ(environ)
    assert raised.value.variable == "CANARYWATCH_ADAPTER.events.url"


@pytest.mark.parametrize(
    ("variable", "value", "says"),
    [
        ("CANARYWATCH_FRAME_WIDTH", "32", "from 64 to 3840"),
        ("CANARYWATCH_FRAME_HEIGHT", None, "required"),
        (
            "CANARYWATCH_ADAPTER",
            '{"push": {"url": "http://x/{tenant}"}, "serve": {"port": 8080}}',
            "exactly one",
        ),
        ("CANARYWATCH_ADAPTER", '{"serve": {"port": 9100}}', "must differ"),
        ("CANARYWATCH_ROLE", "viewer", "this is the camera agent"),
    ],
)
def test_a_bad_camera_variable_is_named(
    probe: dict[str, Any],
    integration: dict[str, Any],
    mounts: dict[str, Path],
    variable: str,
    value: str | None,
    says: str,
) -> None:
    environ = camera_env(probe, integration, mounts)
    if value is None:
        del environ[variable]
    else:
        environ[variable] = value
    with pytest.raises(EnvError) as raised:
        CameraSettings.from_environ(environ)
    assert raised.value.variable.startswith(variable) and says in str(raised.value)


def test_secrets_stay_out_of_reprs_and_messages(
    probe: dict[str, Any], integration: dict[str, Any], mounts: dict[str, Path]
) -> None:
    environ = viewer_env(probe, integration, mounts)
    settings = ViewerSettings.from_environ(environ)
    shown = repr(settings) + repr(settings.endpoints)
    assert TOKEN not in shown and API_KEY not in shown
    environ["CANARYWATCH_ADAPTER"] = environ["CANARYWATCH_ADAPTER"].replace('"url":', '"uri":', 1)
    with pytest.raises(EnvError) as raised:
        ViewerSettings.from_environ(environ)
    assert TOKEN not in str(raised.value) and API_KEY not in str(raised.value)


@pytest.mark.parametrize("run", [run_viewer_agent, run_camera_agent], ids=["viewer", "camera"])
def test_the_agents_exit_2_naming_the_variable(
    probe: dict[str, Any],
    integration: dict[str, Any],
    mounts: dict[str, Path],
    run: Any,
    caplog: pytest.LogCaptureFixture,
) -> None:
    environ = (viewer_env if run is run_viewer_agent else camera_env)(probe, integration, mounts)
    environ["CANARYWATCH_FPS"] = "0"
    with caplog.at_level(logging.ERROR):
        assert run(environ) == 2
    assert "CANARYWATCH_FPS: expected a number > 0" in caplog.text


#: What a pod's agent must not have loaded when its environment is bad: the image codecs
#: and FFmpeg (~1 s of CPU and ~50 MiB that a crash-looping pod would pay at every start),
#: and jsonschema (~2 MiB): the CRDs' bounds and defaults are read without validating.
IMAGE_STACK = ("cv2", "numpy", "av", "simplejpeg", "jsonschema")


@pytest.mark.parametrize("role", ["viewer", "camera"])
@pytest.mark.parametrize(("variable", "value"), [("CANARYWATCH_FPS", "fast"), ("CANARYWATCH_ADAPTER", "{")])
def test_a_bad_environment_exits_2_before_the_image_stack_is_imported(
    probe: dict[str, Any],
    integration: dict[str, Any],
    mounts: dict[str, Path],
    role: str,
    variable: str,
    value: str,
) -> None:
    # The pod's own command (`canarywatch <role>`) in a fresh interpreter: the modules it
    # loaded are counted, not timed.
    environ = (viewer_env if role == "viewer" else camera_env)(probe, integration, mounts)
    environ[variable] = value
    code = (
        "import json, sys\n"
        "from canarywatch.cli import main\n"
        f"status = main([{role!r}])\n"
        f"print(json.dumps([status, [m for m in {IMAGE_STACK!r} if m in sys.modules]]))\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("CANARYWATCH_")} | environ
    run = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120, check=True
    )
    status, loaded = json.loads(run.stdout)
    assert status == 2 and f"bad configuration: {variable}" in run.stderr, run.stderr
    assert loaded == [], f"a bad {variable} loaded {loaded} before exiting"


@pytest.mark.parametrize("settings", [CameraSettings, ViewerSettings], ids=["camera", "viewer"])
def test_a_good_environment_is_read_without_jsonschema(
    probe: dict[str, Any],
    integration: dict[str, Any],
    mounts: dict[str, Path],
    settings: type[CameraSettings | ViewerSettings],
) -> None:
    # What a running pod keeps: its settings read, the agent's module imported.
    environ = (camera_env if settings is CameraSettings else viewer_env)(probe, integration, mounts)
    role = "camera" if settings is CameraSettings else "viewer"
    code = (
        f"import json\nimport canarywatch.agents.{role}\n"
        f"from canarywatch.agents.env import {settings.__name__}\n"
        f"{settings.__name__}.from_environ(json.loads({json.dumps(environ)!r}))\n"
    )
    assert loaded_after(code, ["jsonschema"]) == set()


# -- keyrings -------------------------------------------------------------------------------


def _projected_volume(directory: Path, files: dict[str, str]) -> Path:
    """A directory laid out like a kubelet's projected Secret volume: the files are
    symlinks through ``..data`` into a timestamped directory."""
    directory.mkdir()
    payload = directory / "..2026_03_14_09_26_53.000000001"
    payload.mkdir()
    for name, text in files.items():
        (payload / name).write_text(text)
    (directory / "..data").symlink_to(payload.name)
    for name in files:
        (directory / name).symlink_to(f"..data/{name}")
    return directory


def test_keyrings_of_a_projected_volume_are_merged(tmp_path: Path) -> None:
    keys = Keyring.generate(["acme-7", "bravo-2", "charlie-3"])
    directory = _projected_volume(
        tmp_path / "keyring",
        {f"{t}.json": Keyring({t: keys.key(t)}).to_json() for t in keys},
    )
    merged = load_keyring(directory, require=("acme-7",))
    assert {t: merged.key(t) for t in merged} == {t: keys.key(t) for t in keys}


def test_keyring_problems_name_the_directory_variable(tmp_path: Path) -> None:
    keys = Keyring.generate(["acme-7", "bravo-2"])
    directory = tmp_path / "keyring"
    directory.mkdir()
    (directory / "bravo-2.json").write_text(Keyring({"bravo-2": keys.key("bravo-2")}).to_json())
    with pytest.raises(EnvError, match=r"^CANARYWATCH_KEYRING_DIR: no key for acme-7 .*found bravo-2"):
        load_keyring(directory, require=("acme-7",))
    other = Keyring.generate(["bravo-2"])
    (directory / "again.json").write_text(other.to_json())
    with pytest.raises(EnvError, match="holds a different key for tenant 'bravo-2'"):
        load_keyring(directory, require=("bravo-2",))
    (directory / "again.json").write_text('{"version": 1}')
    with pytest.raises(EnvError, match=r"again.json is not a keyring") as raised:
        load_keyring(directory, require=("bravo-2",))
    assert keys.keys["bravo-2"].hex() not in str(raised.value)
    with pytest.raises(EnvError, match=r"no key for acme-7 .*no keyring files"):
        load_keyring(tmp_path / "missing", require=("acme-7",))


def test_a_viewer_pod_watches_mp4_and_llhls_paths_by_their_own_freshness(
    probe: dict[str, Any], integration: dict[str, Any], mounts: dict[str, Path]
) -> None:
    base = "http://canarywatch-relay:9000/v3/devices/{tenant}/{camera}"
    token = {"Authorization": "Bearer {token}"}
    integration["spec"]["viewer"]["mp4"] = {"url": f"{base}/live.mp4", "headers": token}
    integration["spec"]["viewer"]["llhls"] = {"url": f"{base}/hls/ll.m3u8", "headers": token}
    probe["spec"]["transports"] = ["mp4", "llhls"]
    probe["spec"]["freshnessByPath"] = {"mp4": 4, "llhls": 2}
    settings = ViewerSettings.from_environ(viewer_env(probe, integration, mounts))
    assert settings.transports == ("mp4", "llhls") and {"mp4", "llhls"} <= set(settings.endpoints)
    assert dict(settings.freshness_by_path) == {"mp4": 4.0, "llhls": 2.0}
    llhls = settings.endpoints["llhls"].render(tenant="acme-7", camera="1", token=settings.token("acme-7"))
    assert llhls.url == "http://canarywatch-relay:9000/v3/devices/acme-7/1/hls/ll.m3u8"
