"""A maintenance pause (``spec.maintenance``) against a real API server: a paused
integration's probe runs no pods and says why, a LeakIncident that still arrives is
recorded without a page or a kill switch, and removing the pause brings the pods back."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from manifests import canary_probe, integration, leak
from polling import eventually
from test_operator import (  # noqa: F401  (fixtures)
    Api,
    Operator,
    api,
    loop,
    operator_crds,
    pagerduty,
    settled,
    start_operator,
    target,
    trusted_probe,
)

from canarywatch.controller.kube import CAMERA_INTEGRATIONS, CANARY_PROBES, DEPLOYMENTS
from canarywatch.incidents.receiver import EventsReceiver

pytestmark = [pytest.mark.cluster, pytest.mark.usefixtures("operator_crds")]


def test_a_paused_integration_records_leaks_without_paging_or_switching_off(
    api: Api,  # noqa: F811
    start_operator: Callable[..., Operator],  # noqa: F811
    pagerduty: EventsReceiver,  # noqa: F811
) -> None:
    target(api, "held-ingest")
    key = trusted_probe(api, "held")
    api.apply(integration("held", maintenance={"reason": "vendor upgrade 14:00-16:00"}))
    start_operator()
    probe = canary_probe("held")["metadata"]["name"]

    def probe_deployments() -> list[dict[str, object]]:
        return [d for d in api.list(DEPLOYMENTS) if d["metadata"]["name"].startswith(f"{probe}-")]

    # The probe's objects exist, its Deployments run nothing, and its status says why.
    eventually(lambda: len(probe_deployments()) > 0, what="the paused probe's Deployments")
    assert {d["spec"]["replicas"] for d in probe_deployments()} == {0}  # type: ignore[index]
    paused = eventually(
        lambda: next(
            (c for c in api.status(CANARY_PROBES, probe).get("conditions", []) if c["type"] == "Paused"), None
        ),
        what="the probe's Paused condition",
    )
    assert (paused["status"], paused["message"]) == ("True", "vendor upgrade 14:00-16:00")
    conditions = {c["type"]: c for c in api.status(CAMERA_INTEGRATIONS, "held").get("conditions", [])}
    assert conditions["Maintenance"]["status"] == "True"

    # A leak reported during the pause is on record; nobody is paged, nothing switched off.
    api.create(leak("held-1", "held", key=key))
    status = eventually(lambda: settled(api, "held-1"), what="the decision during maintenance")
    assert status["decision"].startswith("maintenance (vendor upgrade 14:00-16:00): recorded only")
    assert status["state"] == "Resolved"
    assert status["paged"]["result"] == "Skipped"
    assert status["shutdown"] == {"done": False, "skipped": "policy: maintenance: vendor upgrade 14:00-16:00"}
    assert api.replicas("held-ingest") == 3
    assert pagerduty.events == []

    # The pause ends: the probe's pods come back.
    api.patch(CAMERA_INTEGRATIONS, "held", {"spec": {"maintenance": None}})
    eventually(
        lambda: all(d["spec"]["replicas"] > 0 for d in probe_deployments()),  # type: ignore[index]
        what="the probe's Deployments scaled back",
    )
