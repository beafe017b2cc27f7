"""What kopf runs for canarywatch: every handler and index a coroutine, so kopf calls it
on its event loop. kopf runs a plain function in its thread pool instead: a hop to a
thread and back (and a task to shield it) for every call, which for an index is every
watch event of every object it indexes; thousands at a cold start, and several on each
LeakIncident's way to the kill switch."""

from __future__ import annotations

import inspect

import kopf

from canarywatch.controller.handlers import register
from canarywatch.controller.settings import OperatorSettings


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
    assert {"indexing integrations_by_name", "indexing probes_by_name"} <= names
    in_threads = [name for name, fn in registered if not inspect.iscoroutinefunction(fn)]
    assert in_threads == []
