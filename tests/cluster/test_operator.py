"""The operator against the real API server: probes, leaks, pages, kill switch, restarts.

Every test runs ``canarywatch operator`` as a subprocess (``run_operator()`` from
``controller.main``) in a fresh namespace, authenticated as a ServiceAccount bound to
``controller.permissions``' rules only, so each test also proves those rules suffice.
PagerDuty is ``incidents.receiver.EventsReceiver`` (scriptable: 500, hang) and the
kill-switch webhook a local sink, both on an event loop in a thread. Resources start
from ``examples/`` and point their URLs at those.
"""

from __future__ import annotations

import asyncio
import base64
import copy
import json
import threading
import time
from collections.abc import Callable, Coroutine, Iterator
from pathlib import Path
from typing import Any, TypeVar

import controlplane
import pytest
from aiohttp import web
from kubernetes.client.exceptions import ApiException
from manifests import (
    CRD_FILES,
    OBSERVED_TENANT,
    TEST_KEY,
    canary_probe,
    deployment,
    documents,
    example,
    integration,
    keyring_secret,
    leak,
    secrets_of,
)
from operator_process import AGENT_IMAGE, Operator
from outcomes import settled as settled_status
from outcomes import triggers
from polling import eventually
from test_crds import GROUP_VERSION, request

from canarywatch.api import CONFIG_HASH_ANNOTATION, RESUME_ANNOTATION
from canarywatch.controller import permissions
from canarywatch.controller.kube import (
    CAMERA_INTEGRATIONS,
    CANARY_PROBES,
    CONFIG_MAPS,
    DEPLOYMENTS,
    LEAK_INCIDENTS,
    LEASES,
    NETWORK_POLICIES,
    SECRETS,
    Resource,
)
from canarywatch.controller.manifests import (
    VIEWER_ACCOUNT,
    build_camera_deployment,
    camera_name,
    keyring_item,
    keyring_secret_name,
    viewer_name,
)
from canarywatch.incidents.pagerduty import make_dedup_key
from canarywatch.incidents.receiver import EventsReceiver
from canarywatch.markers.keyring import Keyring
from canarywatch.shutdown import SIGNATURE_HEADER, verify_signature

pytestmark = [pytest.mark.cluster, pytest.mark.usefixtures("operator_crds")]

OPERATOR_ACCOUNT = "canarywatch-operator"
TARGET = "canarywatch-relay-ingest"  # the examples' scale target
SIGNING_SECRET = "replace-me-with-a-long-random-string"  # examples/cameraintegration.yaml

T = TypeVar("T")


@pytest.fixture(scope="module")
def operator_crds(control_plane: controlplane.ControlPlane) -> None:
    """crds/ installed and served. (test_crds' ``crds`` fixture, tolerant of a CRD whose
    status has no conditions yet: it reads ``status.conditions`` of null as an error.)"""
    api = control_plane.api_client
    names = []
    for path in CRD_FILES:
        crd = documents(path)[0]
        names.append(crd["metadata"]["name"])
        request(
            api,
            "PATCH",
            f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{crd['metadata']['name']}",
            body=crd,
            query=[("fieldManager", "tests"), ("force", "true")],
            content_type="application/apply-patch+yaml",
        )

    def served() -> bool:
        for name in names:
            crd = request(api, "GET", f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{name}")
            conditions = {c["type"]: c["status"] for c in (crd.get("status") or {}).get("conditions") or []}
            if conditions.get("Established") != "True":
                return False
        try:
            for plural in ("cameraintegrations", "canaryprobes", "leakincidents"):
                request(api, "GET", f"/apis/{GROUP_VERSION}/{plural}")
        except ApiException:
            return False
        return True

    eventually(served, timeout=30, what="the CRDs to be served")


# -- the API, as the tests' admin ------------------------------------------------------------


class Api:
    """Plain-dict calls as the admin user (``kube.Resource`` builds the paths)."""

    def __init__(self, api_client: Any, namespace: str) -> None:
        self.client = api_client
        self.namespace = namespace

    def call(
        self, method: str, path: str, body: Any = None, content_type: str = "application/json", **query: str
    ) -> Any:
        return request(
            self.client, method, path, body=body, query=list(query.items()), content_type=content_type
        )

    def apply(self, obj: dict[str, Any]) -> Any:
        resource = _resource(obj)
        path = resource.path(self.namespace, obj["metadata"]["name"])
        body = copy.deepcopy(obj)
        body["metadata"]["namespace"] = self.namespace
        return self.call(
            "PATCH", path, body, "application/apply-patch+yaml", fieldManager="tests", force="true"
        )

    def create(self, obj: dict[str, Any]) -> Any:
        return self.call("POST", _resource(obj).path(self.namespace), obj)

    def get(self, resource: Resource, name: str) -> Any:
        try:
            return self.call("GET", resource.path(self.namespace, name))
        except ApiException as error:
            if error.status == 404:
                return None
            raise

    def list(self, resource: Resource, **query: str) -> list[dict[str, Any]]:
        return list(self.call("GET", resource.path(self.namespace), **query)["items"])

    def patch(
        self, resource: Resource, name: str, patch: dict[str, Any], subresource: str | None = None
    ) -> Any:
        path = resource.path(self.namespace, name, subresource)
        return self.call("PATCH", path, patch, "application/merge-patch+json")

    def delete(self, resource: Resource, name: str) -> None:
        self.call("DELETE", resource.path(self.namespace, name), {"propagationPolicy": "Background"})

    def replicas(self, name: str = TARGET) -> int:
        return int(self.get(DEPLOYMENTS, name)["spec"]["replicas"])

    def status(self, resource: Resource, name: str) -> dict[str, Any]:
        return dict((self.get(resource, name) or {}).get("status") or {})

    def events(self, name: str) -> list[str]:
        items = self.call("GET", f"/api/v1/namespaces/{self.namespace}/events")["items"]
        return [e["reason"] for e in items if e["involvedObject"].get("name") == name]


_KINDS = {
    "Secret": SECRETS,
    "ConfigMap": CONFIG_MAPS,
    "Deployment": DEPLOYMENTS,
    "CameraIntegration": CAMERA_INTEGRATIONS,
    "CanaryProbe": CANARY_PROBES,
    "LeakIncident": LEAK_INCIDENTS,
    "StatefulSet": Resource("apps", "v1", "statefulsets", "StatefulSet"),
    "ServiceAccount": Resource("", "v1", "serviceaccounts", "ServiceAccount"),
    "Role": Resource("rbac.authorization.k8s.io", "v1", "roles", "Role"),
    "RoleBinding": Resource("rbac.authorization.k8s.io", "v1", "rolebindings", "RoleBinding"),
}


def _resource(obj: dict[str, Any]) -> Resource:
    return _KINDS[obj["kind"]]


# -- local servers on a loop in a thread ----------------------------------------------------


class Loop:
    """An asyncio loop in a daemon thread, for servers the blocking tests talk to."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = 30) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=5)


class WebhookSink:
    """The kill-switch webhook: records each call; ``hold()`` makes calls hang until
    ``release()``."""

    def __init__(self, loop: Loop) -> None:
        self._loop = loop
        self.calls: list[dict[str, Any]] = []
        self._open: asyncio.Event | None = None
        self._runner: web.AppRunner | None = None
        self.port = 0

    async def _start(self) -> None:
        self._open = asyncio.Event()
        self._open.set()
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = int(self._runner.addresses[0][1])

    async def _handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        self.calls.append({"path": request.path, "headers": dict(request.headers), "body": body})
        assert self._open is not None
        await self._open.wait()
        return web.json_response({"ok": True})

    def start(self) -> WebhookSink:
        self._loop.run(self._start())
        return self

    def hold(self) -> None:
        assert self._open is not None
        self._loop.loop.call_soon_threadsafe(self._open.clear)

    def release(self) -> None:
        assert self._open is not None
        self._loop.loop.call_soon_threadsafe(self._open.set)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def paths(self) -> list[str]:
        return [c["path"] for c in self.calls]

    def stop(self) -> None:
        if self._runner is not None:
            self.release()
            self._loop.run(self._runner.cleanup())


@pytest.fixture
def loop() -> Iterator[Loop]:
    running = Loop()
    yield running
    running.close()


@pytest.fixture
def pagerduty(loop: Loop) -> Iterator[EventsReceiver]:
    async def start() -> EventsReceiver:
        receiver = EventsReceiver(hang_seconds=60)
        await receiver.start()
        return receiver

    receiver = loop.run(start())
    yield receiver
    loop.run(receiver.stop())


@pytest.fixture
def webhook(loop: Loop) -> Iterator[WebhookSink]:
    sink = WebhookSink(loop).start()
    yield sink
    sink.stop()


# -- the operator as a subprocess -----------------------------------------------------------


def grant(where: Api, name: str, rules: list[dict[str, Any]], account_namespace: str) -> None:
    """A Role ``name`` in ``where``'s namespace with ``rules``, bound to ServiceAccount
    ``name`` of ``account_namespace``."""
    rbac = "rbac.authorization.k8s.io"
    where.apply({"apiVersion": f"{rbac}/v1", "kind": "Role", "metadata": {"name": name}, "rules": rules})
    where.apply(
        {
            "apiVersion": f"{rbac}/v1",
            "kind": "RoleBinding",
            "metadata": {"name": name},
            "roleRef": {"apiGroup": rbac, "kind": "Role", "name": name},
            "subjects": [{"kind": "ServiceAccount", "name": name, "namespace": account_namespace}],
        }
    )


def account_token(api: Api, name: str, rules: list[dict[str, Any]], seconds: int = 3600) -> str:
    """A real token (TokenRequest API) of ServiceAccount ``name`` of ``api``'s namespace,
    created and bound to ``rules`` there."""
    api.apply({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": name}})
    grant(api, name, rules, api.namespace)
    return str(
        api.call(
            "POST",
            f"/api/v1/namespaces/{api.namespace}/serviceaccounts/{name}/token",
            {
                "apiVersion": "authentication.k8s.io/v1",
                "kind": "TokenRequest",
                "spec": {"expirationSeconds": seconds},
            },
        )["status"]["token"]
    )


def operator_kubeconfig(plane: controlplane.ControlPlane, namespace: str, directory: Path) -> Path:
    """A kubeconfig for a ServiceAccount bound to ``controller.permissions`` and nothing else."""
    api = Api(plane.api_client, namespace)
    token = account_token(
        api, OPERATOR_ACCOUNT, permissions.role_rules(kill_switch=True, leader_election=True)
    )
    sa_client = plane.token_api_client(token)
    try:

        def bound() -> bool:  # the authorizer's cache catches up within moments
            review = request(
                sa_client,
                "POST",
                "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews",
                body={
                    "apiVersion": "authorization.k8s.io/v1",
                    "kind": "SelfSubjectAccessReview",
                    "spec": {
                        "resourceAttributes": {
                            "namespace": namespace,
                            "group": "coordination.k8s.io",
                            "resource": "leases",
                            "verb": "update",
                        }
                    },
                },
            )
            return bool(review["status"].get("allowed"))

        eventually(bound, timeout=30, what="the operator's RoleBinding to take effect")
    finally:
        sa_client.close()
    return plane.write_kubeconfig(
        directory / f"operator-{namespace}.kubeconfig", user=OPERATOR_ACCOUNT, token=token
    )


@pytest.fixture
def start_operator(
    control_plane: controlplane.ControlPlane,
    namespace: str,
    tmp_path: Path,
    pagerduty: EventsReceiver,
) -> Iterator[Callable[..., Operator]]:
    """``start_operator(name="op", **env)``: an operator watching the test's namespace,
    leading (or standing by, with ``wait=False``)."""
    kubeconfig = operator_kubeconfig(control_plane, namespace, tmp_path)
    started: list[Operator] = []

    def start(name: str = "operator", wait: bool = True, **env: str) -> Operator:
        env.setdefault("CANARYWATCH_PAGERDUTY_EVENTS_URL", pagerduty.url)
        operator = Operator(kubeconfig, namespace, tmp_path, name, env).start()
        started.append(operator)
        if wait:
            operator.wait_leading()
        return operator

    yield start
    for operator in started:
        operator.kill()
        text = operator.log()
        assert "Forbidden" not in text and " 403 " not in text, (
            f"{operator.name} was denied a call:\n{text[-3000:]}"
        )
        assert "Traceback" not in text, f"{operator.name} logged a traceback:\n{text[-5000:]}"


# -- resources from examples/ ---------------------------------------------------------------


def target(api: Api, name: str, replicas: int = 3) -> None:
    """The workload a scale action switches off: ``<integration>-ingest``."""
    api.apply(deployment(name, replicas))


@pytest.fixture
def api(control_plane: controlplane.ControlPlane, namespace: str) -> Api:
    cluster = Api(control_plane.api_client, namespace)
    for secret in secrets_of("CameraIntegration") + secrets_of("CanaryProbe"):
        cluster.apply(secret)
    cluster.apply(
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "relay-feature-flags"},
            "data": {"hub-integration": "enabled"},
        }
    )
    return cluster


def trusted_probe(api: Api, integration_name: str, key: bytes = TEST_KEY) -> bytes:
    """The CanaryProbe whose viewers report the integration's leaks (``leak`` names it),
    with its keyring Secret holding the observed tenant's ``key``; the key ``leak`` must
    sign with (``key``, unless the operator generated the Secret first)."""
    live = api.apply(canary_probe(integration_name))
    try:
        api.create(keyring_secret(live, key))
    except ApiException as error:
        if error.status != 409:
            raise
        secret = api.get(SECRETS, keyring_secret_name(live["metadata"]["name"]))
        document = base64.b64decode(secret["data"][keyring_item(OBSERVED_TENANT)]).decode()
        return Keyring.from_json(document).key(OBSERVED_TENANT)
    return key


def resume(api: Api, integration_name: str) -> None:
    """The explicit resume: the annotation naming the incident the kill switch holds for."""
    holder = api.status(CAMERA_INTEGRATIONS, integration_name)["killSwitch"]["incident"]
    api.patch(
        CAMERA_INTEGRATIONS, integration_name, {"metadata": {"annotations": {RESUME_ANNOTATION: holder}}}
    )


def incident_status(api: Api, name: str) -> dict[str, Any]:
    return api.status(LEAK_INCIDENTS, name)


def settled(api: Api, name: str) -> dict[str, Any] | None:
    """The incident's status once paged (or not) and shut down (or not), else None."""
    return settled_status(incident_status(api, name))


# -- CanaryProbe ------------------------------------------------------------------------------


def test_probe_runs_on_secrets_and_deployments_that_follow_its_spec(
    api: Api, start_operator: Callable[..., Operator]
) -> None:
    probe = example("CanaryProbe")
    ci = integration("reference-relay")
    operator = start_operator()

    # Before its integration exists the probe says so, instead of building half of it.
    api.apply(probe)
    status = eventually(
        lambda: (s := api.status(CANARY_PROBES, probe["metadata"]["name"])).get("conditions") and s,
        what="the probe's status",
    )
    degraded = {c["type"]: c for c in status["conditions"]}["Degraded"]
    assert (
        degraded["status"] == "True"
        and "CameraIntegration" in degraded["message"]
        and "not found" in degraded["message"]
    )
    assert api.list(DEPLOYMENTS) == []

    api.apply(ci)
    name = probe["metadata"]["name"]
    tenants = ["acme-7", "bravo-2"]
    # One camera pod for every tenant's cameras, one viewer pod for every tenant on every
    # (in-process shaped) profile.
    camera, viewer = camera_name(name), viewer_name(name)
    deployments = eventually(
        lambda: (
            (d := {x["metadata"]["name"]: x for x in api.list(DEPLOYMENTS)})
            and set(d) == {camera, viewer}
            and d
        ),
        what="the camera and viewer Deployments",
    )
    live_probe = api.get(CANARY_PROBES, name)
    live_ci = api.get(CAMERA_INTEGRATIONS, "reference-relay")
    built = build_camera_deployment(live_probe, live_ci, image=AGENT_IMAGE)
    live = deployments[camera]
    # Same builder output to the byte: the hashes agree.
    assert (
        live["metadata"]["annotations"][CONFIG_HASH_ANNOTATION]
        == built["metadata"]["annotations"][CONFIG_HASH_ANNOTATION]
    )
    assert live["metadata"]["ownerReferences"][0]["uid"] == live_probe["metadata"]["uid"]
    container = live["spec"]["template"]["spec"]["containers"][0]
    assert container["image"] == AGENT_IMAGE
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert (env["CANARYWATCH_TENANTS"], env["CANARYWATCH_FPS"]) == ("acme-7,bravo-2", "2")
    assert live["spec"]["template"]["spec"]["automountServiceAccountToken"] is False
    assert deployments[viewer]["spec"]["template"]["spec"]["serviceAccountName"] == VIEWER_ACCOUNT

    # One keyring Secret, an item per tenant: a real key each, owned by the probe, never logged.
    secret = api.get(SECRETS, keyring_secret_name(name))
    assert secret["metadata"]["ownerReferences"][0]["uid"] == live_probe["metadata"]["uid"]
    assert set(secret["data"]) == {keyring_item(t) for t in tenants}
    keys = {}
    for tenant in tenants:
        keyring = Keyring.from_json(base64.b64decode(secret["data"][keyring_item(tenant)]).decode())
        keys[tenant] = keyring.key(tenant)
        assert len(keys[tenant]) == 32
    assert keys["acme-7"] != keys["bravo-2"]
    for key in keys.values():
        assert key.hex() not in operator.log() and base64.b64encode(key).decode() not in operator.log()
    # The viewers' account is the namespace's, shared: each probe an owner, none the controller.
    viewer_role = api.get(_KINDS["Role"], VIEWER_ACCOUNT)
    assert viewer_role["rules"] == [
        {"apiGroups": ["canarywatch.io"], "resources": ["leakincidents"], "verbs": ["create"]}
    ]
    [owner] = viewer_role["metadata"]["ownerReferences"]
    assert (owner["uid"], owner.get("controller")) == (live_probe["metadata"]["uid"], None)
    # No finalizer: owner references remove the probe's objects, also while the operator is down.
    assert not live_probe["metadata"].get("finalizers")

    status = eventually(
        lambda: (s := api.status(CANARY_PROBES, name)).get("tenants") == 2 and s,
        what="the probe's status summary",
    )
    assert status["ready"] == "0/2"  # no kubelet: nothing ever becomes ready here
    # ... so the cameras are down too (once the summary has seen their Deployments)
    status = eventually(
        lambda: (
            (s := api.status(CANARY_PROBES, name)).get("conditions")
            and any(c["type"] == "CameraDown" for c in s["conditions"])
            and s
        ),
        what="the probe's CameraDown condition",
    )
    assert {c["type"]: c["status"] for c in status["conditions"]} == {
        "Ready": "False",
        "Degraded": "False",
        "Paused": "False",
        "CameraDown": "True",
    }

    # A spec change rolls what it touches: faster cameras; hub-wifi moved to a kernel
    # shaper, so a viewer Deployment of its own for it.
    camera_hash = deployments[camera]["spec"]["template"]["metadata"]["annotations"][CONFIG_HASH_ANNOTATION]
    custom = [dict(p, shaper="tc") for p in probe["spec"]["customNetworkProfiles"]]
    api.patch(CANARY_PROBES, name, {"spec": {"fps": 4, "customNetworkProfiles": custom}})

    def rolled() -> dict[str, Any] | None:
        current = {x["metadata"]["name"]: x for x in api.list(DEPLOYMENTS)}
        if set(current) != {camera, viewer, viewer_name(name, "hub-wifi")}:
            return None
        annotations = current[camera]["spec"]["template"]["metadata"]["annotations"]
        return current if annotations[CONFIG_HASH_ANNOTATION] != camera_hash else None

    current = eventually(rolled, what="the camera to roll and the hub-wifi viewers to get their own pods")
    env = {
        e["name"]: e.get("value") for e in current[camera]["spec"]["template"]["spec"]["containers"][0]["env"]
    }
    assert env["CANARYWATCH_FPS"] == "4"
    # Back to in-process shaping: the tc profile's Deployment goes as stale.
    api.patch(
        CANARY_PROBES, name, {"spec": {"customNetworkProfiles": probe["spec"]["customNetworkProfiles"]}}
    )
    current = eventually(
        lambda: (
            (c := {x["metadata"]["name"]: x for x in api.list(DEPLOYMENTS)})
            and set(c) == {camera, viewer}
            and c
        ),
        what="the hub-wifi viewers' own Deployment to go",
    )
    # The Deployment controller rolls it: a second ReplicaSet for the new pod template.
    eventually(
        lambda: (
            len(
                [
                    rs
                    for rs in api.list(Resource("apps", "v1", "replicasets", "ReplicaSet"))
                    if rs["metadata"]["name"].startswith(camera)
                ]
            )
            == 2
        ),
        what="a new ReplicaSet for the rolled camera",
    )
    secret = api.get(SECRETS, keyring_secret_name(name))
    for tenant in tenants:  # keys are generated once: an update never replaces them
        document = base64.b64decode(secret["data"][keyring_item(tenant)]).decode()
        assert Keyring.from_json(document).key(tenant) == keys[tenant]

    # The integration's verdict rules reach the viewers, which confirm k of n frames before
    # they report: changing them rolls the viewers and leaves the cameras alone.
    confirmation = {"frames": 4, "ofLast": 6}
    api.patch(
        CAMERA_INTEGRATIONS,
        "reference-relay",
        {"spec": {"policy": {"verdicts": {"foreign": {"confirmation": confirmation}}}}},
    )

    def viewer_rules() -> dict[str, Any] | None:
        now = {x["metadata"]["name"]: x for x in api.list(DEPLOYMENTS)}
        env = {
            e["name"]: e.get("value") for e in now[viewer]["spec"]["template"]["spec"]["containers"][0]["env"]
        }
        rules = json.loads(env.get("CANARYWATCH_POLICY") or "{}")
        return (
            now if rules.get("verdicts", {}).get("foreign", {}).get("confirmation") == confirmation else None
        )

    after = eventually(viewer_rules, what="the viewers to roll with the integration's new verdict rules")
    assert (
        after[camera]["spec"]["template"]["metadata"]["annotations"]
        == current[camera]["spec"]["template"]["metadata"]["annotations"]
    )

    # A tenant added gets a key of its own (the others keep theirs); one removed loses
    # its key, and the pods stop running it.
    charlie = {"id": "charlie-3", "tokenSecretRef": probe["spec"]["tenants"][0]["tokenSecretRef"]}
    api.patch(CANARY_PROBES, name, {"spec": {"tenants": [*probe["spec"]["tenants"], charlie]}})
    grown = eventually(
        lambda: (
            (s := api.get(SECRETS, keyring_secret_name(name)))
            and set(s["data"]) == {keyring_item(t) for t in (*tenants, "charlie-3")}
            and s
        ),
        what="charlie-3's key",
    )
    for tenant in tenants:
        document = base64.b64decode(grown["data"][keyring_item(tenant)]).decode()
        assert Keyring.from_json(document).key(tenant) == keys[tenant]
    api.patch(CANARY_PROBES, name, {"spec": {"tenants": [probe["spec"]["tenants"][0]]}})

    def shrunk() -> bool:
        data = api.get(SECRETS, keyring_secret_name(name))["data"]
        pods = {x["metadata"]["name"]: x for x in api.list(DEPLOYMENTS)}[camera]["spec"]["template"]["spec"]
        tenants_env = {e["name"]: e.get("value") for e in pods["containers"][0]["env"]}["CANARYWATCH_TENANTS"]
        return set(data) == {keyring_item("acme-7")} and tenants_env == "acme-7"

    eventually(shrunk, what="the removed tenants' keys to go and the camera to stop running them")

    # Deleting the probe garbage-collects everything it owns (kube-controller-manager).
    api.delete(CANARY_PROBES, name)
    eventually(
        lambda: (
            not [d for d in api.list(DEPLOYMENTS) if d["metadata"]["name"].startswith(name)]
            and not [s for s in api.list(SECRETS) if s["metadata"]["name"].startswith(name)]
            # its last owner gone, the namespace's viewer account goes too
            and api.get(_KINDS["Role"], VIEWER_ACCOUNT) is None
            and api.get(_KINDS["ServiceAccount"], VIEWER_ACCOUNT) is None
        ),
        what="the probe's Deployments and Secrets, and the viewers' account, to be garbage-collected",
    )


# -- LeakIncident → page → kill switch → resume ------------------------------------------------


def test_a_leak_pages_once_switches_the_integration_off_and_resume_restores_it(
    api: Api, start_operator: Callable[..., Operator], pagerduty: EventsReceiver, webhook: WebhookSink
) -> None:
    ci = integration("relay", webhook)
    target(api, "relay-ingest", replicas=3)
    api.apply(ci)
    trusted_probe(api, "relay")
    operator = start_operator()
    api.create(leak("relay-leak-1", "relay"))

    status = eventually(lambda: settled(api, "relay-leak-1"), what="the incident to be paged and shut down")
    dedup_key = make_dedup_key(integration="relay", incident="relay-leak-1")
    assert status["state"] == "Open"
    assert status["paged"] == status["paged"] | {"result": "Accepted", "attempts": 1, "dedupKey": dedup_key}
    assert status["shutdown"]["done"] is True and status["shutdown"]["seconds"] >= 0
    [trigger] = triggers(pagerduty)
    assert trigger["dedup_key"] == dedup_key and trigger["payload"]["severity"] == "critical"
    assert "thumbnail" not in json.dumps(trigger)  # hashes, never pixels

    # Every action took effect...
    assert api.replicas("relay-ingest") == 0
    [policy] = api.list(NETWORK_POLICIES)
    assert policy["spec"]["podSelector"] == {"matchLabels": {"app.kubernetes.io/name": "canarywatch-relay"}}
    assert api.get(CONFIG_MAPS, "relay-feature-flags")["data"] == {"hub-integration": "disabled"}
    [kill] = webhook.calls
    assert kill["path"] == "/v3/admin/kill"
    verify_signature(SIGNING_SECRET, kill["headers"][SIGNATURE_HEADER], kill["body"], now=time.time())
    assert kill["headers"]["Authorization"] == "Bearer ADMIN"  # from the Secret

    # ...and the integration says so, with what to restore.
    ci_status = api.status(CAMERA_INTEGRATIONS, "relay")
    assert ci_status["phase"] == "Suspended"
    switch = ci_status["killSwitch"]
    assert (switch["state"], switch["incident"]) == ("Engaged", "relay-leak-1")
    records = {a["name"]: a for a in switch["actions"]}
    assert {r["result"] for r in records.values()} == {"Succeeded"}
    assert records["scale-relay-ingest"]["previous"]["replicas"] == 3
    assert records["hub-integration-flag"]["previous"]["keys"] == [
        {"path": ["data", "hub-integration"], "was": "enabled", "set": "disabled"}
    ]
    assert f"{RESUME_ANNOTATION}=relay-leak-1" in switch["resumeHint"]
    # The latch is in status: spec, which users (and GitOps) own, is left as it was.
    assert api.get(CAMERA_INTEGRATIONS, "relay")["spec"]["suspended"] is False
    assert (ci_status["incidents"], ci_status["openIncidents"], len(ci_status["recentKills"])) == (1, 1, 1)
    eventually(
        lambda: {"LeakDetected", "Paged"} <= set(api.events("relay-leak-1")), what="the incident's Events"
    )
    eventually(
        lambda: {"LeakDetected", "KillSwitchEngaged"} <= set(api.events("relay")),
        what="the integration's Events",
    )

    labels = {"integration": "relay"}
    assert operator.metric("canarywatch_incidents_total", labels | {"verdict": "cross_tenant"}) == 1
    assert operator.metric("canarywatch_integration_suspended", labels) == 1
    assert operator.metric("canarywatch_shutdown_seconds_count", labels) == 1
    assert operator.metric("canarywatch_detection_seconds_count", labels) == 1
    assert (
        operator.metric("canarywatch_pagerduty_events_total", {"action": "trigger", "result": "delivered"})
        == 1
    )
    assert operator.health() is not None and "canarywatch" in operator.health()  # kopf's probe endpoint

    # Resume: everything restored, and the page resolved once the integration ran clean.
    resume(api, "relay")
    eventually(
        lambda: incident_status(api, "relay-leak-1").get("state") == "Resolved",
        what="the incident to resolve",
    )
    assert api.replicas("relay-ingest") == 3
    assert api.list(NETWORK_POLICIES) == []
    assert api.get(CONFIG_MAPS, "relay-feature-flags")["data"] == {"hub-integration": "enabled"}
    assert webhook.paths() == ["/v3/admin/kill", "/v3/admin/resume"]
    assert [e["event_action"] for e in pagerduty.events] == ["trigger", "resolve"]
    assert pagerduty.open_alert(dedup_key) is None
    # The incident's status is written before the integration's count of open incidents:
    # a poll can fall between the two writes.
    eventually(
        lambda: api.status(CAMERA_INTEGRATIONS, "relay").get("openIncidents") == 0,
        what="the integration to count no open incident",
    )
    ci_status = api.status(CAMERA_INTEGRATIONS, "relay")
    assert (ci_status["phase"], ci_status["killSwitch"]["state"]) == ("Active", "Resumed")
    assert incident_status(api, "relay-leak-1")["paged"]["result"] == "Resolved"
    assert operator.metric("canarywatch_integration_suspended", labels) == 0


def test_an_operator_killed_mid_incident_finishes_the_job_after_restart_and_pages_once(
    api: Api, start_operator: Callable[..., Operator], pagerduty: EventsReceiver, webhook: WebhookSink
) -> None:
    ci = integration("relay", webhook)
    by_type = {a["type"]: a for a in ci["spec"]["killSwitch"]["actions"]}
    # Scale first, then a webhook that hangs: the kill lands between the two.
    ci["spec"]["killSwitch"]["actions"] = [by_type["scale"], by_type["webhook"], by_type["networkPolicy"]]
    target(api, "relay-ingest", replicas=3)
    api.apply(ci)
    trusted_probe(api, "relay")
    pagerduty.script("timeout")  # the first trigger hangs too: the page is in flight
    webhook.hold()
    first = start_operator("first")
    api.create(leak("relay-leak-1", "relay"))

    def mid_incident() -> bool:
        status = incident_status(api, "relay-leak-1")
        switch = api.status(CAMERA_INTEGRATIONS, "relay").get("killSwitch") or {}
        records = {a["name"]: a["result"] for a in switch.get("actions", [])}
        return (
            (status.get("paged") or {}).get("result") == "Pending"
            and len(pagerduty.requests) == 1
            and records.get("scale-relay-ingest") == "Succeeded"
            and records.get("relay-admin-kill") == "Pending"
            and len(webhook.calls) == 1
        )

    eventually(mid_incident, what="the page and the webhook to hang mid-incident")
    first.kill()
    assert api.replicas("relay-ingest") == 0 and api.list(NETWORK_POLICIES) == []
    webhook.release()

    second = start_operator("second")
    status = eventually(
        lambda: settled(api, "relay-leak-1"), what="the restarted operator to finish the response"
    )
    assert status["paged"]["result"] == "Accepted" and status["paged"]["attempts"] == 2
    assert status["shutdown"]["done"] is True
    # The page was sent twice (at least once), and PagerDuty folded it into one alert.
    assert [r.answer for r in pagerduty.requests] == ["timeout", 202]
    assert len(pagerduty.alerts) == 1
    switch = api.status(CAMERA_INTEGRATIONS, "relay")["killSwitch"]
    assert switch["state"] == "Engaged"
    records = {a["name"]: a for a in switch["actions"]}
    assert records["scale-relay-ingest"]["previous"]["replicas"] == 3  # not the 0 it found on restart
    assert len(api.list(NETWORK_POLICIES)) == 1
    assert len(webhook.calls) == 2 and len({c["headers"]["Idempotency-Key"] for c in webhook.calls}) == 1

    # Once delivered, never again: a third operator start re-reads everything, sends nothing.
    second.kill()
    third = start_operator("third")
    eventually(lambda: "respond_to_incident" in third.log(), what="the third operator to resume the incident")
    time.sleep(1)
    assert len(pagerduty.requests) == 2 and len(webhook.calls) == 2

    resume(api, "relay")
    eventually(lambda: api.replicas("relay-ingest") == 3, what="resume to restore the recorded 3 replicas")
    eventually(lambda: api.list(NETWORK_POLICIES) == [], what="resume to delete the NetworkPolicy")


def test_pagerduty_answering_500_then_202_is_delivered_once(
    api: Api, start_operator: Callable[..., Operator], pagerduty: EventsReceiver
) -> None:
    target(api, "relay-ingest")
    api.apply(integration("relay"))
    trusted_probe(api, "relay")
    pagerduty.script(500)
    operator = start_operator()
    api.create(leak("relay-leak-1", "relay"))
    status = eventually(lambda: settled(api, "relay-leak-1"), what="the page to get through")
    assert status["paged"]["result"] == "Accepted" and status["paged"]["attempts"] == 2
    assert [r.answer for r in pagerduty.requests] == [500, 202]
    assert len(triggers(pagerduty)) == 1
    assert (
        operator.metric("canarywatch_pagerduty_events_total", {"action": "trigger", "result": "retry"}) == 1
    )
    assert (
        operator.metric("canarywatch_pagerduty_events_total", {"action": "trigger", "result": "delivered"})
        == 1
    )


# -- policy: modes, de-duplication, kill cap -------------------------------------------------


def test_dry_run_alert_only_and_the_kill_cap(
    api: Api, start_operator: Callable[..., Operator], pagerduty: EventsReceiver
) -> None:
    for name in ("dry", "alert", "capped"):
        target(api, f"{name}-ingest")
        trusted_probe(api, name)
    api.apply(integration("dry", policy={"mode": "dry-run"}))
    # alert-only switches nothing off, so a 1 s clean period could resolve alert-1 before
    # the test looks at it (or before alert-2 joins it): keep it open for the test.
    api.apply(integration("alert", policy={"mode": "alert-only"}, resolveAfterCleanSeconds=3600))
    api.apply(
        integration(
            "capped",
            policy={"mode": "enforce", "killCap": {"maxKills": 1, "windowSeconds": 3600}},
            resolveAfterCleanSeconds=0,
        )
    )
    start_operator()

    # dry-run: recorded, nothing else.
    api.create(leak("dry-1", "dry"))
    status = eventually(lambda: settled(api, "dry-1"), what="the dry-run decision")
    assert status["decision"].startswith("dry-run:") and "engage the kill switch" in status["decision"]
    assert status["paged"]["result"] == "Skipped" and status["shutdown"] == {
        "done": False,
        "skipped": "dry-run: recorded only",
    }

    # alert-only: paged, never switched off; a second leak of the kind joins the first.
    api.create(leak("alert-1", "alert"))
    status = eventually(lambda: settled(api, "alert-1"), what="the alert-only decision")
    assert status["paged"]["result"] == "Accepted"
    assert status["shutdown"]["skipped"] == "alert-only: the kill switch is left alone"
    api.create(leak("alert-2", "alert"))
    second = eventually(lambda: settled(api, "alert-2"), what="the second alert-only incident")
    assert second["paged"]["result"] == "Skipped"
    assert second["paged"]["dedupKey"] == make_dedup_key(integration="alert", incident="alert-1")
    eventually(
        lambda: incident_status(api, "alert-1").get("occurrences") == 2, what="the occurrence to attach"
    )

    # The cap: one automatic kill per hour here; the second leak pages and leaves it on.
    api.create(leak("capped-1", "capped"))
    eventually(lambda: settled(api, "capped-1"), what="the first capped kill")
    assert api.replicas("capped-ingest") == 0
    resume(api, "capped")
    eventually(
        lambda: incident_status(api, "capped-1").get("state") == "Resolved", what="resume and resolution"
    )
    assert api.replicas("capped-ingest") == 3
    api.create(leak("capped-2", "capped"))
    status = eventually(lambda: settled(api, "capped-2"), what="the capped decision")
    # Paged; and with resolveAfterCleanSeconds 0 and nothing switched off, maybe resolved already.
    assert status["paged"]["result"] in ("Accepted", "Resolved") and status["paged"]["attempts"] == 1
    assert "kill cap reached" in status["shutdown"]["skipped"]
    assert api.replicas("capped-ingest") == 3
    capped = api.status(CAMERA_INTEGRATIONS, "capped")
    assert capped["phase"] == "Active" and len(capped["recentKills"]) == 1

    # Nothing was switched off in the other two modes, and each page was one trigger.
    assert api.replicas("dry-ingest") == 3 and api.replicas("alert-ingest") == 3
    assert sorted(t["dedup_key"] for t in triggers(pagerduty)) == sorted(
        make_dedup_key(integration=i, incident=n)
        for i, n in (("alert", "alert-1"), ("capped", "capped-1"), ("capped", "capped-2"))
    )
    assert api.status(CAMERA_INTEGRATIONS, "dry")["phase"] == "Active"


def test_an_integration_whose_kill_switch_cannot_run_is_degraded(
    api: Api, start_operator: Callable[..., Operator]
) -> None:
    broken = integration("broken")
    broken["spec"]["pagerduty"]["routingKeySecretRef"] = {"name": "missing", "key": "routing-key"}
    api.apply(broken)
    start_operator()
    status = eventually(
        lambda: (s := api.status(CAMERA_INTEGRATIONS, "broken")).get("phase") and s, what="a phase"
    )
    assert status["phase"] == "Degraded"
    degraded = {c["type"]: c for c in status["conditions"]}["Degraded"]
    assert "spec.pagerduty.routingKeySecretRef" in degraded["message"] and "missing" in degraded["message"]
    api.apply(
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "missing"},
            "stringData": {"routing-key": "R" * 32},
        }
    )
    # Creating the Secret changes nothing the operator watches: the Degraded integration
    # is validated again on a timer, so the fix is seen without touching its spec.
    eventually(
        lambda: api.status(CAMERA_INTEGRATIONS, "broken").get("phase") == "Active", what="the fix to be seen"
    )


# -- high availability -------------------------------------------------------------------------


def test_of_two_replicas_only_the_leader_acts_and_the_other_takes_over(
    api: Api, start_operator: Callable[..., Operator], pagerduty: EventsReceiver
) -> None:
    for name in ("one", "two"):
        target(api, f"{name}-ingest")
        api.apply(integration(name))
        trusted_probe(api, name)
    first = start_operator("replica-a")
    second = start_operator("replica-b", wait=False)
    eventually(lambda: second.health() == {"standby": True}, what="the second replica to stand by")
    assert api.get(LEASES, "canarywatch-operator")["spec"]["holderIdentity"] == "replica-a"

    api.create(leak("one-1", "one"))
    eventually(lambda: settled(api, "one-1"), what="the leader to respond")
    assert api.replicas("one-ingest") == 0 and len(triggers(pagerduty)) == 1
    assert "one-1" in first.log() and "one-1" not in second.log()

    first.kill()  # no goodbye: the lease has to expire
    second.wait_leading(timeout=20)
    assert api.get(LEASES, "canarywatch-operator")["spec"]["holderIdentity"] == "replica-b"
    api.create(leak("two-1", "two"))
    eventually(lambda: settled(api, "two-1"), what="the new leader to respond")
    assert api.replicas("two-ingest") == 0
    assert sorted(t["dedup_key"] for t in triggers(pagerduty)) == [
        make_dedup_key(integration="one", incident="one-1"),
        make_dedup_key(integration="two", incident="two-1"),
    ]


def test_a_stopped_operator_hands_the_lease_over_at_once(
    api: Api, start_operator: Callable[..., Operator]
) -> None:
    first = start_operator("replica-a")
    second = start_operator("replica-b", wait=False)
    eventually(lambda: second.health() == {"standby": True}, what="the second replica to stand by")
    assert first.stop() == 0
    # Released on the way out (not left to expire): free or already taken over.
    assert api.get(LEASES, "canarywatch-operator")["spec"]["holderIdentity"] in ("", "replica-b")
    second.wait_leading(timeout=10)
