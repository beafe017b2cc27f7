"""The operator keeps a kill switch holding: a leak reported while the integration is
recorded as switched off means the kill does not hold (a GitOps controller scaled the
workload back, a NetworkPolicy is not enforced), so every action runs again and the
leaked frames are counted for the alert."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest
from manifests import integration, leak
from operator_process import Operator
from outcomes import settled as settled_status
from polling import eventually
from test_operator import (  # noqa: F401  (fixtures)
    Api,
    WebhookSink,
    api,
    incident_status,
    loop,
    operator_crds,
    pagerduty,
    resume,
    start_operator,
    target,
    trusted_probe,
    webhook,
)

from canarywatch.controller.kube import CAMERA_INTEGRATIONS, DEPLOYMENTS
from canarywatch.controller.runtime import epoch
from canarywatch.incidents.receiver import EventsReceiver
from canarywatch.shutdown import IN_FLIGHT_GRACE_SECONDS

pytestmark = [pytest.mark.cluster, pytest.mark.usefixtures("operator_crds")]

LEAKED = "canarywatch_leaked_frames_while_suspended_total"


def test_a_leak_through_an_engaged_kill_switch_runs_its_actions_again(
    api: Api,  # noqa: F811
    start_operator: Callable[..., Operator],  # noqa: F811
    pagerduty: EventsReceiver,  # noqa: F811
    webhook: WebhookSink,  # noqa: F811
    namespace: str,
) -> None:
    target(api, "relay-ingest", replicas=3)
    api.apply(integration("relay", webhook))
    trusted_probe(api, "relay")
    operator = start_operator()
    api.create(leak("relay-leak-1", "relay"))
    eventually(lambda: settled_status(incident_status(api, "relay-leak-1")), what="the first kill")
    assert api.replicas("relay-ingest") == 0 and len(webhook.calls) == 1
    labels = {"namespace": namespace, "integration": "relay"}
    eventually(lambda: operator.metric(LEAKED, labels) == 0, what="the series primed at 0")

    # A GitOps controller puts the workload back; the status still says Suspended.
    api.patch(DEPLOYMENTS, "relay-ingest", {"spec": {"replicas": 3}})
    switch = api.status(CAMERA_INTEGRATIONS, "relay")["killSwitch"]
    engaged_until = epoch(switch["engagedAt"]) + float(switch["seconds"])
    # frames received just after the kill may have been requested before it
    eventually(lambda: time.time() > engaged_until + IN_FLIGHT_GRACE_SECONDS + 0.5, what="the grace")

    api.create(leak("relay-leak-2", "relay"))  # the viewers keep seeing the leak
    eventually(lambda: api.replicas("relay-ingest") == 0, what="the kill switch to be re-asserted")
    eventually(lambda: len(webhook.calls) == 2, what="the webhook to be called again")
    assert operator.metric(LEAKED, labels) == 1
    eventually(lambda: "KillSwitchReasserted" in api.events("relay"), what="the KillSwitchReasserted Event")
    status = api.status(CAMERA_INTEGRATIONS, "relay")
    assert (status["phase"], status["killSwitch"]["state"], status["killSwitch"]["incident"]) == (
        "Suspended",
        "Engaged",
        "relay-leak-1",
    )
    actions = {a["name"]: a for a in status["killSwitch"]["actions"]}
    assert actions["scale-relay-ingest"]["previous"]["replicas"] == 3  # the original, not the revert's
    assert incident_status(api, "relay-leak-2")["paged"]["result"] == "Skipped"  # one page per leak
    assert len([e for e in pagerduty.events if e["event_action"] == "trigger"]) == 1

    # Resume restores the original replicas, once.
    resume(api, "relay")
    eventually(lambda: api.replicas("relay-ingest") == 3, what="resume to restore the recorded 3 replicas")
    eventually(lambda: len(webhook.calls) == 3, what="the webhook's resume call")
    assert webhook.paths() == ["/v3/admin/kill", "/v3/admin/kill", "/v3/admin/resume"]
