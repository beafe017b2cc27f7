"""The API server side of the operator benchmark: the test suite's control plane (a
real etcd + kube-apiserver), plain-dict calls as its admin, the CRDs installed and
served, and a poll helper."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import yaml

from canarywatch.api import API_VERSION

__all__ = ["Api", "controlplane_module", "install_crds", "until"]

_REPO = Path(__file__).resolve().parents[3]
_GROUP = f"/apis/{API_VERSION}"


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
