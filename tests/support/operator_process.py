"""``canarywatch operator`` as a subprocess, the way the cluster and kmock tiers run it:
``run_operator()`` from ``controller.main``, configured by ``CANARYWATCH_*`` variables
and a kubeconfig, its log in a file."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path
from typing import Any

import controlplane
from polling import eventually

__all__ = ["AGENT_IMAGE", "Operator"]

AGENT_IMAGE = "registry.example/canarywatch:test"


class Operator:
    """``canarywatch operator`` in a subprocess (own process group), its log in a file."""

    def __init__(
        self, kubeconfig: Path, namespace: str, log_dir: Path, name: str, env: dict[str, str]
    ) -> None:
        self.name = name
        self.namespace = namespace
        self.metrics_port = controlplane.free_port()
        self.liveness_port = controlplane.free_port()
        self.log_path = log_dir / f"{name}.log"
        self.env = {
            **os.environ,
            "KUBECONFIG": str(kubeconfig),
            "CANARYWATCH_NAMESPACES": namespace,
            "CANARYWATCH_OPERATOR_NAMESPACE": namespace,
            "CANARYWATCH_POD_NAME": name,
            "CANARYWATCH_LISTEN_HOST": "127.0.0.1",
            "CANARYWATCH_METRICS_PORT": str(self.metrics_port),
            "CANARYWATCH_LIVENESS_PORT": str(self.liveness_port),
            "CANARYWATCH_AGENT_IMAGE": AGENT_IMAGE,
            "CANARYWATCH_STATUS_INTERVAL_SECONDS": "2",
            # a camera Deployment with no pod is down at once (nothing runs pods here)
            "CANARYWATCH_CAMERA_START_GRACE_SECONDS": "0.001",
            "CANARYWATCH_RESOLVE_CHECK_SECONDS": "0.5",
            "CANARYWATCH_PAGERDUTY_RETRY_SECONDS": "0.2",
            "CANARYWATCH_PAGERDUTY_TIMEOUT_SECONDS": "30",
            "CANARYWATCH_LEASE_DURATION_SECONDS": "3",
            "CANARYWATCH_LEASE_RENEW_DEADLINE_SECONDS": "2",
            "CANARYWATCH_LEASE_RETRY_SECONDS": "0.5",
            **env,
        }
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> Operator:
        code = "from canarywatch.controller.main import run_operator; raise SystemExit(run_operator())"
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-c", code],
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        return self

    def health(self) -> dict[str, Any] | None:
        try:
            with urllib.request.urlopen(
                f"http://127.0.0.1:{self.liveness_port}/healthz", timeout=2
            ) as answer:
                return dict(json.loads(answer.read()))
        except OSError:
            return None

    def wait_leading(self, timeout: float = 30) -> None:
        def leading() -> bool:
            self.assert_running()
            health = self.health()
            return health is not None and "standby" not in health

        eventually(leading, timeout=timeout, what=f"operator {self.name} to lead")

    def metric(self, name: str, labels: dict[str, str] | None = None) -> float | None:
        from prometheus_client.parser import text_string_to_metric_families

        with urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=5) as answer:
            text = answer.read().decode()
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                if sample.name == name and all(sample.labels.get(k) == v for k, v in (labels or {}).items()):
                    return float(sample.value)
        return None

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def assert_running(self) -> None:
        assert self.process is not None and self.process.poll() is None, (
            f"{self.name} exited:\n{self.log()[-3000:]}"
        )

    def kill(self) -> None:
        """SIGKILL, as a node failure or OOM kill would."""
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)

    def stop(self) -> int:
        assert self.process is not None
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.kill()
        return int(self.process.returncode)
