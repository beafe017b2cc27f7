"""The API server side of the operator benchmark: the test suite's control plane (a
real etcd + kube-apiserver), plain-dict calls as its admin, the CRDs installed and
served, the audit log's request counts, the CPU time of its processes, and poll helpers."""

from __future__ import annotations

import json
import os
import sys
import time
from collections import Counter
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from types import ModuleType
from typing import Any

import yaml

from canarywatch.api import API_VERSION

__all__ = [
    "AUDIT_POLICY",
    "Api",
    "audit_counts",
    "controlplane_module",
    "cpu_seconds",
    "first_found",
    "free_port",
    "install_crds",
    "percentile",
    "until",
]

_REPO = Path(__file__).resolve().parents[3]
_GROUP = f"/apis/{API_VERSION}"
#: Who did what: the requests of service accounts, as they are received.
AUDIT_POLICY = """\
apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: [ResponseStarted, ResponseComplete, Panic]
rules:
  - level: Metadata
    userGroups: ["system:serviceaccounts"]
  - level: None
"""


def controlplane_module() -> ModuleType:
    support = _REPO / "tests" / "support"
    if not (support / "controlplane.py").is_file():
        raise ImportError(f"{support / 'controlplane.py'} not found (run from a source checkout)")
    if str(support) not in sys.path:
        sys.path.insert(0, str(support))
    import importlib

    return importlib.import_module("controlplane")


class Api:
    """Plain-dict calls as the admin user (thread-safe: the client pools connections)."""

    def __init__(self, api_client: Any) -> None:
        self.client = api_client

    def call(
        self, method: str, path: str, body: Any = None, content_type: str = "application/json", **query: str
    ) -> Any:
        serialized = self.client.param_serialize(
            method,
            path,
            query_params=list(query.items()),
            header_params={"Content-Type": content_type, "Accept": "application/json"},
            body=body,
            auth_settings=["BearerToken"],
        )
        response = self.client.call_api(*serialized)
        response.read()
        if response.status >= 400:
            raise RuntimeError(f"{method} {path}: {response.status} {response.data[:300]!r}")
        return json.loads(response.data) if response.data else None

    def create(self, path: str, body: Any) -> Any:
        return self.call("POST", path, body)

    def apply(self, path: str, body: Any) -> Any:
        return self.call(
            "PATCH", path, body, "application/apply-patch+yaml", fieldManager="bench", force="true"
        )

    def patch(self, path: str, body: Any) -> Any:
        return self.call("PATCH", path, body, "application/merge-patch+json")

    def get(self, path: str) -> Any:
        return self.call("GET", path)


def install_crds(api: Api) -> None:
    names = []
    for path in sorted((_REPO / "crds").glob("*.yaml")):
        crd = yaml.safe_load(path.read_text())
        names.append(crd["metadata"]["name"])
        api.apply(f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{crd['metadata']['name']}", crd)

    def established() -> bool:
        for name in names:
            crd = api.get(f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{name}")
            conditions = {c["type"]: c["status"] for c in (crd.get("status") or {}).get("conditions") or []}
            if conditions.get("Established") != "True":
                return False
        try:
            api.get(f"{_GROUP}/canaryprobes")
        except RuntimeError:
            return False
        return True

    until(established, 30, "the CRDs to be established")


def until(check: Callable[[], bool], timeout: float, what: str, *, interval: float = 0.1) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)


def audit_counts(audit_log: Path, user: str, *, until: float) -> Counter[tuple[str, str]]:
    """The requests of ``user`` received before the wall-clock time ``until``."""
    counts: Counter[tuple[str, str]] = Counter()
    for line in audit_log.read_text().splitlines():
        event = json.loads(line)
        ref = event.get("objectRef")
        if event["user"]["username"] != user:
            continue
        received = datetime.fromisoformat(event["requestReceivedTimestamp"].replace("Z", "+00:00"))
        if received.timestamp() > until:
            continue
        if ref is None:
            counts[(event["verb"], "(discovery)")] += 1
            continue
        resource = ref["resource"] + (f"/{ref['subresource']}" if ref.get("subresource") else "")
        counts[(event["verb"], resource)] += 1
    return counts


def cpu_seconds(pids: dict[str, int]) -> dict[str, float]:
    """User + system CPU seconds each process has used so far (gone: left out)."""
    tick = os.sysconf("SC_CLK_TCK")
    used = {}
    for name, pid in pids.items():
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        used[name] = (int(fields[11]) + int(fields[12])) / tick
    return used


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def first_found(find: Callable[[], list[str]], timeout: float, what: str) -> str:
    """The first thing ``find`` finds, polling until ``timeout``."""
    found: list[str] = []

    def any_found() -> bool:
        found[:] = find()
        return bool(found)

    until(any_found, timeout, what, interval=0.05)
    return found[0]


def percentile(values: list[float], percent: float) -> float:
    """Nearest-rank percentile: with 20 samples, p99 is the slowest one."""
    ordered = sorted(values)
    rank = max(1, -(-len(ordered) * percent // 100))
    return ordered[int(rank) - 1]
