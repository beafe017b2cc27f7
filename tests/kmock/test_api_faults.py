"""The operator against API-server faults that a real kube-apiserver does not produce on
demand: a 429 or 500 answered to one request, an RBAC refusal of one object, every
connection cut mid-watch. Each test checks what a user would see: the workload switched
off (or not), the status, the pages sent."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import kmock
import pytest
from apiserver import ApiServer, Serving
from harness import NAMESPACE, Cluster, eventually
from manifests import canary_probe, deployment, example, integration, keyring_secret, leak
from operator_process import Operator
from outcomes import triggers

from canarywatch.controller.kube import (
    CAMERA_INTEGRATIONS,
    CANARY_PROBES,
    CONFIG_MAPS,
    DEPLOYMENTS,
    LEAK_INCIDENTS,
    NETWORK_POLICIES,
    Resource,
)
from canarywatch.controller.manifests import camera_name
from canarywatch.incidents.pagerduty import make_dedup_key
from canarywatch.incidents.receiver import EventsReceiver

StartOperator = Callable[..., Awaitable[Operator]]
TARGET = "relay-ingest"  # what the scale action of integration("relay") switches off


def forbidden(verb: str, resource: Resource, name: str) -> tuple[int, str, str]:
    """A 403 as RBAC words it for the operator's ServiceAccount."""
    who = f"system:serviceaccount:{NAMESPACE}:canarywatch-operator"
    return (
        403,
        "Forbidden",
        f'{resource.plural}.{resource.group} "{name}" is forbidden: User "{who}" cannot {verb} resource '
        f'"{resource.plural}" in API group "{resource.group}" in the namespace "{NAMESPACE}"',
    )


async def trusted_probe(cluster: Cluster, integration_name: str) -> None:
    """The probe whose viewers report the integration's leaks, with the keyring ``leak``
    signs with (created before the operator starts, so the tests' key is the one)."""
    probe = await cluster.create(canary_probe(integration_name))
    await cluster.create(keyring_secret(probe))


async def relay_with_leak(cluster: Cluster, start_operator: StartOperator) -> dict[str, Any]:
    """integration("relay") and its 3-replica target, the operator, then a leak; the
    incident's status once it is settled."""
    await cluster.create(deployment(TARGET, replicas=3))
    await cluster.create(integration("relay"))
    await trusted_probe(cluster, "relay")
    await start_operator()
    await cluster.create(leak("relay-leak-1", "relay"))
    return await eventually(lambda: cluster.settled("relay-leak-1"), what="the incident to settle")


@pytest.mark.parametrize(
    ("code", "reason", "retry_after"),
    [(429, "TooManyRequests", 1), (500, "InternalError", None)],
    ids=["429-retry-after", "500"],
)
async def test_a_scale_the_api_server_refuses_once_is_retried_and_switches_the_target_off(
    apiserver: ApiServer,
    cluster: Cluster,
    start_operator: StartOperator,
    pagerduty: EventsReceiver,
    code: int,
    reason: str,
    retry_after: int | None,
) -> None:
    scales = apiserver["patch", DEPLOYMENTS, kmock.name(TARGET), kmock.subresource("scale")]
    refused = apiserver.fail(
        scales[:1], code, reason, "etcdserver: request timed out", retry_after=retry_after
    )

    status = await relay_with_leak(cluster, start_operator)

    assert len(refused) == 1 and len(scales) == 2  # refused, then sent again and applied
    assert cluster.replicas(TARGET) == 0
    assert status["shutdown"]["done"] is True and status["paged"]["result"] == "Accepted"
    switch = cluster.status(CAMERA_INTEGRATIONS, "relay")["killSwitch"]
    records = {r["name"]: r for r in switch["actions"]}
    assert switch["state"] == "Engaged" and len(switch["actions"]) == 3
    assert records["scale-relay-ingest"]["result"] == "Succeeded"
    assert records["scale-relay-ingest"]["previous"]["replicas"] == 3  # what resume restores
    assert len(cluster.status(CAMERA_INTEGRATIONS, "relay")["recentKills"]) == 1
    assert [t["dedup_key"] for t in triggers(pagerduty)] == [
        make_dedup_key(integration="relay", incident="relay-leak-1")
    ]


async def test_a_lost_write_of_the_page_result_does_not_page_twice(
    apiserver: ApiServer, cluster: Cluster, start_operator: StartOperator, pagerduty: EventsReceiver
) -> None:
    # The page is out; recording that it was accepted fails. Left unrecorded, the next
    # attempt at the incident would page again.
    accepted = apiserver[
        "patch",
        LEAK_INCIDENTS,
        kmock.subresource("status"),
        kmock.data({"status": {"paged": {"result": "Accepted"}}}),
    ]
    refused = apiserver.fail(accepted[:2], 503, "ServiceUnavailable", "the server is shutting down")

    status = await relay_with_leak(cluster, start_operator)

    assert len(refused) == 2 and len(accepted) == 3
    assert status["paged"]["result"] == "Accepted" and status["paged"]["attempts"] == 1
    assert len(triggers(pagerduty)) == 1 and len(pagerduty.alerts) == 1
    assert cluster.replicas(TARGET) == 0


async def test_a_decision_the_api_server_refuses_to_record_switches_nothing_off(
    apiserver: ApiServer, cluster: Cluster, start_operator: StartOperator, pagerduty: EventsReceiver
) -> None:
    # The kill switch reads what it replaces while the decision is being written, but
    # records its engagement (and acts) only once the decision is on record: a decision
    # that never landed must leave nothing switched off and nobody paged.
    decisions = apiserver[
        "patch", LEAK_INCIDENTS, kmock.subresource("status"), kmock.data({"status": {"occurrences": 1}})
    ]
    refused = apiserver.fail(decisions[:1], *forbidden("patch", LEAK_INCIDENTS, "relay-leak-1"))
    snapshots = apiserver["get", DEPLOYMENTS, kmock.name(TARGET), kmock.subresource("scale")]
    scales = apiserver["patch", DEPLOYMENTS, kmock.name(TARGET), kmock.subresource("scale")]
    await cluster.create(deployment(TARGET, replicas=3))
    await cluster.create(integration("relay"))
    await trusted_probe(cluster, "relay")
    await start_operator()
    await cluster.create(leak("relay-leak-1", "relay"))

    def failed_once() -> bool:
        annotations = (cluster.get(LEAK_INCIDENTS, "relay-leak-1") or {})["metadata"].get("annotations") or {}
        return any('"retries": 1' in value or '"retries":1' in value for value in annotations.values())

    await eventually(failed_once, what="kopf to record the handler's failure (it retries later)")
    assert len(refused) == 1 and len(snapshots) >= 1  # the snapshot overlapped the refused write
    assert len(scales) == 0 and cluster.replicas(TARGET) == 3
    assert "killSwitch" not in cluster.status(CAMERA_INTEGRATIONS, "relay")
    assert not cluster.status(LEAK_INCIDENTS, "relay-leak-1").get("decision")
    assert not triggers(pagerduty)
    assert not any(e["reason"] == "LeakDetected" for e in cluster.events("relay-leak-1"))


async def test_a_kill_switch_action_rbac_refuses_fails_alone_and_says_so(
    apiserver: ApiServer, cluster: Cluster, start_operator: StartOperator, pagerduty: EventsReceiver
) -> None:
    policy = "canarywatch-kill-relay-isolate-relay"
    refused = apiserver.fail(
        apiserver["post", NETWORK_POLICIES], *forbidden("create", NETWORK_POLICIES, policy)
    )
    await cluster.create(deployment(TARGET, replicas=3))
    await cluster.create(integration("relay"))
    await trusted_probe(cluster, "relay")
    await start_operator()
    await cluster.create(leak("relay-leak-1", "relay"))

    def answered() -> tuple[dict[str, Any], dict[str, Any]] | None:
        switch = cluster.status(CAMERA_INTEGRATIONS, "relay").get("killSwitch") or {}
        status = cluster.status(LEAK_INCIDENTS, "relay-leak-1")
        paged = (status.get("paged") or {}).get("result")
        return (switch, status) if switch.get("state") == "EngageFailed" and paged == "Accepted" else None

    switch, status = await eventually(answered, what="the page, and the kill switch to record the refusal")
    records = {r["name"]: r for r in switch["actions"]}
    # The other actions switched the integration off regardless...
    assert cluster.replicas(TARGET) == 0
    assert cluster.get(CONFIG_MAPS, "relay-feature-flags")["data"] == {"hub-integration": "disabled"}
    assert [records[n]["result"] for n in ("scale-relay-ingest", "hub-integration-flag")] == ["Succeeded"] * 2
    # ...and the phase says the kill switch is incomplete, not "Suspended" (issue 12).
    assert cluster.status(CAMERA_INTEGRATIONS, "relay")["phase"] == "KillSwitchFailed"
    # ...and the refused one says why, where a user looks.
    assert records["isolate-relay"]["result"] == "Failed"
    assert "403" in records["isolate-relay"]["detail"] and "forbidden" in records["isolate-relay"]["detail"]
    assert cluster.get(NETWORK_POLICIES, policy) is None and len(refused) == 1
    await eventually(
        lambda: any(e["reason"] == "KillSwitchFailed" for e in cluster.events("relay")),
        what="a KillSwitchFailed Event on the integration",
    )
    assert not status["shutdown"].get("done")  # kopf runs the kill switch again later
    assert len(triggers(pagerduty)) == 1


async def test_a_probe_deployment_rbac_refuses_degrades_the_probe_naming_it(
    apiserver: ApiServer, cluster: Cluster, start_operator: StartOperator
) -> None:
    probe = example("CanaryProbe")
    name = probe["metadata"]["name"]
    camera = camera_name(name)
    # A new probe's Deployments are created (RBAC names no object when it refuses a
    # create), applied when its reconcile is retried with some of them there.
    status, reason, message = forbidden("create", DEPLOYMENTS, camera)
    refused = apiserver.fail(
        apiserver["create", DEPLOYMENTS, kmock.data({"metadata": {"name": camera}})],
        status,
        reason,
        message.replace(f' "{camera}"', ""),
    )
    apiserver.fail(
        apiserver["patch", DEPLOYMENTS, kmock.name(camera)], *forbidden("patch", DEPLOYMENTS, camera)
    )
    relay = probe["spec"]["integrationRef"]["name"]
    await cluster.create(integration(relay))
    await start_operator()
    # Once the integration's creation is handled, it re-reconciles no probe behind our back.
    await eventually(lambda: cluster.handled(CAMERA_INTEGRATIONS, relay), what="the integration")
    await cluster.create(probe)

    status = await eventually(
        lambda: (s := cluster.status(CANARY_PROBES, name)).get("conditions") and s,
        what="the probe's status",
    )
    conditions = {c["type"]: c for c in status["conditions"]}
    assert conditions["Degraded"]["status"] == "True" and conditions["Ready"]["status"] == "False"
    assert camera in conditions["Degraded"]["message"] and "403" in conditions["Degraded"]["message"]
    assert cluster.get(DEPLOYMENTS, camera) is None and len(refused) >= 1


async def test_an_operator_whose_api_server_restarts_mid_watch_answers_the_next_leak(
    serving: Serving, cluster: Cluster, start_operator: StartOperator, pagerduty: EventsReceiver
) -> None:
    api = serving.api
    await cluster.create(deployment(TARGET, replicas=3))
    await cluster.create(integration("relay"))
    await trusted_probe(cluster, "relay")
    await start_operator()
    # Mid-watch, not mid-handler: the operator's own calls are not retried on a refused connection.
    await eventually(lambda: cluster.handled(CAMERA_INTEGRATIONS, "relay"), what="the integration")
    incident_watches = api[kmock.action.WATCH, LEAK_INCIDENTS]
    watched = await eventually(lambda: len(incident_watches), what="the operator to watch LeakIncidents")

    await serving.restart(down_for=1.0)  # every connection cut; refused for a second
    await cluster.create(leak("relay-leak-1", "relay"))

    status = await eventually(lambda: cluster.settled("relay-leak-1"), what="the incident to settle")
    assert len(incident_watches) > watched  # watched again, on a new connection
    assert status["shutdown"]["done"] is True and cluster.replicas(TARGET) == 0
    assert len(triggers(pagerduty)) == 1
