"""RBAC is exactly what the operator calls: ``controller.permissions`` against the audit log.

Every operator test runs with a ServiceAccount bound to ``permissions``' rules only, so
those rules are enough. This module checks the other direction on an API server of its
own with an audit log: one scenario exercises every path (a probe built, changed and
shrunk; a leak answered by every kill-switch action kind; resume; resolution; leader
election), and each (group, resource, verb) the rules grant must show up in the log as
a call of the operator's account, except the few ``GRANTED_NOT_CALLED`` explains.
"""

from __future__ import annotations

import base64
import copy
import json
from collections.abc import Callable, Iterator
from pathlib import Path

import controlplane
import pytest
from availability import unavailable
from test_crds import eventually, example
from test_operator import (  # noqa: F401  (fixtures)
    OPERATOR_ACCOUNT,
    Api,
    Loop,
    Operator,
    WebhookSink,
    api,
    integration,
    leak,
    loop,
    operator_crds,
    pagerduty,
    resume,
    settled,
    start_operator,
    target,
    webhook,
)

from canarywatch.controller import manifests, permissions
from canarywatch.controller.kube import (
    CAMERA_INTEGRATIONS,
    CANARY_PROBES,
    DEPLOYMENTS,
    LEAK_INCIDENTS,
    ROLES,
    SECRETS,
)
from canarywatch.markers.keyring import Keyring
from canarywatch.metrics import Metrics, serve_metrics

pytestmark = [pytest.mark.cluster, pytest.mark.usefixtures("operator_crds")]

_POLICY = """\
apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: [RequestReceived]
rules:
  - level: Metadata
    userGroups: ["system:serviceaccounts"]
  - level: None
"""


@pytest.fixture(scope="module")
def control_plane(tmp_path_factory: pytest.TempPathFactory) -> Iterator[controlplane.ControlPlane]:
    """This module's own API server (no controller manager needed), with an audit log."""
    directory = tmp_path_factory.mktemp("audit")
    policy = directory / "policy.yaml"
    policy.write_text(_POLICY)
    plane = controlplane.ControlPlane(
        controller_manager=False,
        extra_apiserver_args=[f"--audit-policy-file={policy}", f"--audit-log-path={directory / 'audit.log'}"],
    )
    try:
        plane.start()
    except controlplane.ToolsMissingError as error:
        plane.stop()
        unavailable(str(error))
    plane.audit_log = directory / "audit.log"  # type: ignore[attr-defined]
    try:
        yield plane
    finally:
        plane.stop()


def scrape_ready_viewer(cluster: Api, servers: Loop, probe: str, tenant: str, profile: str) -> Metrics:
    """Make the probe's viewer Deployment look ready with one Running pod on 127.0.0.1,
    whose /metrics (on a free port it declares as ``metrics``) report six frames of ``tenant`` on ``profile``;
    the viewer's ``Metrics``, for a test to add frames."""
    metrics = Metrics()
    for verdict in ["ok"] * 5 + ["cross_tenant"]:
        metrics.record_frame(
            integration="relay",
            probe=probe,
            tenant=tenant,
            path="snapshot",
            network_profile=profile,
            verdict=verdict,
        )
    metrics.record_last_frame(
        integration="relay",
        probe=probe,
        tenant=tenant,
        camera="0",
        path="snapshot",
        network_profile=profile,
        at=1773480413.0,
    )
    # A free port, declared by the pod as its ``metrics`` port: the operator scrapes
    # the port a viewer pod declares, as a PodMonitor does (the manifests' is 9100).
    server = servers.run(serve_metrics(metrics, "127.0.0.1", 0))
    deployment_name = manifests.viewer_name(probe)
    deployment = cluster.get(DEPLOYMENTS, deployment_name)
    ready = {"replicas": 1, "updatedReplicas": 1, "readyReplicas": 1, "availableReplicas": 1}
    cluster.patch(
        DEPLOYMENTS,
        deployment_name,
        {"status": ready | {"observedGeneration": deployment["metadata"]["generation"]}},
        subresource="status",
    )
    labels = deployment["spec"]["selector"]["matchLabels"]
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": f"{deployment_name}-pod", "labels": labels},
        "spec": {
            "containers": [
                {
                    "name": "viewer",
                    "image": "viewer:1",
                    "ports": [{"name": "metrics", "containerPort": server.port, "protocol": "TCP"}],
                }
            ]
        },
    }
    cluster.call("POST", f"/api/v1/namespaces/{cluster.namespace}/pods", pod)
    cluster.call(
        "PATCH",
        f"/api/v1/namespaces/{cluster.namespace}/pods/{pod['metadata']['name']}/status",
        {"status": {"phase": "Running", "podIP": "127.0.0.1", "podIPs": [{"ip": "127.0.0.1"}]}},
        "application/merge-patch+json",
    )
    return metrics


def calls_of(audit_log: Path, user: str) -> tuple[set[tuple[str, str, str]], list[str]]:
    """(group, resource[/subresource], verb) of every resource request ``user`` made, and
    the ones refused. A server-side apply that created its object (201) was also
    authorized as a create, so it counts as both."""
    calls: set[tuple[str, str, str]] = set()
    denied: list[str] = []
    for line in audit_log.read_text().splitlines():
        event = json.loads(line)
        ref = event.get("objectRef")
        if event["user"]["username"] != user or ref is None:
            continue  # discovery (/api, /apis/...) has no objectRef
        resource = ref["resource"] + (f"/{ref['subresource']}" if ref.get("subresource") else "")
        call = (ref.get("apiGroup", ""), resource, event["verb"])
        calls.add(call)
        code = (event.get("responseStatus") or {}).get("code")
        if event["verb"] == "patch" and code == 201:
            calls.add((call[0], resource, "create"))
        if code == 403:
            denied.append(f"{event['verb']} {event['requestURI']}")
    return calls, denied


def test_the_roles_rules_are_exactly_the_calls_the_operator_makes(
    control_plane: controlplane.ControlPlane,
    namespace: str,
    api: Api,  # noqa: F811
    start_operator: Callable[..., Operator],  # noqa: F811
    webhook: WebhookSink,  # noqa: F811
    loop: Loop,  # noqa: F811
) -> None:
    # An integration that pulls from the cameras (so probes get Services), answered by
    # every kind of kill-switch action, on a Deployment and a StatefulSet.
    ci = integration("relay", webhook, camera={"serve": {"port": 8080}})
    actions = ci["spec"]["killSwitch"]["actions"]
    scale_set = copy.deepcopy(next(a for a in actions if a["type"] == "scale"))
    scale_set["name"] = "scale-relay-store"
    scale_set["scale"] = {"kind": "StatefulSet", "name": "relay-store"}
    actions.append(scale_set)
    target(api, "relay-ingest")
    api.apply(
        {
            "apiVersion": "apps/v1",
            "kind": "StatefulSet",
            "metadata": {"name": "relay-store"},
            "spec": {
                "replicas": 2,
                "serviceName": "relay-store",
                "selector": {"matchLabels": {"app": "relay-store"}},
                "template": {
                    "metadata": {"labels": {"app": "relay-store"}},
                    "spec": {"containers": [{"name": "store", "image": "store:1"}]},
                },
            },
        }
    )
    probe = example("CanaryProbe")
    probe["spec"]["integrationRef"]["name"] = "relay"
    # As an older version left it: kopf removes the finalizer a probe no longer needs.
    probe["metadata"]["finalizers"] = ["canarywatch.io/operator"]
    api.apply(ci)
    api.apply(probe)
    start_operator()

    name = probe["metadata"]["name"]
    eventually(
        lambda: (
            api.get(SECRETS, manifests.keyring_secret_name(name)) is not None
            and api.status(CANARY_PROBES, name).get("tenants") == 2
        ),
        what="the probe to be built",
    )
    # A ready viewer pod (what a kubelet and the Deployment controller would report) whose
    # /metrics the status summary aggregates.
    scrape_ready_viewer(api, loop, name, "acme-7", "good")
    status = eventually(
        lambda: (s := api.status(CANARY_PROBES, name)).get("verdictCounts") and s,
        what="the verdict counts scraped from the viewer",
    )
    assert status["verdictCounts"] == {"ok": 5, "cross_tenant": 1}
    assert status["lastFrameTime"] == "2026-03-14T09:26:53Z"

    # The leak, signed with the key the operator generated for acme-7 (it verifies it).
    secret = api.get(SECRETS, manifests.keyring_secret_name(name))
    key = Keyring.from_json(base64.b64decode(secret["data"][manifests.keyring_item("acme-7")]).decode()).key(
        "acme-7"
    )
    reported = leak("relay-leak-1", "relay", key=key)
    reported["spec"]["probeRef"]["name"] = name
    api.create(reported)
    eventually(lambda: settled(api, "relay-leak-1"), what="the leak to be answered")
    resume(api, "relay")
    eventually(
        lambda: api.status(LEAK_INCIDENTS, "relay-leak-1").get("state") == "Resolved",
        what="resume and resolution",
    )
    assert api.replicas("relay-ingest") == 3
    # No history kept: the resolved incident is deleted.
    api.patch(CAMERA_INTEGRATIONS, "relay", {"spec": {"incidentHistoryLimit": 0}})
    eventually(lambda: api.get(LEAK_INCIDENTS, "relay-leak-1") is None, what="the history limit")

    assert not api.get(CANARY_PROBES, name)["metadata"].get("finalizers")

    api.patch(CANARY_PROBES, name, {"spec": {"tenants": [probe["spec"]["tenants"][0]]}})
    eventually(
        lambda: set(api.get(SECRETS, manifests.keyring_secret_name(name))["data"]) == {"acme-7.json"},
        what="the removed tenant's key to go",
    )
    # A profile moved to the kernel's shaper gets viewers of its own; dropped, they go.
    custom = [dict(p, shaper="tc") for p in probe["spec"]["customNetworkProfiles"]]
    api.patch(CANARY_PROBES, name, {"spec": {"customNetworkProfiles": custom}})
    tc_viewers = manifests.viewer_name(name, "hub-wifi")
    eventually(lambda: api.get(DEPLOYMENTS, tc_viewers) is not None, what="the tc profile's viewers")
    api.patch(CANARY_PROBES, name, {"spec": {"networkProfiles": ["good", "poor"]}})
    eventually(lambda: api.get(DEPLOYMENTS, tc_viewers) is None, what="the dropped profile's viewers to go")

    user = f"system:serviceaccount:{namespace}:{OPERATOR_ACCOUNT}"
    calls, denied = calls_of(control_plane.audit_log, user)  # type: ignore[attr-defined]
    assert denied == []
    # The test's own check that the binding is in effect, made with the operator's token.
    calls.discard(("authorization.k8s.io", "selfsubjectaccessreviews", "create"))
    granted = permissions.expand(permissions.role_rules(kill_switch=True, leader_election=True))
    assert calls - granted == set(), "called without being granted"
    unused = granted - calls - set(permissions.GRANTED_NOT_CALLED)
    assert unused == set(), "granted but never called (remove, or explain in GRANTED_NOT_CALLED)"
    assert not set(permissions.GRANTED_NOT_CALLED) & calls, "GRANTED_NOT_CALLED lists a call that is made"


def test_a_probe_costs_at_most_five_api_requests_from_cold(
    control_plane: controlplane.ControlPlane,
    namespace: str,
    api: Api,  # noqa: F811
    start_operator: Callable[..., Operator],  # noqa: F811
) -> None:
    """Probes that exist before the operator starts (an upgrade, a restore): each costs
    its Secret's create, one create of each Deployment and of its budget (half the API
    server's CPU of an apply: ``controller.ownership``), and one status patch, kopf's
    own state included (no finalizer, no annotation patch); the namespace's viewer
    account, Role and binding are applied once for all of them. Counted in the audit
    log: a count, not a time."""
    api.apply(integration("relay", None))
    names = [f"probe-{i}" for i in range(6)]
    for name in names:
        probe = example("CanaryProbe")
        probe["metadata"]["name"] = name
        probe["spec"]["integrationRef"]["name"] = "relay"
        api.apply(probe)
    start_operator(CANARYWATCH_STATUS_INTERVAL_SECONDS="600")  # no summary meanwhile: not counted here
    eventually(
        lambda: all(
            (s := api.status(CANARY_PROBES, n)).get("tenants") == 2
            and s.get("workloads", {}).get("desired") == 2
            for n in names
        ),
        what="every probe to be reconciled",
    )
    user = f"system:serviceaccount:{namespace}:{OPERATOR_ACCOUNT}"
    per_probe: dict[str, list[str]] = {n: [] for n in names}
    shared: list[str] = []
    for line in control_plane.audit_log.read_text().splitlines():  # type: ignore[attr-defined]
        event = json.loads(line)
        ref = event.get("objectRef") or {}
        if event["user"]["username"] != user or ref.get("namespace") != namespace or not ref.get("name"):
            continue
        call = (
            f"{event['verb']} {ref['resource']}{'/' + ref['subresource'] if ref.get('subresource') else ''}"
        )
        owner = next((n for n in names if ref["name"] == n or ref["name"].startswith(f"{n}-")), None)
        if owner is not None:
            per_probe[owner].append(call)
        elif ref["name"] == manifests.VIEWER_ACCOUNT:
            shared.append(call)
    for name, calls in per_probe.items():
        assert sorted(calls) == [
            "create deployments",
            "create deployments",
            "create poddisruptionbudgets",
            "create secrets",
            "patch canaryprobes/status",
        ], name
    assert sorted(shared) == ["patch rolebindings", "patch roles", "patch serviceaccounts"]
    # That one apply made every probe an owner (the watch had delivered only some of
    # them when the first reconcile ran: the operator lists them once).
    role = api.get(ROLES, manifests.VIEWER_ACCOUNT)
    uids = {api.get(CANARY_PROBES, n)["metadata"]["uid"] for n in names}
    assert {owner["uid"] for owner in role["metadata"]["ownerReferences"]} == uids
