"""The kmock tier: ``canarywatch operator`` (a subprocess, as in the cluster tier)
against kmock's Kubernetes emulator (``apiserver.ApiServer``) on 127.0.0.1, for what a
real kube-apiserver does not do on demand: answer 429, 500 or 403 to one request, drop
its connections mid-watch. It sits below the cluster tier (tests/cluster), never
instead of it: the emulator only keeps the promises written in ``apiserver``.

Each test has an API server of its own, so one namespace does. PagerDuty is
``incidents.receiver.EventsReceiver``, as in the cluster tier.
"""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from apiserver import ApiServer, Serving
from harness import NAMESPACE, Cluster
from manifests import secrets_of
from operator_process import Operator

from canarywatch.controller.kube import CONFIG_MAPS
from canarywatch.incidents.receiver import EventsReceiver


@pytest.fixture
async def serving() -> AsyncIterator[Serving]:
    async with ApiServer() as api, Serving(api) as serving:
        yield serving


@pytest.fixture
def apiserver(serving: Serving) -> ApiServer:
    return serving.api


@pytest.fixture
async def cluster(apiserver: ApiServer) -> Cluster:
    """The API server with what the example integration refers to: its Secrets, the
    feature-flag ConfigMap its patch action flips."""
    cluster = Cluster(apiserver)
    for secret in secrets_of("CameraIntegration") + secrets_of("CanaryProbe"):
        data = {k: base64.b64encode(v.encode()).decode() for k, v in secret.pop("stringData").items()}
        await cluster.create(secret | {"data": data})
    await cluster.create(
        {
            "apiVersion": CONFIG_MAPS.api_version,
            "kind": CONFIG_MAPS.kind,
            "metadata": {"name": "relay-feature-flags"},
            "data": {"hub-integration": "enabled"},
        }
    )
    return cluster


@pytest.fixture
async def pagerduty() -> AsyncIterator[EventsReceiver]:
    async with EventsReceiver() as receiver:
        yield receiver


@pytest.fixture
async def start_operator(
    apiserver: ApiServer, pagerduty: EventsReceiver, tmp_path: Path
) -> AsyncIterator[Callable[..., Awaitable[Operator]]]:
    """``await start_operator(**env)``: one operator (no leader election: kmock has no
    PUT for the Lease) watching ``NAMESPACE``, running once its liveness probe answers.
    Afterwards its log must hold no traceback: every fault here is one it handles."""
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(json.dumps(_kubeconfig(str(apiserver.url).rstrip("/"))))
    started: list[Operator] = []

    async def start(**env: str) -> Operator:
        env = {
            "CANARYWATCH_LEADER_ELECTION": "false",
            "CANARYWATCH_PAGERDUTY_EVENTS_URL": pagerduty.url,
            **env,
        }
        operator = Operator(kubeconfig, NAMESPACE, tmp_path, f"operator-{len(started)}", env).start()
        started.append(operator)
        await asyncio.to_thread(operator.wait_leading)
        return operator

    yield start
    for operator in started:
        operator.kill()
        assert "Traceback" not in operator.log(), (
            f"{operator.name} logged a traceback:\n{operator.log()[-5000:]}"
        )


def _kubeconfig(server: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "kmock", "cluster": {"server": server}}],
        "users": [{"name": "operator", "user": {"token": "kmock-accepts-any-token"}}],
        "contexts": [{"name": "kmock", "context": {"cluster": "kmock", "user": "operator"}}],
        "current-context": "kmock",
    }
