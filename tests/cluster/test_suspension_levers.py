"""The user's levers on the kill switch (``spec.suspended``, the resume annotation) are
followed by their level, not only by the change kopf sees: against a real API server.

kopf runs a field handler when the field differs from the configuration it handled
last. A change that lands while the object's earlier handlers still run is folded into
that configuration unseen; these tests put an integration in that state on purpose (the
last-handled configuration already says what the spec says) and expect the operator to
act anyway. The race itself failed CI: ``spec.suspended: true`` set while a starting
operator was still handling the integration's creation was never acted on.
"""

# The fixtures come from test_operator: pytest injects them by the names imported.
# ruff: noqa: F811

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from manifests import integration
from polling import eventually
from test_operator import (  # noqa: F401  (fixtures)
    Api,
    Operator,
    api,
    loop,
    operator_crds,
    pagerduty,
    start_operator,
    target,
    trusted_probe,
)
from test_trust import HANDLED, handled

from canarywatch.controller.kube import CAMERA_INTEGRATIONS

pytestmark = [pytest.mark.cluster, pytest.mark.usefixtures("operator_crds")]


def switch(cluster: Api) -> dict[str, Any]:
    return dict(cluster.status(CAMERA_INTEGRATIONS, "relay").get("killSwitch") or {})


def folded(api: Api, suspended: bool) -> None:
    """Set ``spec.suspended`` with kopf's last-handled configuration already saying so:
    what kopf leaves when the change lands while it handles the object."""
    annotations = api.get(CAMERA_INTEGRATIONS, "relay")["metadata"]["annotations"]
    last = json.loads(annotations[HANDLED])
    last["spec"]["suspended"] = suspended
    change = {"spec": {"suspended": suspended}, "metadata": {"annotations": {HANDLED: json.dumps(last)}}}
    api.patch(CAMERA_INTEGRATIONS, "relay", change)


def test_a_switch_off_by_hand_that_kopf_saw_no_change_for_is_acted_on_and_so_is_its_release(
    api: Api, start_operator: Callable[..., Operator]
) -> None:
    target(api, "relay-ingest", replicas=3)
    api.apply(integration("relay"))
    trusted_probe(api, "relay")
    start_operator()
    eventually(lambda: handled(api, "relay", suspended=False), what="the integration to be handled")

    folded(api, suspended=True)
    engaged = eventually(lambda: (s := switch(api)).get("state") == "Engaged" and s, what="the switch-off")
    assert engaged["incident"] == "manual"
    assert api.replicas("relay-ingest") == 0

    folded(api, suspended=False)
    eventually(lambda: switch(api).get("state") == "Resumed", what="the resume by hand")
    assert api.replicas("relay-ingest") == 3


def test_a_switch_off_by_hand_whose_action_failed_is_finished_once_the_action_can_run(
    api: Api, start_operator: Callable[..., Operator]
) -> None:
    api.apply(integration("relay"))  # its scale action's Deployment does not exist yet
    trusted_probe(api, "relay")
    start_operator()
    eventually(lambda: handled(api, "relay", suspended=False), what="the integration to be handled")

    api.patch(CAMERA_INTEGRATIONS, "relay", {"spec": {"suspended": True}})
    failed = eventually(
        lambda: (s := switch(api)).get("state") == "EngageFailed" and s, what="the incomplete switch-off"
    )
    results = {a["name"]: a["result"] for a in failed["actions"]}
    assert results["scale-relay-ingest"] == "Failed"

    target(api, "relay-ingest", replicas=3)
    eventually(lambda: switch(api).get("state") == "Engaged", timeout=90, what="the switch-off to finish")
    assert api.replicas("relay-ingest") == 0
    assert switch(api)["incident"] == "manual"
