"""How the operator merges the LeakIncidents its watch delivered with what it wrote
since (``controller.indexes.incident_views``): the basis of de-duplication and of
resolving only incidents whose page is settled."""

from __future__ import annotations

import asyncio
import time
from typing import Any, cast

from canarywatch.controller.incidents import page_outstanding, prune_history
from canarywatch.controller.indexes import incident_views, incidents_by_integration
from canarywatch.controller.runtime import Runtime, is_open
from canarywatch.metrics import Metrics

NS, INTEGRATION = "cameras", "relay"


def incident(name: str, *, state: str = "Open", **paged: Any) -> dict[str, Any]:
    return {
        "metadata": {"name": name, "namespace": NS, "uid": f"uid-{name}", "creationTimestamp": None},
        "spec": {"integrationRef": {"name": INTEGRATION}, "observed": {"verdict": "cross_tenant"}},
        "status": {"state": state, "decision": "paging", "paged": {"dedupKey": f"k-{name}", **paged}},
    }


def runtime() -> Runtime:
    return Runtime(settings=cast(Any, None), kube=cast(Any, None), metrics=Metrics())


def views(rt: Runtime, watched: list[dict[str, Any]], written: list[dict[str, Any]]) -> dict[str, Any]:
    index: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for body in watched:
        for key, view in incidents_by_integration(body).items():
            index.setdefault(key, []).append(view)
    for body in written:
        view = next(iter(incidents_by_integration(body).values()))
        rt.written[(NS, body["metadata"]["name"])] = (time.monotonic(), view)
    merged = incident_views(rt, cast(Any, index), NS, INTEGRATION)
    return {v["name"]: v for v in merged}


def test_a_retry_in_progress_keeps_thepage_outstanding() -> None:
    # The watch still shows the failed attempt; this process has written the retry's Pending.
    rt = runtime()
    merged = views(
        rt,
        watched=[incident("a", result="Failed", retrying=True)],
        written=[incident("a", result="Pending", retrying=True, attempts=2)],
    )
    assert merged["a"]["paged"] == "Failed" and merged["a"]["pageRetrying"]
    assert page_outstanding(merged["a"])


def test_a_rejected_page_is_final_and_an_accepted_one_settled() -> None:
    rt = runtime()
    merged = views(
        rt,
        watched=[incident("a", result="Failed", retrying=True), incident("b", result="Pending")],
        written=[incident("a", result="Failed", retrying=False), incident("b", result="Accepted")],
    )
    assert not page_outstanding(merged["a"])
    assert merged["b"]["paged"] == "Accepted" and not page_outstanding(merged["b"])
    assert page_outstanding(views(runtime(), [incident("c", result="Pending")], [])["c"])


def test_resolution_written_here_wins_over_an_open_copy_from_the_watch() -> None:
    rt = runtime()
    merged = views(rt, watched=[incident("a", result="Accepted")], written=[incident("a", state="Resolved")])
    assert merged["a"]["state"] == "Resolved" and not is_open(merged["a"]["state"])
    assert is_open("Open") and not is_open("Untrusted")


class DeletingKube:
    """What ``prune_history`` calls: ``delete``, recorded."""

    def __init__(self) -> None:
        self.deleted: list[tuple[str, str | None]] = []

    async def delete(self, resource: Any, namespace: str, name: str, *, uid: str | None = None) -> bool:
        self.deleted.append((name, uid))
        return True


def test_the_history_limit_deletes_the_oldest_finished_incidents_and_never_an_open_one() -> None:
    """In alert-only mode a viewer reports a leak still going on again every few minutes:
    without a limit, LeakIncidents (up to 64 KiB each) pile up in etcd for good."""
    kube = DeletingKube()
    rt = Runtime(settings=cast(Any, None), kube=cast(Any, kube), metrics=Metrics())
    states = ["Resolved", "Open", "Untrusted", "Resolved", "Resolved", "Open"]
    index: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for n, state in enumerate(states):
        body = incident(f"leak-{n}", state=state)
        body["metadata"]["creationTimestamp"] = f"2026-03-14T09:0{n}:00Z"
        for key, view in incidents_by_integration(body).items():
            index.setdefault(key, []).append(view)
    integration = {"metadata": {"namespace": NS, "name": INTEGRATION}, "spec": {"incidentHistoryLimit": 2}}
    assert asyncio.run(prune_history(rt, cast(Any, index), integration)) == 2
    # Four finished (0, 2, 3, 4): the two oldest go; the open ones (1, 5) stay whatever their age.
    assert kube.deleted == [("leak-0", "uid-leak-0"), ("leak-2", "uid-leak-2")]
