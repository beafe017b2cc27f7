"""What a killed test run leaves is removed by the next run's sweep: the node's network
and mount namespaces, its cgroups, its processes, its work dir and the iptables rules
inside its namespace; the host's own iptables rules are untouched.

Cheap (no Kubernetes): ``hack/realnode-ns.sh`` is driven directly, the "node" being a
``sleep`` in the namespaces and in the node's cgroups.
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest
from availability import unavailable
from realnode import NS_SCRIPT

pytestmark = pytest.mark.realcluster


def ns(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["bash", str(NS_SCRIPT), *args], capture_output=True, text=True, check=True)


def host_rules() -> str:
    return subprocess.run(["iptables-save"], capture_output=True, text=True, check=True).stdout


def mounts_naming(word: str) -> list[str]:
    return [line for line in Path("/proc/self/mountinfo").read_text().splitlines() if word in line]


def test_the_sweep_removes_everything_a_killed_run_left() -> None:
    if os.geteuid() != 0 or shutil.which("iptables-save") is None or shutil.which("nsenter") is None:
        unavailable("needs root, iptables and nsenter (make node-packages)")
    node_id = f"cwrc-{secrets.token_hex(4)}"
    workdir = Path(tempfile.mkdtemp(prefix="canarywatch-realnode-", dir="/tmp"))
    rules_before = "\n".join(line for line in host_rules().splitlines() if not line.startswith("#"))
    ns("create", node_id, str(workdir))
    dead = subprocess.Popen(["true"])
    dead.wait()
    (Path("/run/canarywatch-realnode") / node_id / "owner.pid").write_text(f"{dead.pid}\n")

    # What a run leaves: a rule in the node's iptables, a process in its namespaces and cgroups.
    ns("exec", node_id, "iptables", "-A", "INPUT", "-s", "10.232.0.99", "-j", "DROP")
    assert "10.232.0.99" not in host_rules()
    sleeper = subprocess.Popen(
        ["bash", str(NS_SCRIPT), "exec", node_id, "sleep", "600"], start_new_session=True
    )
    try:
        cgroup = Path("/sys/fs/cgroup/pids") / node_id / "leftover"
        cgroup.mkdir()
        (cgroup / "cgroup.procs").write_text(f"{sleeper.pid}\n")
        assert mounts_naming(node_id), "the mount namespace file is bound under /run"

        ns("sweep")

        assert sleeper.wait(timeout=30) != 0, "the node's process was killed"
        assert not Path(f"/run/netns/{node_id}").exists()
        assert not Path("/run/canarywatch-realnode", node_id).exists()
        assert list(Path("/sys/fs/cgroup").glob(f"*/{node_id}")) == []
        assert not workdir.exists()
        assert mounts_naming(node_id) == []
        rules_after = "\n".join(line for line in host_rules().splitlines() if not line.startswith("#"))
        assert rules_after == rules_before
    finally:
        if sleeper.poll() is None:
            sleeper.kill()
        subprocess.run(["bash", str(NS_SCRIPT), "destroy", node_id], capture_output=True, check=False)
