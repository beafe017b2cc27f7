"""The operator benchmark (``run_operator_benchmark``, for ``make bench-operator``): what
reconciling 1,000 probes from cold costs, and how fast a LeakIncident switches its
integration off meanwhile.

Against a real etcd + kube-apiserver started here (``tests/support/controlplane.py``,
the binaries of ``make tools``; no controller manager, so the figures are the
operator's and the API server's alone), with the operator as a subprocess running
exactly as in a cluster: leader election on, a ServiceAccount bound to
``controller.permissions``, PagerDuty at a local Events v2 receiver.

1. **Cold start.** ``probes`` CanaryProbes (2 tenants, 2 network profiles each: a
   keyring Secret, a camera and a viewer Deployment and a PodDisruptionBudget per probe,
   the namespace's viewer RBAC once) exist before the operator starts; the clock runs
   from its process start until every probe's status says all its workloads exist.
   Peak RSS is the process's ``VmHWM``; API requests are the operator account's until
   then, counted in the API server's audit log, by verb and resource; per probe, the
   requests on the probes and the objects they own. The CPU time the operator, the API
   server and etcd used until then says what the cold start costs whatever else the
   machine runs (their sum over 2 is the time it takes on 2 cores of its own, at best).
2. **Leak → switched off, under that load.** As soon as the first probe's keyring exists,
   ``incidents`` times, one after another: a LeakIncident is created (the clock starts
   before the request is sent) and a watch on the integration's target Deployment sees
   ``spec.replicas`` reach 0; then the integration is resumed (replicas back) and the
   incident resolved before the next. The report says how many ran while probes were
   still being reconciled; then a third as many again (at least 5) time the same leak
   once every probe is reconciled: the anchor, in the same run.

Figures only; nothing here asserts a threshold.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import queue
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

import yaml

from canarywatch.agents.reporting import rfc3339
from canarywatch.api import API_VERSION, LABEL_PROBE, RESUME_ANNOTATION
from canarywatch.bench.apiserver import (
    AUDIT_POLICY,
    Api,
    audit_counts,
    controlplane_module,
    cpu_seconds,
    first_found,
    free_port,
    install_crds,
    percentile,
    until,
)
from canarywatch.controller import permissions
from canarywatch.controller.manifests import keyring_item, keyring_secret_name
from canarywatch.incidents.receiver import EventsReceiver
from canarywatch.markers.keyring import Keyring
from canarywatch.markers.payload import Payload, pack_signed, tenant_tag

__all__ = ["run_operator_benchmark"]

_REPO = Path(__file__).resolve().parents[3]
_NAMESPACE = "bench"
_ACCOUNT = "canarywatch-operator"
_INTEGRATION = "bench-relay"
_TARGET = "bench-relay-ingest"
_GROUP = f"/apis/{API_VERSION}"


def run_operator_benchmark(*, incidents: int = 30, probes: int = 1000) -> int:
    """Run both measurements and print them; 0, or 1 if the control plane cannot start."""
    if incidents < 1 or probes < 1:
        print("incidents and probes must be >= 1", file=sys.stderr)
        return 2
    try:
        controlplane = controlplane_module()
    except ImportError as error:
        print(f"cannot load tests/support/controlplane.py: {error}", file=sys.stderr)
        return 1
    with tempfile.TemporaryDirectory(prefix="canarywatch-bench-operator-") as scratch:
        work = Path(scratch)
        (work / "audit-policy.yaml").write_text(AUDIT_POLICY)
        audit_log = work / "audit.log"
        plane = controlplane.ControlPlane(
            controller_manager=False,
            extra_apiserver_args=[
                f"--audit-policy-file={work / 'audit-policy.yaml'}",
                f"--audit-log-path={audit_log}",
            ],
        )
        try:
            plane.start()
        except controlplane.ControlPlaneError as error:
            print(f"control plane: {error}", file=sys.stderr)
            return 1
        try:
            versions = ", ".join(
                f"{tool} {controlplane.tool_version(tool)}" for tool in ("kube-apiserver", "etcd")
            )
            print(f"canarywatch operator benchmark: {versions} on loopback, {os.cpu_count()} CPUs")
            return _run(plane, work, audit_log, incidents=incidents, probes=probes)
        except (RuntimeError, TimeoutError) as error:
            print(f"benchmark failed: {error}", file=sys.stderr)
            return 1
        finally:
            plane.stop()


def _run(plane: Any, work: Path, audit_log: Path, *, incidents: int, probes: int) -> int:
    api = Api(plane.api_client)
    install_crds(api)
    api.create(
        "/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": _NAMESPACE}}
    )
    kubeconfig = _operator_kubeconfig(plane, api, work)
    with _receiver() as pagerduty_url:
        _setup_integration(api, pagerduty_url)
        example = _example("CanaryProbe")
        started = time.monotonic()
        with ThreadPoolExecutor(max_workers=8) as pool:
            list(pool.map(lambda i: _create_probe(api, example, i), range(probes)))
        created_in = time.monotonic() - started

        user = f"system:serviceaccount:{_NAMESPACE}:{_ACCOUNT}"
        operator = _Operator(kubeconfig, work, pagerduty_url)
        load_before = os.getloadavg()
        started = time.monotonic()
        cpu_before = cpu_seconds(plane.pids())
        operator.start()
        ready_after = operator.wait_ready()
        reconciled: dict[str, float] = {}

        def wait() -> None:
            reconciled.update(_wait_reconciled(api, probes, operator))
            cpu = cpu_seconds({**plane.pids(), "operator": operator.pid})
            reconciled.update({name: cpu[name] - cpu_before.get(name, 0.0) for name in cpu})

        waiting = threading.Thread(target=wait, daemon=True)
        waiting.start()
        reporter = first_found(lambda: _keyring_owners(api), 600, "a probe's keyring")
        leaks = _leak_to_zero(api, range(incidents), operator, waiting, reporter)
        waiting.join()
        # The anchor, in the same run: the same leaks once every probe is reconciled.
        leaks += _leak_to_zero(
            api, range(incidents, incidents + _settled(incidents)), operator, waiting, reporter
        )
        load_after = os.getloadavg()
        rss = operator.peak_rss_mib()
        cold = audit_counts(audit_log, user, until=reconciled["wall"])
        operator.stop()

    reconciled_after = reconciled["after"]
    print()
    print(f"Cold start: {probes} CanaryProbes (2 tenants x 2 network profiles each), created before")
    print(f"the operator started (in {created_in:.1f} s); load average {_load(load_before)} before,")
    print(f"{_load(load_after)} after (2 cores shared with other work: read the figures with it)")
    print(f"  operator ready (leader, kopf up)     {ready_after:8.2f} s after process start")
    print(f"  every probe reconciled              {reconciled_after:8.2f} s after process start")
    rate = probes / max(reconciled_after - ready_after, 1e-9)
    print(f"  throughput                          {rate:8.1f} probes/s")
    print(f"  peak RSS of the operator process    {rss:8.1f} MiB")
    cpu = {what: reconciled.get(name, 0.0) for what, name in _CPU_OF.items()}
    print(
        "  CPU until then (user+system)        "
        + ", ".join(f"{what} {seconds:.1f} s" for what, seconds in cpu.items())
    )
    total_cpu = sum(cpu.values())
    print(
        f"    = {total_cpu / probes * 1000:.0f} ms per probe (leaks answered meanwhile included): "
        f"{total_cpu / 2:.1f} s of 2 cores' time"
    )
    total = sum(cold.values())
    owned = sum(n for (_verb, resource), n in cold.items() if resource.split("/")[0] in _PROBE_OBJECTS)
    print(f"  API requests until then (audit log) {total:8d}   = {total / probes:.2f} per probe")
    print(f"    on the probes and their objects   {owned:8d}   = {owned / probes:.2f} per probe")
    for (verb, resource), count in sorted(cold.items(), key=lambda item: -item[1]):
        print(f"    {verb:>7} {resource:<32} {count:6d}   {count / probes:5.2f}/probe")
    print()
    loaded = [latency for latency, cold_start in leaks if cold_start]
    settled = [latency for latency, cold_start in leaks if not cold_start]
    print("LeakIncident created -> target Deployment at 0 replicas, one after another")
    print("(enforce; kill switch: one scale action; paged concurrently; the signed evidence verified)")
    for label, latencies in (
        ("while probes were reconciled", loaded),
        ("once all were (the anchor)", settled),
    ):
        if latencies:
            p50, p99 = (percentile(latencies, p) * 1000 for p in (50, 99))
            print(
                f"  {label:<30} {len(latencies):3d} incidents   p50 {p50:7.1f} ms   p99 {p99:7.1f} ms"
                f"   max {max(latencies) * 1000:7.1f} ms   mean {statistics.fmean(latencies) * 1000:7.1f} ms"
            )
    if loaded and settled:
        print(
            f"  during / after the cold start    p50 {percentile(loaded, 50) / percentile(settled, 50):.2f}x"
            f"   p99 {percentile(loaded, 99) / percentile(settled, 99):.2f}x"
        )
    return 0


#: Resources a probe's reconcile writes (and the probes themselves): "per probe".
_PROBE_OBJECTS = frozenset(
    {"canaryprobes", "secrets", "deployments", "poddisruptionbudgets", "services"}
    | {"serviceaccounts", "roles", "rolebindings"}
)


#: The processes whose CPU time the cold start costs, as printed -> as in ``plane.pids()``.
_CPU_OF = {"operator": "operator", "API server": "kube-apiserver", "etcd": "etcd"}


def _load(averages: tuple[float, float, float]) -> str:
    return "/".join(f"{a:.1f}" for a in averages)


def _keyring_owners(api: Api) -> list[str]:
    """The probes whose keyring Secret exists (at most one asked for): the first one
    reconciled reports the leaks, whichever kopf took first."""
    listed = api.call(
        "GET",
        f"/api/v1/namespaces/{_NAMESPACE}/secrets",
        labelSelector="app.kubernetes.io/component=keyring",
        limit="1",
    )
    return [str(item["metadata"]["labels"][LABEL_PROBE]) for item in listed["items"]]


# -- control plane and API ---------------------------------------------------------------


def _operator_kubeconfig(plane: Any, api: Api, work: Path) -> Path:
    ns = f"/api/v1/namespaces/{_NAMESPACE}"
    rbac = f"/apis/rbac.authorization.k8s.io/v1/namespaces/{_NAMESPACE}"
    api.create(
        f"{ns}/serviceaccounts",
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": _ACCOUNT}},
    )
    api.create(
        f"{rbac}/roles",
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "Role",
            "metadata": {"name": _ACCOUNT},
            "rules": permissions.role_rules(kill_switch=True, leader_election=True),
        },
    )
    api.create(
        f"{rbac}/rolebindings",
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "RoleBinding",
            "metadata": {"name": _ACCOUNT},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": _ACCOUNT},
            "subjects": [{"kind": "ServiceAccount", "name": _ACCOUNT, "namespace": _NAMESPACE}],
        },
    )
    token = api.create(
        f"{ns}/serviceaccounts/{_ACCOUNT}/token",
        {
            "apiVersion": "authentication.k8s.io/v1",
            "kind": "TokenRequest",
            "spec": {"expirationSeconds": 7200},
        },
    )["status"]["token"]
    time.sleep(1)  # the RBAC authorizer's cache catches up
    path: Path = plane.write_kubeconfig(work / "operator.kubeconfig", user=_ACCOUNT, token=token)
    return path


def _example(kind: str) -> dict[str, Any]:
    for path in sorted((_REPO / "examples").glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if doc and doc.get("kind") == kind:
                return dict(doc)
    raise LookupError(kind)


def _setup_integration(api: Api, pagerduty_url: str) -> None:
    ns = f"/api/v1/namespaces/{_NAMESPACE}"
    api.create(
        f"{ns}/secrets",
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "pagerduty"},
            "stringData": {"routing-key": "R" * 32},
        },
    )
    api.create(
        f"{ns}/secrets",
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "canary-tokens"},
            "stringData": {"a": "t"},
        },
    )
    labels = {"app": _TARGET}
    api.create(
        f"/apis/apps/v1/namespaces/{_NAMESPACE}/deployments",
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": _TARGET},
            "spec": {
                "replicas": 1,
                "selector": {"matchLabels": labels},
                "template": {
                    "metadata": {"labels": labels},
                    "spec": {"containers": [{"name": "r", "image": "r:1"}]},
                },
            },
        },
    )
    integration = _example("CameraIntegration")
    integration["metadata"] = {"name": _INTEGRATION}
    integration["spec"]["killSwitch"] = {
        "actions": [
            {"name": "scale-ingest", "type": "scale", "scale": {"kind": "Deployment", "name": _TARGET}}
        ]
    }
    integration["spec"]["policy"] = {"mode": "enforce", "killCap": {"maxKills": 1000, "windowSeconds": 3600}}
    integration["spec"]["pagerduty"] = {
        "routingKeySecretRef": {"name": "pagerduty", "key": "routing-key"},
        "url": pagerduty_url,
    }
    integration["spec"]["resolveAfterCleanSeconds"] = 0
    api.create(f"{_GROUP}/namespaces/{_NAMESPACE}/cameraintegrations", integration)


def _create_probe(api: Api, example: dict[str, Any], index: int) -> None:
    probe = json.loads(json.dumps(example))
    probe["metadata"] = {"name": f"probe-{index:04d}"}
    spec = probe["spec"]
    spec["integrationRef"] = {"name": _INTEGRATION}
    spec["networkProfiles"] = ["good", "poor"]
    spec.pop("customNetworkProfiles", None)
    spec["transports"] = ["snapshot"]
    api.create(f"{_GROUP}/namespaces/{_NAMESPACE}/canaryprobes", probe)


@contextmanager
def _receiver() -> Iterator[str]:
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()

    async def start() -> EventsReceiver:
        receiver = EventsReceiver()
        await receiver.start()
        return receiver

    receiver = asyncio.run_coroutine_threadsafe(start(), loop).result(10)
    try:
        yield receiver.url
    finally:
        asyncio.run_coroutine_threadsafe(receiver.stop(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5)


# -- the operator -----------------------------------------------------------------------


class _Operator:
    def __init__(self, kubeconfig: Path, work: Path, pagerduty_url: str) -> None:
        self.log_path = work / "operator.log"
        self.liveness_port = free_port()
        self.env = {
            **os.environ,
            "KUBECONFIG": str(kubeconfig),
            "CANARYWATCH_NAMESPACES": _NAMESPACE,
            "CANARYWATCH_OPERATOR_NAMESPACE": _NAMESPACE,
            "CANARYWATCH_POD_NAME": "bench-operator",
            "CANARYWATCH_LISTEN_HOST": "127.0.0.1",
            "CANARYWATCH_METRICS_PORT": str(free_port()),
            "CANARYWATCH_LIVENESS_PORT": str(self.liveness_port),
            "CANARYWATCH_PAGERDUTY_EVENTS_URL": pagerduty_url,
            "CANARYWATCH_RESOLVE_CHECK_SECONDS": "0.5",
            # Nothing runs pods here: a camera with none is starting, not down, all along
            # (its CameraDown Event and status patch are not what a cold start costs).
            "CANARYWATCH_CAMERA_START_GRACE_SECONDS": "3600",
            "CANARYWATCH_LOG_LEVEL": "WARNING",
        }
        self.process: subprocess.Popen[bytes] | None = None
        self.started = 0.0

    def start(self) -> None:
        code = "from canarywatch.controller.main import run_operator; raise SystemExit(run_operator())"
        with self.log_path.open("ab") as log:
            self.started = time.monotonic()
            self.process = subprocess.Popen(
                [sys.executable, "-c", code],
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def check(self) -> None:
        if self.process is None or self.process.poll() is not None:
            raise RuntimeError(f"the operator exited; log:\n{self.log_path.read_text()[-3000:]}")

    def wait_ready(self) -> float:
        def ready() -> bool:
            self.check()
            try:
                with urllib.request.urlopen(
                    f"http://127.0.0.1:{self.liveness_port}/healthz", timeout=2
                ) as answer:
                    return "standby" not in json.loads(answer.read())
            except OSError:
                return False

        until(ready, 60, "the operator to lead", interval=0.02)
        return time.monotonic() - self.started

    def peak_rss_mib(self) -> float:
        assert self.process is not None
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
        return float("nan")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)


def _wait_reconciled(api: Api, probes: int, operator: _Operator) -> dict[str, float]:
    """Seconds after the operator's start until every probe says its workloads exist
    (``after``), and that moment's wall-clock time (``wall``), for the audit log.

    Followed by a watch, not by listing the probes every few seconds: a list of 1,000
    probes costs the API server about a second of CPU, which would be taken from the
    operator being measured on the same two cores."""
    from kubernetes import client, watch

    custom = client.CustomObjectsApi(api.client)
    group, version = API_VERSION.split("/")
    done: set[str] = set()
    deadline = time.monotonic() + 900
    follower = watch.Watch()  # type: ignore[no-untyped-call]
    while len(done) < probes:
        operator.check()
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out waiting for {probes} probes to be reconciled")
        since = {"resource_version": follower.resource_version} if follower.resource_version else {}
        try:
            for event in follower.stream(  # type: ignore[no-untyped-call]
                custom.list_namespaced_custom_object,
                group,
                version,
                _NAMESPACE,
                "canaryprobes",
                timeout_seconds=5,
                **since,
            ):
                probe, name = event["object"], str(event["object"]["metadata"]["name"])
                if event["type"] != "DELETED" and _probe_reconciled(probe):
                    done.add(name)
                else:
                    done.discard(name)
                if len(done) == probes:
                    break
        except client.ApiException as error:
            if error.status != 410:
                raise
            follower = watch.Watch()  # type: ignore[no-untyped-call]  # too old: list afresh
    return {"after": time.monotonic() - operator.started, "wall": time.time()}


def _probe_reconciled(probe: dict[str, Any]) -> bool:
    status = probe.get("status") or {}
    return bool(
        status.get("observedGeneration") == probe["metadata"]["generation"]
        and status.get("tenants") == 2
        and (status.get("workloads") or {}).get("desired") == 2
    )


# -- leak to zero -----------------------------------------------------------------------


def _settled(incidents: int) -> int:
    """How many leaks time the settled operator (after the cold start's ``incidents``)."""
    return max(5, incidents // 3)


def _leak_to_zero(
    api: Api, numbers: range, operator: _Operator, reconciling: threading.Thread, reporter: str
) -> list[tuple[float, bool]]:
    """Each incident's latency (they are numbered ``numbers``), and whether probes were
    still being reconciled then."""
    from kubernetes import watch

    seen: queue.Queue[tuple[float, int]] = queue.Queue()
    stop = threading.Event()

    def follow() -> None:
        from kubernetes import client

        apps = client.AppsV1Api(api.client)
        while not stop.is_set():
            stream = watch.Watch().stream(  # type: ignore[no-untyped-call]
                apps.list_namespaced_deployment,
                _NAMESPACE,
                field_selector=f"metadata.name={_TARGET}",
                timeout_seconds=30,
            )
            try:
                for event in stream:
                    seen.put((time.monotonic(), int(event["object"].spec.replicas or 0)))
                    if stop.is_set():
                        return
            except Exception:
                if stop.is_set():
                    return  # the control plane is going away
                raise

    watcher = threading.Thread(target=follow, daemon=True)
    watcher.start()
    integration = f"{_GROUP}/namespaces/{_NAMESPACE}/cameraintegrations/{_INTEGRATION}"
    incidents_path = f"{_GROUP}/namespaces/{_NAMESPACE}/leakincidents"
    example = _example("LeakIncident")
    # Reported as ``reporter``'s viewer would: the frame's payload signed with the observed
    # tenant's key from the keyring the operator generated (it verifies it before acting).
    tenant = example["spec"]["observed"]["tenant"]
    secret = api.get(f"/api/v1/namespaces/{_NAMESPACE}/secrets/{keyring_secret_name(reporter)}")
    keyring = Keyring.from_json(base64.b64decode(secret["data"][keyring_item(tenant)]).decode())
    latencies: list[tuple[float, bool]] = []
    time.sleep(1)  # the watch is established
    for index in numbers:
        while not seen.empty():
            seen.get_nowait()
        incident = json.loads(json.dumps(example))
        incident["metadata"] = {"name": f"leak-{index:03d}"}
        incident["spec"]["integrationRef"]["name"] = _INTEGRATION
        incident["spec"]["probeRef"]["name"] = reporter
        now = datetime.now(UTC).isoformat().replace("+00:00", "Z")
        incident["spec"]["times"] = {"frameReceived": now, "recorded": now}
        observed = incident["spec"]["observed"]
        payload = Payload(tenant_tag(tenant), observed["camera"], observed["seq"], time.time())
        observed["time"] = rfc3339(payload.time)
        observed["signedPayload"] = base64.b64encode(pack_signed(payload, keyring.key(tenant))).decode()
        cold_start = reconciling.is_alive()
        started = time.monotonic()
        api.create(incidents_path, incident)
        while True:
            operator.check()
            at, replicas = seen.get(timeout=60)
            if replicas == 0:
                latencies.append((at - started, cold_start))
                break
        # Switch it back on, and let the incident resolve before the next one.
        until(
            lambda: api.get(integration)["status"].get("killSwitch", {}).get("state") == "Engaged",
            30,
            "engaged",
        )
        holder = api.get(integration)["status"]["killSwitch"]["incident"]
        api.patch(integration, {"metadata": {"annotations": {RESUME_ANNOTATION: holder}}})
        until(partial(_back_on, api, f"{incidents_path}/leak-{index:03d}"), 30, "resume and resolution")
    stop.set()
    return latencies


def _back_on(api: Api, incident: str) -> bool:
    integration = f"{_GROUP}/namespaces/{_NAMESPACE}/cameraintegrations/{_INTEGRATION}"
    return bool(
        api.get(incident).get("status", {}).get("state") == "Resolved"
        and api.get(f"/apis/apps/v1/namespaces/{_NAMESPACE}/deployments/{_TARGET}")["spec"]["replicas"] == 1
        and api.get(integration)["status"].get("phase") == "Active"
    )
