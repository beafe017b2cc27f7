"""Only what should act can act: who may create a LeakIncident (the chart's admission
policy), what the operator checks before it pages or switches off (the probe and the
evidence's signature), where a kill switch may act (the integration's own namespace),
and the kill latch in status (a GitOps sync of ``spec`` cannot switch a live leak back
on). Real kube-apiserver, the operator as a subprocess (``test_operator``'s fixtures)."""

# The fixtures come from test_operator: pytest injects them by the names imported.
# ruff: noqa: F811

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import controlplane
import pytest
from admission import AdmissionPolicies
from kubernetes.client.exceptions import ApiException
from manifests import REPO, TEST_KEY, deployment, integration, leak, probe_name
from polling import eventually
from test_crds import request
from test_operator import (  # noqa: F401  (fixtures)
    OPERATOR_ACCOUNT,
    Api,
    Loop,
    Operator,
    WebhookSink,
    account_token,
    api,
    grant,
    incident_status,
    loop,
    operator_crds,
    pagerduty,
    resume,
    settled,
    start_operator,
    target,
    trusted_probe,
    webhook,
)

from canarywatch.api import RESUME_ANNOTATION
from canarywatch.controller import permissions
from canarywatch.controller.kube import CAMERA_INTEGRATIONS, DEPLOYMENTS, LEAK_INCIDENTS, Resource
from canarywatch.controller.manifests import VIEWER_ACCOUNT
from canarywatch.incidents.receiver import EventsReceiver

pytestmark = [pytest.mark.cluster, pytest.mark.usefixtures("operator_crds")]

CHART = REPO / "charts" / "canarywatch"
HANDLED = "canarywatch.io/last-handled-configuration"  # controller.main: kopf's diff base


# -- admission: the chart's ValidatingAdmissionPolicies --------------------------------------


@pytest.fixture
def admission(control_plane: controlplane.ControlPlane, namespace: str) -> Iterator[Callable[..., None]]:
    """``admission(*sets)``: the chart's admission policies, bound to the test's namespace."""
    policies = AdmissionPolicies(control_plane.api_client, namespace)
    yield policies.install
    policies.remove()


def account_client(plane: controlplane.ControlPlane, api: Api, name: str, rules: list[dict[str, Any]]) -> Any:
    """An API client authenticated as ServiceAccount ``name`` of the test's namespace, bound
    to ``rules`` (a real token, from the TokenRequest API)."""
    return plane.token_api_client(account_token(api, name, rules, seconds=600))


CREATE_INCIDENTS = [{"apiGroups": ["canarywatch.io"], "resources": ["leakincidents"], "verbs": ["create"]}]


def create_as(client: Any, api: Api, body: dict[str, Any]) -> ApiException | None:
    """Create ``body`` with ``client``: the refusal, or None once created."""
    try:
        request(client, "POST", LEAK_INCIDENTS.path(api.namespace), body=body)
    except ApiException as error:
        return error
    return None


def impersonating(plane: controlplane.ControlPlane, user: str) -> Any:
    """An admin API client that acts as ``user`` (what admission then sees)."""
    from kubernetes import client

    impersonator = client.ApiClient(plane.api_client.configuration)
    impersonator.set_default_header("Impersonate-User", user)
    impersonator.set_default_header("Impersonate-Group", "system:serviceaccounts")
    return impersonator


def test_only_the_namespaces_viewer_account_may_create_a_leak_incident(
    control_plane: controlplane.ControlPlane, api: Api, admission: Callable[..., None]
) -> None:
    admission()
    # The account the operator makes once per namespace for every probe's viewers there.
    viewer = account_client(control_plane, api, VIEWER_ACCOUNT, CREATE_INCIDENTS)
    # Same RBAC as the viewer (create LeakIncidents), another identity: the confused case.
    intruder = account_client(control_plane, api, "relay-intruder", CREATE_INCIDENTS)
    # The viewer account of another namespace, granted create here: still not this one's.
    stranger_name = f"system:serviceaccount:elsewhere:{VIEWER_ACCOUNT}"
    grant(api, "stranger-viewer", CREATE_INCIDENTS, "elsewhere")
    api.patch(
        Resource("rbac.authorization.k8s.io", "v1", "rolebindings", "RoleBinding"),
        "stranger-viewer",
        {"subjects": [{"kind": "ServiceAccount", "name": VIEWER_ACCOUNT, "namespace": "elsewhere"}]},
    )
    stranger = impersonating(control_plane, stranger_name)
    try:
        # The policy takes effect once the API server has compiled it: the intruder is refused.
        refusal = eventually(
            lambda: create_as(intruder, api, leak(f"forged-{uuid.uuid4().hex[:6]}", "relay")),
            what="the admission policy to refuse a non-viewer account",
        )
        assert refusal.status in (403, 422), refusal.body
        message = json.loads(refusal.body)["message"]
        assert f"only the viewer ServiceAccount of namespace {api.namespace} ({VIEWER_ACCOUNT})" in message
        assert f"system:serviceaccount:{api.namespace}:relay-intruder" in message
        # Another namespace's viewers cannot report this namespace's leaks.
        stranger_refusal = eventually(
            lambda: create_as(stranger, api, leak("stranger-1", "relay")),
            what="the other namespace's viewer to be refused",
        )
        assert stranger_refusal.status in (403, 422) and "ValidatingAdmissionPolicy" in stranger_refusal.body
        # The admin (cluster-admin RBAC) is no exception: nobody but the viewer.
        admin_refusal = create_as(control_plane.api_client, api, leak("admin-1", "relay"))
        assert admin_refusal is not None and admin_refusal.status in (403, 422)
        # The namespace's viewer is admitted, whichever of its probes it names; that a
        # viewer of one probe cannot get a verified incident for another is the
        # operator's check (test_forged_or_misattributed_evidence_never_pages_nor_switches_off).
        assert create_as(viewer, api, leak("relay-leak-1", "relay")) is None
        assert api.get(LEAK_INCIDENTS, "relay-leak-1") is not None
        assert api.get(LEAK_INCIDENTS, "admin-1") is None and api.get(LEAK_INCIDENTS, "stranger-1") is None
    finally:
        for client in (viewer, intruder, stranger):
            client.close()


def test_kill_switch_targets_in_another_namespace_are_refused_at_admission(
    control_plane: controlplane.ControlPlane, api: Api, admission: Callable[..., None]
) -> None:
    admission("rbac.killSwitchNamespaces={shop}")
    elsewhere = integration("relay")
    scale = next(a for a in elsewhere["spec"]["killSwitch"]["actions"] if a["type"] == "scale")
    scale["scale"]["namespace"] = "payments"

    def refused() -> ApiException | None:
        try:
            api.apply(elsewhere)
        except ApiException as error:
            return error
        api.delete(CAMERA_INTEGRATIONS, "relay")
        return None

    refusal = eventually(refused, what="the admission policy to refuse a kill switch aimed elsewhere")
    message = json.loads(refusal.body)["message"]
    assert "spec.killSwitch.actions[scale-relay-ingest].scale.namespace: payments" in message
    assert "rbac.killSwitchNamespaces" in message
    scale["scale"]["namespace"] = "shop"  # allowlisted by the install
    api.apply(elsewhere)
    scale["scale"].pop("namespace")  # its own namespace, the default
    api.apply(elsewhere)


# -- the operator: evidence re-verified before it acts ---------------------------------------


def test_forged_or_misattributed_evidence_never_pages_nor_switches_off(
    api: Api, start_operator: Callable[..., Operator], pagerduty: EventsReceiver
) -> None:
    target(api, "relay-ingest", replicas=3)
    api.apply(integration("relay"))
    key = trusted_probe(api, "relay")
    api.apply(integration("other"))
    other_key = trusted_probe(api, "other", key=b"the-other-probes-key-of-32-bytes")
    start_operator()

    forged = leak("forged-1", "relay", key=b"not-the-probes-key-but-32-bytes!")
    unsigned = leak("unsigned-1", "relay", key=None)
    # A real signature, but reported through a probe that watches another integration.
    misattributed = leak("misattributed-1", "relay", key=key)
    misattributed["spec"]["probeRef"]["name"] = probe_name("other")
    tampered = leak("tampered-1", "relay", key=key)
    tampered["spec"]["observed"]["seq"] += 1  # the signed payload says otherwise
    # What a viewer of the other probe could sign (it holds that probe's keys only),
    # naming this probe: admission lets the namespace's viewer account through, the
    # keyring of the probe it names does not.
    crossed = leak("crossed-1", "relay", key=other_key)
    for body in (forged, unsigned, misattributed, tampered, crossed):
        api.create(body)
    reasons = {}
    for body in (forged, unsigned, misattributed, tampered, crossed):
        name = body["metadata"]["name"]
        status = eventually(lambda n=name: settled(api, n), what=f"{name} to be judged")
        assert status["state"] == "Untrusted", status
        assert status["verification"]["verified"] is False
        assert status["paged"]["result"] == "Skipped" and status["shutdown"]["done"] is False
        reasons[name] = status["verification"]["reason"]
    assert "does not verify" in reasons["forged-1"]
    assert "no observed.signedPayload" in reasons["unsigned-1"]
    assert "watches CameraIntegration other, not relay" in reasons["misattributed-1"]
    assert "contradicts observed seq" in reasons["tampered-1"]
    assert "does not verify" in reasons["crossed-1"]
    assert api.replicas("relay-ingest") == 3 and pagerduty.requests == []
    assert "killSwitch" not in api.status(CAMERA_INTEGRATIONS, "relay")
    eventually(lambda: "UntrustedIncident" in api.events("relay"), what="the integration's warning Event")

    # The same leak with the probe's real signature is acted on.
    api.create(leak("relay-leak-1", "relay", key=key))
    status = eventually(lambda: settled(api, "relay-leak-1"), what="the verified leak to be answered")
    assert status["verification"]["verified"] is True and status["shutdown"]["done"] is True
    assert api.replicas("relay-ingest") == 0


# -- the operator: kill switches stay in the integration's namespace ------------------------


def test_a_kill_switch_aimed_at_another_namespace_is_refused_naming_the_field(
    control_plane: controlplane.ControlPlane,
    api: Api,
    namespace: str,
    start_operator: Callable[..., Operator],
) -> None:
    # Another team's namespace, where the operator's account may scale (as a cluster-wide
    # install may): only the operator's own check stands between the two.
    other = Api(control_plane.api_client, f"{namespace}-payments")
    control_plane_namespace(control_plane, other.namespace)
    try:
        other.apply(deployment("payments-api", replicas=3))
        grant(other, OPERATOR_ACCOUNT, permissions.role_rules(kill_switch=True), namespace)
        aimed = integration("relay")
        scale = next(a for a in aimed["spec"]["killSwitch"]["actions"] if a["type"] == "scale")
        scale["scale"] = {"name": "payments-api", "namespace": other.namespace}
        api.apply(aimed)
        trusted_probe(api, "relay")
        start_operator()

        field = "spec.killSwitch.actions[0].scale.namespace"
        status = eventually(
            lambda: (s := api.status(CAMERA_INTEGRATIONS, "relay")).get("phase") == "Degraded" and s,
            what="the integration to be Degraded",
        )
        degraded = {c["type"]: c for c in status["conditions"]}["Degraded"]
        assert field in degraded["message"] and other.namespace in degraded["message"]

        api.create(leak("relay-leak-1", "relay"))
        switch = eventually(
            lambda: (
                (s := api.status(CAMERA_INTEGRATIONS, "relay")).get("killSwitch", {}).get("state")
                == "EngageFailed"
                and s
            ),
            what="the kill switch to fail",
        )
        # The failure shows at a glance: not "Suspended" while nothing was switched off.
        assert switch["phase"] == "KillSwitchFailed"
        assert field in switch["killSwitch"]["reason"]
        assert other.replicas("payments-api") == 3
    finally:
        request(control_plane.api_client, "DELETE", f"/api/v1/namespaces/{other.namespace}")


def control_plane_namespace(plane: controlplane.ControlPlane, name: str) -> None:
    request(plane.api_client, "POST", "/api/v1/namespaces", body={"metadata": {"name": name}})


# -- the kill latch lives in status ----------------------------------------------------------


def handled(api: Api, name: str, **spec: Any) -> bool:
    """The operator has run every handler of the integration's change to ``spec`` (kopf
    records the configuration it handled last, once all of them succeeded)."""
    annotations = (api.get(CAMERA_INTEGRATIONS, name) or {})["metadata"].get("annotations") or {}
    last = json.loads(annotations.get(HANDLED, "{}")).get("spec") or {}
    return all(last.get(key) == value for key, value in spec.items())


def test_a_gitops_sync_of_suspended_false_does_not_switch_a_live_leak_back_on(
    api: Api, start_operator: Callable[..., Operator]
) -> None:
    target(api, "relay-ingest", replicas=3)
    in_git = integration("relay")
    api.apply(in_git)
    trusted_probe(api, "relay")
    start_operator()
    api.create(leak("relay-leak-1", "relay", key=TEST_KEY))
    eventually(lambda: settled(api, "relay-leak-1"), what="the leak to be switched off")
    live = api.get(CAMERA_INTEGRATIONS, "relay")
    assert live["spec"]["suspended"] is False  # the operator never writes spec
    assert live["status"]["killSwitch"]["state"] == "Engaged"

    # A sync from Git: `suspended: false` stated explicitly, and a spec change with it.
    in_git["spec"]["suspended"] = False
    in_git["spec"]["resolveAfterCleanSeconds"] = 2
    api.apply(in_git)
    eventually(
        lambda: handled(api, "relay", suspended=False, resolveAfterCleanSeconds=2),
        what="the operator to handle the synced spec",
    )
    assert api.status(CAMERA_INTEGRATIONS, "relay")["killSwitch"]["state"] == "Engaged"
    assert api.replicas("relay-ingest") == 0

    # A resume annotation left in Git from an earlier incident does not resume this one.
    api.patch(
        CAMERA_INTEGRATIONS, "relay", {"metadata": {"annotations": {RESUME_ANNOTATION: "relay-leak-0"}}}
    )
    eventually(lambda: "ResumeIgnored" in api.events("relay"), what="the stale resume request to be refused")
    assert api.replicas("relay-ingest") == 0

    # The explicit resume names the incident.
    resume(api, "relay")
    eventually(lambda: api.replicas("relay-ingest") == 3, what="the resume")
    eventually(
        lambda: incident_status(api, "relay-leak-1").get("state") == "Resolved",
        what="the incident to resolve",
    )


def test_a_leak_while_switched_off_by_hand_holds_when_the_hand_lets_go(
    api: Api, start_operator: Callable[..., Operator]
) -> None:
    target(api, "relay-ingest", replicas=3)
    api.apply(integration("relay"))
    trusted_probe(api, "relay")
    start_operator()
    api.patch(CAMERA_INTEGRATIONS, "relay", {"spec": {"suspended": True}})
    switch = eventually(
        lambda: (
            (k := api.status(CAMERA_INTEGRATIONS, "relay").get("killSwitch") or {}).get("state") == "Engaged"
            and k
        ),
        what="the switch-off by hand",
    )
    assert switch["incident"] == "manual" and '"suspended":false' in switch["resumeHint"]

    api.create(leak("relay-leak-1", "relay"))
    eventually(lambda: settled(api, "relay-leak-1"), what="the leak to be answered")
    switch = api.status(CAMERA_INTEGRATIONS, "relay")["killSwitch"]
    assert switch["incident"] == "relay-leak-1" and RESUME_ANNOTATION in switch["resumeHint"]

    api.patch(CAMERA_INTEGRATIONS, "relay", {"spec": {"suspended": False}})
    eventually(lambda: handled(api, "relay", suspended=False), what="the operator to handle suspended: false")
    assert api.status(CAMERA_INTEGRATIONS, "relay")["killSwitch"]["state"] == "Engaged"
    assert api.replicas("relay-ingest") == 0
    resume(api, "relay")
    eventually(lambda: api.replicas("relay-ingest") == 3, what="the resume by annotation")
    assert api.get(DEPLOYMENTS, "relay-ingest") is not None
