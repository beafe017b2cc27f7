"""What kopf runs for canarywatch: every handler and index a coroutine, so kopf calls it
on its event loop. kopf runs a plain function in its thread pool instead: a hop to a
thread and back (and a task to shield it) for every call, which for an index is every
watch event of every object it indexes; thousands at a cold start, and several on each
LeakIncident's way to the kill switch."""

from __future__ import annotations

import asyncio
import inspect
from typing import Any
from unittest.mock import ANY

import kopf

from canarywatch.controller.handlers import register
from canarywatch.controller.indexes import awaits_response
from canarywatch.controller.kube import Kube
from canarywatch.controller.runtime import Runtime
from canarywatch.controller.settings import OperatorSettings
from canarywatch.metrics import Metrics


def _registered() -> list[tuple[str, object]]:
    registry = kopf.OperatorRegistry()
    register(registry, OperatorSettings(leader_election=False))
    found = []
    for kind in ("_indexing", "_changing", "_watching", "_spawning"):
        for handler in getattr(registry, kind).get_all_handlers():
            found.append((f"{kind[1:]} {handler.id}", handler.fn))
    for handler in registry._activities.get_all_handlers():
        if handler.id != "login_via_client":  # kopf's own, called once at startup
            found.append((f"activity {handler.id}", handler.fn))
    return found


def test_every_index_and_handler_runs_on_the_event_loop() -> None:
    registered = _registered()
    names = {name for name, _ in registered}
    assert {"indexing deployments_by_probe", "indexing incidents_by_integration"} <= names
    assert {"indexing integrations_by_name", "watching follow_probe"} <= names
    in_threads = [name for name, fn in registered if not inspect.iscoroutinefunction(fn)]
    assert in_threads == []


def _index(name: str) -> Any:
    return next(fn for found, fn in _registered() if found == f"indexing {name}")


def _incident(**status: Any) -> dict[str, Any]:
    return {
        "apiVersion": "canarywatch.io/v1alpha1",
        "kind": "LeakIncident",
        "metadata": {"name": "leak-1", "namespace": "ns", "uid": "u-1"},
        "spec": {"integrationRef": {"name": "relay"}, "observed": {"verdict": "foreign"}},
        "status": status,
    }


def test_the_probes_are_no_kopf_index() -> None:
    """kopf holds every object of an indexed kind at the operator's start until all are
    indexed, each waking all the others when it is: at 1,000 probes, seconds before the
    first reconcile. The probes are followed by their events instead (``follow_probe``)."""
    registry = kopf.OperatorRegistry()
    register(registry, OperatorSettings(leader_election=False))
    probes = kopf.Resource("canarywatch.io", "v1alpha1", "canaryprobes")
    assert not registry._indexing.has_handlers(resource=probes)


def _memo() -> Runtime:
    return Runtime(settings=OperatorSettings(leader_election=False), kube=Kube(object()), metrics=Metrics())


_PROBE = {
    "kind": "CanaryProbe",
    "metadata": {"name": "p", "namespace": "ns", "uid": "u-2", "generation": 1},
    "spec": {},
}


_DEPLOYMENT = {
    "kind": "Deployment",
    "metadata": {
        "name": "p-camera",
        "namespace": "ns",
        "ownerReferences": [{"kind": "CanaryProbe", "uid": "u-2", "controller": True}],
    },
    "spec": {},
    "status": {},
}


def _follow(memo: Runtime, body: dict[str, Any], type: str = "MODIFIED") -> Any:
    return _handler("watching follow_probe")(body=kopf.Body(body), memo=memo, type=type)


def _handler(name: str) -> Any:
    return next(fn for found, fn in _registered() if found == name)


async def test_kopf_handles_a_probes_events_after_the_kill_switch() -> None:
    """The probes' and their Deployments' watch events wait in the first function of
    ours kopf runs for them while a kill switch runs; the incidents' and integrations'
    do not."""
    memo = _memo()
    try:
        async with memo.kube.urgency.urgent():
            probe = asyncio.create_task(_follow(memo, _PROBE))
            deployment = asyncio.create_task(
                _index("deployments_by_probe")(body=kopf.Body(_DEPLOYMENT), memo=memo)
            )
            incident = await asyncio.wait_for(
                _index("incidents_by_integration")(body=kopf.Body(_incident(decision="")), memo=memo), 5
            )
            await asyncio.sleep(0.05)
            assert not probe.done(), "kopf handled a probe's event while the kill switch ran"
            assert not deployment.done(), "kopf handled a Deployment's event while the kill switch ran"
        await asyncio.wait_for(probe, 5)
        assert memo.probes == {("ns", "p"): ANY}
        assert await asyncio.wait_for(deployment, 5) == {("ns", "u-2"): ANY}
        assert list(incident) == [("ns", "relay")]
    finally:
        memo.kube.close()


async def test_a_leakincident_that_needs_a_response_holds_probe_events_from_when_it_is_seen() -> None:
    memo = _memo()
    incidents = _index("incidents_by_integration")
    try:
        await incidents(body=kopf.Body(_incident(decision="switched off", state="Open")), memo=memo)
        await asyncio.wait_for(memo.kube.urgency.unhurried(), 1)  # decided: nothing to wait for
        await incidents(body=kopf.Body(_incident()), memo=memo)
        probe = asyncio.create_task(_follow(memo, _PROBE))
        await asyncio.sleep(0.05)
        assert not probe.done(), "a probe's event went first while a new LeakIncident waited"
        async with memo.kube.urgency.urgent():
            pass  # its response ran
        await asyncio.wait_for(probe, 5)
    finally:
        memo.kube.close()


async def test_the_probes_are_followed_by_their_events() -> None:
    memo = _memo()
    other = {**_PROBE, "metadata": {**_PROBE["metadata"], "name": "q", "uid": "u-3"}}
    try:
        await _follow(memo, _PROBE, "ADDED")
        await _follow(memo, other, "ADDED")
        changed = {**_PROBE, "status": {"ready": 2, "kopf": {"progress": {}}}}
        await _follow(memo, changed)
        assert memo.probes[("ns", "p")]["status"] == {"ready": 2}  # kopf's own state left out
        await _follow(memo, _PROBE, "DELETED")
        assert list(memo.probes) == [("ns", "q")]
    finally:
        memo.kube.close()


def test_which_leakincidents_await_a_response() -> None:
    assert awaits_response(_incident())
    assert awaits_response(_incident(state="Open", paged={"result": "Pending"}))
    assert not awaits_response(_incident(decision="enforce: switched off", state="Open"))
    assert not awaits_response(_incident(state="Untrusted"))
    assert not awaits_response(_incident(state="Resolved"))
    assert not awaits_response({**_incident(), "metadata": {"deletionTimestamp": "2026-12-08T00:00:00Z"}})
    assert not awaits_response(_PROBE)
