"""A probe's periodic status summary (``probes.summarize_probe``) waits for its reconcile:
until the status says the current spec was reconciled, it writes nothing (at a cold start
of 1,000 probes those writes were a status patch per waiting probe, and a failed
reconcile's Degraded condition is not the summary's to overwrite)."""

from __future__ import annotations

from typing import Any, cast

import pytest
from manifests import example

from canarywatch.controller.probes import summarize_probe
from canarywatch.controller.runtime import Runtime
from canarywatch.controller.settings import OperatorSettings
from canarywatch.metrics import Metrics

NS = "summaries"


@pytest.fixture
def probe() -> dict[str, Any]:
    obj = example("CanaryProbe")
    obj["metadata"] = {**obj["metadata"], "namespace": NS, "uid": "u-1", "generation": 2}
    return obj


def runtime() -> Runtime:
    settings = OperatorSettings.from_env({"CANARYWATCH_LEADER_ELECTION": "false"})
    return Runtime(settings=settings, kube=cast(Any, None), metrics=Metrics())


async def summary(probe: dict[str, Any]) -> dict[str, Any] | None:
    integration = example("CameraIntegration")
    integration["metadata"] = {**integration["metadata"], "namespace": NS}
    return await summarize_probe(runtime(), probe, deployments=[], integrations=[integration])


async def test_a_probe_not_reconciled_yet_gets_no_summary(probe: dict[str, Any]) -> None:
    assert await summary(probe) is None  # no status at all: waiting for its first reconcile
    probe["status"] = {"observedGeneration": 1, "tenants": 2}
    assert await summary(probe) is None  # its spec changed since: the reconcile writes next
    degraded = {"type": "Degraded", "status": "True", "reason": "ConfigurationProblem"}
    probe["status"] = {"conditions": [degraded]}  # a reconcile the API server refused
    assert await summary(probe) is None


async def test_a_reconciled_probe_gets_its_summary(probe: dict[str, Any]) -> None:
    probe["status"] = {"observedGeneration": 2}
    written = await summary(probe)
    assert written is not None
    assert written["observedGeneration"] == 2
    assert {c["type"] for c in written["conditions"]} >= {"Ready", "Degraded", "CameraDown"}
