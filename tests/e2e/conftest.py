"""The e2e tier's Kubernetes tests run against the cluster tier's real control plane.

``control_plane`` and ``namespace`` are the fixtures of ``tests/cluster/conftest.py``,
loaded from that file (a sibling directory's conftest is not visible here otherwise).
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

_CLUSTER_CONFTEST = Path(__file__).resolve().parents[1] / "cluster" / "conftest.py"


def _cluster_fixtures() -> object:
    name = "canarywatch_cluster_fixtures"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, _CLUSTER_CONFTEST)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


_cluster = _cluster_fixtures()
control_plane = _cluster.control_plane  # type: ignore[attr-defined]
namespace = _cluster.namespace  # type: ignore[attr-defined]


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "cluster: needs the real control plane (etcd + kube-apiserver)")
