"""Idle RSS of the pod processes: a camera agent and a viewer agent, started as a pod
starts them (``python -m canarywatch.agents.<role>``) with a minimal environment.

Nothing listens where they point (the snapshot URL and the Kubernetes API are closed
loopback ports), so the camera renders and serves at its frame rate and the viewer
polls and backs off: what each costs at rest, not under load.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from canarywatch.markers import Keyring

__all__ = ["agent_rss", "footprint_table"]

TARGET_MIB = 80
_TENANT = "acme-7"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _environments(directory: Path, *, width: int, height: int) -> dict[str, dict[str, str]]:
    (directory / f"{_TENANT}.json").write_text(Keyring.generate([_TENANT]).to_json())
    closed = _free_port()
    kubeconfig = directory / "kubeconfig"
    kubeconfig.write_text(
        json.dumps(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "c", "cluster": {"server": f"http://127.0.0.1:{closed}"}}],
                "users": [{"name": "u", "user": {"token": "bench"}}],
                "contexts": [{"name": "c", "context": {"cluster": "c", "user": "u", "namespace": "bench"}}],
                "current-context": "c",
            }
        )
    )
    common = {
        "PATH": os.environ.get("PATH", ""),
        "CANARYWATCH_NAMESPACE": "bench",
        "CANARYWATCH_POD_NAME": "bench-0",
        "CANARYWATCH_INTEGRATION": "bench",
        "CANARYWATCH_PROBE": "bench",
        "CANARYWATCH_TENANT": _TENANT,
        "CANARYWATCH_CAMERAS": "2",
        "CANARYWATCH_FPS": "2",
        "CANARYWATCH_KEYRING_DIR": str(directory),
        "CANARYWATCH_METRICS_HOST": "127.0.0.1",
        "CANARYWATCH_LOG_LEVEL": "ERROR",
    }
    return {
        "camera": {
            **common,
            "CANARYWATCH_ROLE": "camera",
            "CANARYWATCH_METRICS_PORT": str(_free_port()),
            "CANARYWATCH_ADAPTER": json.dumps({"serve": {"host": "127.0.0.1", "port": _free_port()}}),
            "CANARYWATCH_FRAME_WIDTH": str(width),
            "CANARYWATCH_FRAME_HEIGHT": str(height),
        },
        "viewer": {
            **common,
            "CANARYWATCH_ROLE": "viewer",
            "CANARYWATCH_METRICS_PORT": str(_free_port()),
            "CANARYWATCH_TENANTS": _TENANT,
            "CANARYWATCH_NETWORK_SHAPER": "application",
            "CANARYWATCH_NETWORK_PROFILE": json.dumps("good"),
            "CANARYWATCH_NETWORK_PROFILE_NAME": "good",
            "CANARYWATCH_TRANSPORTS": "snapshot",
            "CANARYWATCH_FRESHNESS_SECONDS": "10",
            "CANARYWATCH_ADAPTER": json.dumps(
                {"snapshot": {"url": f"http://127.0.0.1:{closed}/{{tenant}}/{{camera}}.jpg"}}
            ),
            "KUBECONFIG": str(kubeconfig),
        },
    }


def agent_rss(role: str, environ: dict[str, str], *, settle_s: float) -> tuple[float, float]:
    """(RSS, peak RSS) in MiB of `python -m canarywatch.agents.<role>` after `settle_s`."""
    process = subprocess.Popen(
        [sys.executable, "-m", f"canarywatch.agents.{role}"],
        env=environ,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        time.sleep(settle_s)
        if process.poll() is not None:
            _, err = process.communicate()
            raise RuntimeError(f"the {role} agent exited with {process.returncode}: {err[-500:]}")
        status = dict(
            line.split(":", 1) for line in Path(f"/proc/{process.pid}/status").read_text().splitlines()
        )
        return int(status["VmRSS"].split()[0]) / 1024, int(status["VmHWM"].split()[0]) / 1024
    finally:
        process.terminate()
        try:
            process.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.communicate()


def footprint_table(*, settle_s: float = 8.0, width: int = 1280, height: int = 720) -> None:
    print(f"\n== pod footprint: idle RSS of an agent process (2 cameras at {width}x{height}, 2 fps) ==")
    print(f"{'agent':>8} {'RSS':>9} {'peak':>9} {'target':>9}")
    with tempfile.TemporaryDirectory(prefix="canarywatch-footprint-") as tmp:
        for role, environ in _environments(Path(tmp), width=width, height=height).items():
            rss, peak = agent_rss(role, environ, settle_s=settle_s)
            print(f"{role:>8} {rss:>5.1f} MiB {peak:>5.1f} MiB {'<=' + str(TARGET_MIB) + ' MiB':>9}")
