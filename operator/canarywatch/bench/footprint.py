"""Idle RSS of the pod processes: the camera and viewer agents of a probe, started as
their pods start them (``canarywatch camera`` / ``canarywatch viewer``, the container's
command) with the environment the operator's manifest builders give them.

The probe's workloads come from ``controller.manifests.build_probe_workloads``, so the
pods measured are the ones the operator would run, however it splits a probe into pods
(one per tenant, or one for the whole probe). Only what a cluster would supply is filled
in: the downward API, the keyring Secret as files, loopback ports instead of pod IPs.
The integration is one that pulls (``camera.serve``) and whose viewer endpoints are the
cameras' own snapshot and MJPEG URLs, so every viewer decodes and judges real canary
frames. Once every viewer has judged frames, the processes are left to settle and
their ``VmRSS`` and ``VmHWM`` (peak) are read from ``/proc``: what a pod costs at rest.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from canarywatch.api import AgentEnv
from canarywatch.controller.manifests import build_probe_workloads
from canarywatch.markers.keyring import Keyring

__all__ = [
    "TARGET_MIB",
    "AgentPod",
    "import_cost",
    "native_libraries",
    "pod_footprints",
    "run_footprint_benchmark",
]

TARGET_MIB = 80
TENANTS = ("acme-7", "bravo-2")
PROFILES = ("good", "poor")
_PLACEHOLDER_PORT = 9  # the integration's URLs name it; each viewer gets its camera's port
#: What a pod runs (the image's ``canarywatch`` console script is ``cli.main``), with the
#: service-account folder a pod has at a fixed path moved to the bench's.
_ENTRY = (
    "import os, sys, pathlib\n"
    "import canarywatch.agents.kubeapi as api\n"
    "api.SERVICE_ACCOUNT_DIR = pathlib.Path(os.environ['_BENCH_SERVICE_ACCOUNT_DIR'])\n"
    "from canarywatch.cli import main\n"
    "sys.exit(main())\n"
)
_FRAMES = "canarywatch_frames_total{"  # frames judged, by verdict, path and profile
_OWN_TENANT = "CANARYWATCH_TENANT"  # a pod per tenant (the contract before a pod per probe)
_HEAVY = ("cv2", "numpy", "av", "kubernetes", "aiohttp", "jsonschema")
#: Native libraries a running pod may have mapped: the image stack, by package folder.
_NATIVE = ("cv2", "av", "numpy", "simplejpeg")


@dataclass(frozen=True)
class AgentPod:
    """One pod's process as measured."""

    role: str
    tenants: tuple[str, ...]
    rss_mib: float
    peak_mib: float
    #: which of ``_NATIVE`` the process has mapped (``/proc/<pid>/maps``)
    native: tuple[str, ...] = ()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _manifests(tenants: tuple[str, ...], profiles: tuple[str, ...]) -> list[dict[str, Any]]:
    viewer = f"http://127.0.0.1:{_PLACEHOLDER_PORT}/cameras/{{tenant}}/{{camera}}"
    integration = {
        "apiVersion": "canarywatch.io/v1alpha1",
        "kind": "CameraIntegration",
        "metadata": {"name": "bench", "namespace": "bench", "uid": "bench-integration"},
        "spec": {
            "camera": {"serve": {"port": 8080}},
            "viewer": {
                "snapshot": {"url": f"{viewer}/snapshot.jpg"},
                "mjpeg": {"url": f"{viewer}/stream.mjpg"},
                "pollInterval": 0.5,
            },
        },
    }
    probe = {
        "apiVersion": "canarywatch.io/v1alpha1",
        "kind": "CanaryProbe",
        "metadata": {"name": "bench", "namespace": "bench", "uid": "bench-probe"},
        "spec": {
            "integrationRef": {"name": "bench"},
            "tenants": [{"id": tenant} for tenant in tenants],
            "camerasPerTenant": 2,
            "fps": 2,
            "frameSize": {"width": 1280, "height": 720},
            "networkProfiles": list(profiles),
            "transports": ["snapshot", "mjpeg"],
            "freshnessSeconds": 10,
        },
    }
    workloads = build_probe_workloads(probe, integration, image="canarywatch:bench")
    return [obj for obj in workloads if obj["kind"] == "Deployment"]


def _container_env(deployment: Mapping[str, Any], values: Mapping[str, str]) -> dict[str, str]:
    """The container's variables with the downward API and the pod's paths filled in."""
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    downward = {"metadata.namespace": "bench", "metadata.name": deployment["metadata"]["name"]}
    env: dict[str, str] = {}
    for variable in container["env"]:
        if "value" in variable:
            env[variable["name"]] = variable["value"]
        elif "fieldRef" in variable.get("valueFrom", {}):
            path = variable["valueFrom"]["fieldRef"]["fieldPath"]
            if path in downward:
                env[variable["name"]] = downward[path]
        else:  # a Secret the bench's integration does not have
            raise RuntimeError(f"the bench cannot fill {variable['name']}")
    return {**env, **values}


def _environments(
    directory: Path, tenants: tuple[str, ...], profiles: tuple[str, ...]
) -> list[dict[str, str]]:
    """One environment per pod of the probe: cameras first, each viewer pointed at the
    camera pod serving its tenant."""
    keyring = Keyring.generate(tenants)
    for tenant in tenants:
        (directory / f"{tenant}.json").write_text(Keyring({tenant: keyring.key(tenant)}).to_json())
    common = {
        # this interpreter's, so the pods run the code under test (a checkout on PYTHONPATH)
        **{k: os.environ[k] for k in ("PATH", "PYTHONPATH") if k in os.environ},
        AgentEnv.KEYRING_DIR: str(directory),
        "CANARYWATCH_METRICS_HOST": "127.0.0.1",
        "CANARYWATCH_LOG_LEVEL": "ERROR",
        # in-cluster, as a pod: an API server on a closed port (nothing is reported at rest)
        "KUBERNETES_SERVICE_HOST": "127.0.0.1",
        "KUBERNETES_SERVICE_PORT": str(_free_port()),
        "_BENCH_SERVICE_ACCOUNT_DIR": str(_service_account(directory)),
    }
    cameras: list[dict[str, str]] = []
    viewers: list[dict[str, str]] = []
    port_of: dict[str, int] = {}
    for deployment in _manifests(tenants, profiles):
        values = {**common, AgentEnv.METRICS_PORT: str(_free_port())}
        env = _container_env(deployment, values)
        if env[AgentEnv.ROLE] == "camera":
            port = _free_port()
            env[AgentEnv.ADAPTER] = json.dumps({"serve": {"host": "127.0.0.1", "port": port}})
            port_of.update(dict.fromkeys(_tenants(env), port))
            cameras.append(env)
        else:
            viewers.append(env)
    for env in viewers:
        watched = {port_of[t] for t in _tenants(env)}
        if len(watched) != 1:
            raise RuntimeError("a viewer pod watches tenants of several camera pods")
        env[AgentEnv.ADAPTER] = env[AgentEnv.ADAPTER].replace(
            f"127.0.0.1:{_PLACEHOLDER_PORT}/", f"127.0.0.1:{watched.pop()}/"
        )
    return cameras + viewers


def _service_account(directory: Path) -> Path:
    """A pod's service-account folder: a token, and a CA (the system's; nothing connects)."""
    paths = ssl.get_default_verify_paths()
    ca = next((Path(p) for p in (paths.cafile, paths.openssl_cafile) if p and Path(p).is_file()), None)
    if ca is None:
        raise RuntimeError("no CA bundle on this machine to stand in for the cluster's")
    account = directory / "serviceaccount"
    account.mkdir()
    (account / "token").write_text("bench")
    shutil.copyfile(ca, account / "ca.crt")
    return account


def _tenants(env: Mapping[str, str]) -> tuple[str, ...]:
    """The tenants whose cameras a camera pod runs, or whose views a viewer pod watches:
    every tenant's (a pod per probe), or with pods per tenant its own (whose viewers list
    every tenant in ``TENANTS`` for the authorization probe)."""
    own = env.get(_OWN_TENANT)
    return (own,) if own else tuple(env[AgentEnv.TENANTS].split(","))


def _frames_judged(metrics_port: str) -> float:
    url = f"http://127.0.0.1:{metrics_port}/metrics"
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            text = response.read().decode()
    except OSError:
        return 0.0
    counts = (line.rsplit(" ", 1)[1] for line in text.splitlines() if line.startswith(_FRAMES))
    return sum(float(count) for count in counts)


def native_libraries(pid: int) -> tuple[str, ...]:
    """Which of OpenCV, PyAV (FFmpeg), numpy and simplejpeg process ``pid`` has loaded:
    their shared objects in its memory map, whatever imported them."""
    maps = Path(f"/proc/{pid}/maps").read_text()
    return tuple(name for name in _NATIVE if f"/{name}/" in maps)


def _memory(pid: int) -> tuple[float, float]:
    status = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines())
    return int(status["VmRSS"].split()[0]) / 1024, int(status["VmHWM"].split()[0]) / 1024


@contextlib.contextmanager
def _running(environments: list[dict[str, str]]) -> Iterator[list[subprocess.Popen[str]]]:
    processes: list[subprocess.Popen[str]] = []
    try:
        for env in environments:
            processes.append(
                subprocess.Popen(
                    [sys.executable, "-c", _ENTRY, env[AgentEnv.ROLE]],
                    env=env,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.PIPE,
                    text=True,
                )
            )
        yield processes
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            try:
                process.communicate(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.communicate()


def pod_footprints(
    tenants: tuple[str, ...], profiles: tuple[str, ...], *, settle_s: float = 5.0, timeout_s: float = 60.0
) -> list[AgentPod]:
    """Start every pod process of a probe of ``tenants`` × ``profiles``, wait until each
    viewer has judged frames and ``settle_s`` more, and read each process's memory."""
    with tempfile.TemporaryDirectory(prefix="canarywatch-footprint-") as tmp:
        environments = _environments(Path(tmp), tenants, profiles)
        with _running(environments) as processes:
            deadline = time.monotonic() + timeout_s
            waiting = [env for env in environments if env[AgentEnv.ROLE] == "viewer"]
            while waiting:
                for process, env in zip(processes, environments, strict=True):
                    if process.poll() is not None:
                        _, err = process.communicate()
                        raise RuntimeError(
                            f"the {env[AgentEnv.ROLE]} agent exited with {process.returncode}: {err[-800:]}"
                        )
                waiting = [env for env in waiting if _frames_judged(env[AgentEnv.METRICS_PORT]) == 0]
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{len(waiting)} viewer(s) judged no frame in {timeout_s:g} s")
                time.sleep(0.5)
            time.sleep(settle_s)
            pods = []
            for process, env in zip(processes, environments, strict=True):
                rss, peak = _memory(process.pid)
                pods.append(
                    AgentPod(env[AgentEnv.ROLE], _tenants(env), rss, peak, native_libraries(process.pid))
                )
            return pods


def import_cost(role: str) -> tuple[float, int, tuple[str, ...]]:
    """(CPU seconds, modules, heavy modules loaded) of importing what ``canarywatch
    <role>`` imports before it reads its environment, in a fresh interpreter."""
    code = (
        "import json, sys, time\n"
        "t = time.process_time()\n"
        f"import canarywatch.cli, canarywatch.agents.{role}\n"
        "t = time.process_time() - t\n"
        f"print(json.dumps([t, len(sys.modules), [m for m in {list(_HEAVY)!r} if m in sys.modules]]))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    seconds, modules, heavy = json.loads(out)
    return float(seconds), int(modules), tuple(heavy)


def run_footprint_benchmark(*, settle_s: float = 5.0) -> int:
    """Print each pod's idle and peak RSS against the target, and each agent's import cost."""
    print(f"\n== pod footprint: idle RSS once viewers judge frames (target <= {TARGET_MIB} MiB a pod) ==")
    print("   cameras: 2 per tenant, 1280x720 at 2 fps, served; viewers: snapshot + MJPEG from them")
    print(
        f"{'probe':>14} {'pod':>7} {'tenants':>16} {'RSS':>10} {'peak':>10} {'target':>8}  image stack loaded"
    )
    worst = 0.0
    for tenants, profiles in ((TENANTS[:1], PROFILES[:1]), (TENANTS, PROFILES)):
        label = f"{len(tenants)}t x {len(profiles)}p"
        for pod in pod_footprints(tenants, profiles, settle_s=settle_s):
            worst = max(worst, pod.rss_mib)
            verdict = "ok" if pod.rss_mib <= TARGET_MIB else "OVER"
            print(
                f"{label:>14} {pod.role:>7} {','.join(pod.tenants):>16} {pod.rss_mib:>6.1f} MiB"
                f" {pod.peak_mib:>6.1f} MiB {verdict:>8}  {', '.join(pod.native) or 'none'}"
            )
    print(f"\n{'agent':>8} {'import CPU':>11} {'modules':>8}  heavy modules imported before reading the env")
    for role in ("camera", "viewer"):
        seconds, modules, heavy = import_cost(role)
        print(f"{role:>8} {seconds:>9.2f} s {modules:>8}  {', '.join(heavy) or 'none'}")
    return 0 if worst <= TARGET_MIB else 1
