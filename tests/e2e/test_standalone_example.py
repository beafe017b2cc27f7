"""`canarywatch run` with the README's example config against a relay configured like it.

Both run as real processes, the way a user runs them; only the port is moved off 9000
when something else holds it.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).parents[2] / "examples"
CLI = [sys.executable, "-m", "canarywatch.cli"]


def _free_port() -> int:
    with socket.socket() as s:
        if s.connect_ex(("127.0.0.1", 9000)) != 0:
            return 9000
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def port() -> int:
    return _free_port()


def _relay(port: int, fault: str) -> Iterator[subprocess.Popen[bytes]]:
    proc = subprocess.Popen(
        [
            *CLI,
            "relay",
            "--config",
            str(EXAMPLES / "standalone-relay.yaml"),
            "--port",
            str(port),
            "--fault",
            fault,
        ],
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                break
        time.sleep(0.1)
    try:
        yield proc
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def _run(
    port: int, tmp_path: Path, duration: int
) -> tuple[subprocess.CompletedProcess[str], dict[str, object]]:
    config = tmp_path / "standalone.yaml"
    config.write_text(
        (EXAMPLES / "standalone.yaml").read_text().replace("127.0.0.1:9000", f"127.0.0.1:{port}")
    )
    out = tmp_path / "out"
    result = subprocess.run(
        [*CLI, "run", "--config", str(config), "--duration", str(duration), "--out", str(out)],
        env={**os.environ, "BRAVO_TOKEN": "t-bravo"},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    summary = json.loads((out / "summary.json").read_text()) if (out / "summary.json").exists() else {}
    return result, summary


def test_example_catches_a_leak_and_switches_the_relay_off(port: int, tmp_path: Path) -> None:
    for _ in _relay(port, "xiaomi-2019"):
        result, summary = _run(port, tmp_path, 25)
        assert result.returncode == 0, result.stderr
        assert summary["state"] == "Suspended", result.stdout
        incidents = [json.loads(x) for x in (tmp_path / "out" / "incidents.jsonl").read_text().splitlines()]
        assert incidents[0]["verdict"] == "cross_tenant" and incidents[0]["shutdown"]["done"]
        assert incidents[0]["network_profile"] == "poor"  # good viewers never see this leak


def test_example_is_quiet_against_a_correct_relay(port: int, tmp_path: Path) -> None:
    for _ in _relay(port, "none"):
        result, summary = _run(port, tmp_path, 8)
        assert result.returncode == 0, result.stderr
        assert summary["incident_records"] == [] and summary["state"] == "Active"
        assert summary["verdicts"] == {"ok": summary["frames"]} and summary["frames"] > 20


def test_bad_config_exits_2_naming_the_field(tmp_path: Path) -> None:
    config = tmp_path / "bad.yaml"
    config.write_text((EXAMPLES / "standalone.yaml").read_text().replace("fps: 2", "fps: -1"))
    result = subprocess.run(
        [*CLI, "run", "--config", str(config)], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 2
    assert "probe.fps" in result.stderr


def test_missing_token_env_exits_2_naming_the_field(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "BRAVO_TOKEN"}
    result = subprocess.run(
        [*CLI, "run", "--config", str(EXAMPLES / "standalone.yaml")],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        check=False,
    )
    assert result.returncode == 2
    assert "probe.tenants[1].tokenFrom.env" in result.stderr
