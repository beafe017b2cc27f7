"""The chart's demo on a real node, as a user runs it: ``helm install`` with the locally
built image, the operator and its agent pods, the reference relay with and without the
2019 hub leak, the page, the kill switch, resume, upgrade and uninstall.

The tests of this module share one release and run in file order, each starting from
where the previous one left the demo (a fresh install per scenario would cost minutes
of pod start-ups on a 2-core machine): install -> no fault -> leak -> resume ->
operator deleted mid-incident -> upgrade + uninstall.  A test that finds the release
in a state it cannot start from fails with that state, not with a timeout.

The kill switch is ``scale`` of the relay's Deployment then the chart's
``networkPolicy`` action (``postrender.py``); pages go to the chart's in-cluster
PagerDuty receiver, which records them for :meth:`Release.triggers`.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from availability import unavailable
from helm_release import Image, Release
from outcomes import settled
from polling import eventually
from realnode import RealNode

from canarywatch import api

pytestmark = pytest.mark.realcluster

NAMESPACE = "cw-demo"
TENANTS = ["acme-7", "bravo-2"]
PROFILES = ["good", "poor", "extreme"]
TRANSPORTS = ["snapshot", "mjpeg", "hls", "hub"]
# Generous: pods start slowly on a loaded 2-core machine; nothing here is a timing claim.
STARTUP = 420.0
REACTION = 180.0
SOAK_SECONDS = float(os.environ.get("CANARYWATCH_REALCLUSTER_SOAK_SECONDS", "60"))
RELAY_SELECTOR = "app.kubernetes.io/instance=canarywatch,app.kubernetes.io/component=demo-relay"
OPERATOR_SELECTOR = "app.kubernetes.io/instance=canarywatch,app.kubernetes.io/component=operator"
VIEWER_SELECTOR = f"{api.LABEL_ROLE}=viewer"
LEAK_VERDICTS = {"cross_tenant", "foreign", "misrouted", "forged"}


@pytest.fixture(scope="module")
def release(realnode: RealNode, canarywatch_image: Image) -> Iterator[Release]:
    values: dict[str, Any] = {
        "operator": {"statusIntervalSeconds": 5, "resolveCheckSeconds": 5},
        "demo": {
            "enabled": True,
            "tenants": TENANTS,
            "relay": {"fault": "none"},
            # JPEG paths and video: the relay's HLS ladder directly, and as a smart display
            # gets it (SYNC, EXECUTE GetCameraStream, then HLS)
            "probe": {"networkProfiles": PROFILES, "transports": TRANSPORTS, "fps": 2},
        },
    }
    rel = Release(realnode, NAMESPACE, canarywatch_image, values=values)
    rel.install()
    yield rel
    realnode.helm("uninstall", rel.name, "-n", NAMESPACE, "--wait", "--timeout", "3m", check=False)
    realnode.kubectl("delete", "namespace", NAMESPACE, "--wait=false", check=False)


# ---- helpers ------------------------------------------------------------------------
def condition(obj_status: dict[str, Any], kind: str) -> str | None:
    return next((c["status"] for c in obj_status.get("conditions") or [] if c["type"] == kind), None)


def probe_ready(release: Release) -> dict[str, Any] | None:
    status = release.status("canaryprobes", release.probe)
    return status if condition(status, "Ready") == "True" else None


def exec_python(release: Release, pod: str, code: str) -> Any:
    out = release.node.kubectl("exec", "-n", NAMESPACE, pod, "--", "/opt/canarywatch/bin/python", "-c", code)
    return json.loads(out.stdout)


_OK_FRAMES_BY_PATH = """
import json, re, urllib.request
text = urllib.request.urlopen("http://127.0.0.1:9100/metrics", timeout=10).read().decode()
ok = {}
for m in re.finditer(r'^canarywatch_frames_total[{]([^}]*)[}] ([0-9.e+]+)$', text, re.M):
    labels = dict(re.findall(r'(\\w+)="([^"]*)"', m.group(1)))
    if labels.get("verdict") == "ok":
        key = labels["path"] + "/" + labels["network_profile"]
        ok[key] = ok.get(key, 0) + float(m.group(2))
print(json.dumps(ok))
"""


def ok_frames_by_path(release: Release) -> dict[str, float]:
    """``path/network_profile`` -> ok frames, summed over the viewer pods' own metrics."""
    total: dict[str, float] = {}
    for pod in release.ready_pods(VIEWER_SELECTOR):
        for key, n in exec_python(release, pod.metadata.name, _OK_FRAMES_BY_PATH).items():
            total[key] = total.get(key, 0.0) + n
    return total


def relay_replicas(release: Release) -> int:
    return int(release.apps().read_namespaced_deployment(release.relay, NAMESPACE).spec.replicas)


def poll(check: Callable[[], bool], timeout: float) -> bool:
    """Like ``eventually``, but answers False at the deadline instead of failing."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            return False
        time.sleep(1.0)
    return True


def open_incidents(release: Release) -> list[dict[str, Any]]:
    return [i for i in release.incidents() if (i.get("status") or {}).get("state") != "Resolved"]


# ---- 1. install ---------------------------------------------------------------------
def test_install_runs_the_operator_ready_holding_its_lease_under_the_chart_security_context(
    release: Release,
) -> None:
    [pod] = eventually(lambda: release.ready_pods(OPERATOR_SELECTOR), STARTUP, "the operator pod Ready")
    assert pod.status.phase == "Running"

    from kubernetes import client

    coordination = client.CoordinationV1Api(release.node.api_client)
    holder = eventually(
        lambda: coordination.read_namespaced_lease(release.operator, NAMESPACE).spec.holder_identity,
        REACTION,
        "the operator's Lease to be held",
    )
    assert pod.metadata.name in holder

    # What the kernel enforces in the container, not what the manifest says.
    seen = exec_python(release, pod.metadata.name, """\
import json, os
lines = open('/proc/self/status').read().splitlines()
status = dict(line.split(':\\t', 1) for line in lines if ':\\t' in line)
try:
    open('/written-by-a-test', 'w')
    root_writable = True
except OSError:
    root_writable = False
print(json.dumps({'uid': os.getuid(), 'gid': os.getgid(), 'root_writable': root_writable,
                  'seccomp': status['Seccomp'].strip(), 'no_new_privs': status['NoNewPrivs'].strip(),
                  'cap_eff': status['CapEff'].strip()}))
""")  # fmt: skip
    assert seen == {
        "uid": 65532,
        "gid": 65532,
        "root_writable": False,  # readOnlyRootFilesystem
        "seccomp": "2",  # RuntimeDefault: a seccomp filter
        "no_new_privs": "1",  # allowPrivilegeEscalation: false
        "cap_eff": "0000000000000000",  # drop: [ALL]
    }


# ---- 2. no fault --------------------------------------------------------------------
def test_without_a_fault_viewers_on_every_profile_see_only_their_own_frames(release: Release) -> None:
    status = eventually(lambda: probe_ready(release), STARTUP, "the CanaryProbe Ready (all agent pods up)")
    assert status["tenants"] == len(TENANTS)
    # One viewer pod runs every tenant on every profile (each with its own in-process
    # shaper); a profile with shaper: tc would get a pod of its own (none here).
    viewers = release.ready_pods(VIEWER_SELECTOR)
    profiles: set[str] = set()
    for pod in viewers:
        env = {e.name: e.value for e in pod.spec.containers[0].env or []}
        profiles |= set(json.loads(env["CANARYWATCH_NETWORK_PROFILES"]))
    assert set(PROFILES) <= profiles, f"viewer pods on {profiles}"

    first = eventually(
        lambda: (s := release.status("canaryprobes", release.probe)).get("verdictCounts", {}).get("ok") and s,
        REACTION,
        "verdict counts with ok frames",
    )
    time.sleep(SOAK_SECONDS)  # a soak, not a timing: the assertions are about what happened in it
    later = eventually(
        lambda: (
            (s := release.status("canaryprobes", release.probe))["verdictCounts"]["ok"]
            > first["verdictCounts"]["ok"]
            and s
        ),
        REACTION,
        "more ok frames after the soak",
    )
    counts = later["verdictCounts"]
    assert {v: n for v, n in counts.items() if v in LEAK_VERDICTS and n} == {}, counts
    # every path on every profile judged the viewer's own frames, video paths included
    wanted = {f"{t}/{p}" for t in TRANSPORTS for p in PROFILES}
    seen = eventually(
        lambda: (ok := ok_frames_by_path(release)) and wanted <= {k for k, n in ok.items() if n > 0} and ok,
        REACTION,
        f"ok frames on every path and profile ({sorted(wanted)})",
    )
    print(f"figure: ok frames by path/profile in viewer pods: {dict(sorted(seen.items()))}")
    assert release.incidents() == []
    assert release.status("cameraintegrations", release.integration).get("phase") == "Active"
    assert release.triggers() == []


# ---- 3. the 2019 hub leak -----------------------------------------------------------
def test_the_xiaomi_leak_is_caught_by_a_poor_network_viewer_paged_once_and_the_relay_pods_terminate(
    release: Release,
) -> None:
    assert release.status("cameraintegrations", release.integration).get("phase") == "Active"
    assert relay_replicas(release) == 1
    release.upgrade({"demo": {"relay": {"fault": "xiaomi-2019"}}}, wait=False)

    incident = eventually(lambda: next(iter(release.incidents()), None), STARTUP, "a LeakIncident")
    spec = incident["spec"]
    assert spec["integrationRef"]["name"] == release.integration
    assert spec["viewer"]["networkProfile"] != "good", spec["viewer"]  # the 2019 leak needs a slow link
    assert spec["observed"]["verdict"] in LEAK_VERDICTS
    assert spec["viewer"]["pod"], "a viewer pod reported it"

    # Several viewers (paths, profiles) may report the leak at once: one LeakIncident is
    # the incident, paged and switched off; the others attach to it.
    def primary() -> dict[str, Any] | None:
        statuses = {i["metadata"]["name"]: settled(i.get("status") or {}) for i in release.incidents()}
        return next((s for s in statuses.values() if s and s["paged"]["result"] == "Accepted"), None)

    status = eventually(primary, REACTION, "the incident paged and the kill switch done")
    assert status["shutdown"].get("done") is True, status

    # The relay's pods actually terminate.
    assert relay_replicas(release) == 0
    eventually(lambda: release.pods(RELAY_SELECTOR) == [] or None, REACTION, "the relay's pods gone")

    ci = release.status("cameraintegrations", release.integration)
    assert ci["phase"] == "Suspended", ci
    switch = ci["killSwitch"]
    assert switch["state"] == "Engaged", switch
    actions = {a["name"]: a for a in switch["actions"]}
    assert actions["scale-relay"]["result"] == "Succeeded"
    assert actions["scale-relay"]["previous"]["replicas"] == 1
    assert actions["isolate-relay"]["result"] == "Succeeded"
    assert switch["resumeHint"]

    # Exactly one page per incident, however many viewers saw the leak.
    incidents = release.incidents()
    keys = {i["status"]["paged"]["dedupKey"] for i in incidents if (i.get("status") or {}).get("paged")}
    triggers = eventually(release.triggers, REACTION, "the receiver's trigger")
    assert len(triggers) == len(keys) == 1, (triggers, keys)
    assert triggers[0]["dedup_key"] in keys


def test_the_network_policy_is_enforced_by_the_cni(release: Release) -> None:
    if not release.node.network_policies:
        unavailable("kube-router (NetworkPolicy firewall) is not built: hack/build-tools.sh kube-router")
    assert release.status("cameraintegrations", release.integration)["phase"] == "Suspended"
    [viewer, *_] = release.ready_pods(VIEWER_SELECTOR)
    # Bring one relay pod back by hand, behind the policy the kill switch created.
    release.apps().patch_namespaced_deployment_scale(release.relay, NAMESPACE, {"spec": {"replicas": 1}})
    try:
        [relay] = eventually(lambda: release.ready_pods(RELAY_SELECTOR), STARTUP, "a relay pod Ready")
        probe = f"""\
import json, socket
try:
    socket.create_connection(({relay.status.pod_ip!r}, 9000), timeout=3).close()
    print(json.dumps('connected'))
except OSError as e:
    print(json.dumps(type(e).__name__))
"""
        # The kubelet's readiness probe (from the node) passes; a viewer pod is refused.
        assert exec_python(release, viewer.metadata.name, probe) != "connected"
    finally:
        release.apps().patch_namespaced_deployment_scale(release.relay, NAMESPACE, {"spec": {"replicas": 0}})
        eventually(
            lambda: release.pods(RELAY_SELECTOR) == [] or None, REACTION, "the relay's pods gone again"
        )


# ---- 5. resume ----------------------------------------------------------------------
def test_resume_after_the_fix_brings_the_relay_back_and_resolves_incident_and_page(release: Release) -> None:
    assert release.status("cameraintegrations", release.integration)["phase"] == "Suspended"
    # The fix, deployed as a user would; then the documented resume.
    release.upgrade({"demo": {"relay": {"fault": "none"}}}, wait=False)
    release.resume(release.integration)

    ci = eventually(
        lambda: (
            (s := release.status("cameraintegrations", release.integration)).get("phase") == "Active" and s
        ),
        REACTION,
        "the integration Active again",
    )
    assert ci["killSwitch"]["state"] == "Resumed", ci["killSwitch"]
    eventually(lambda: release.ready_pods(RELAY_SELECTOR), STARTUP, "the relay pod Ready again")
    assert relay_replicas(release) == 1
    eventually(lambda: open_incidents(release) == [] or None, STARTUP, "every incident Resolved")
    eventually(
        lambda: (
            {e["dedup_key"] for e in release.pages() if e["event_action"] == "resolve"}
            >= {e["dedup_key"] for e in release.triggers()}
            or None
        ),
        REACTION,
        "a resolve for every page",
    )
    from kubernetes import client

    policies = client.NetworkingV1Api(release.node.api_client).list_namespaced_network_policy(NAMESPACE).items
    assert [p.metadata.name for p in policies] == []
    before = release.status("canaryprobes", release.probe)["verdictCounts"]["ok"]
    eventually(
        lambda: release.status("canaryprobes", release.probe)["verdictCounts"]["ok"] > before or None,
        STARTUP,
        "frames flowing again",
    )


# ---- 4. the operator deleted mid-incident -------------------------------------------
def test_an_operator_pod_deleted_as_the_leak_starts_is_replaced_and_the_new_leader_pages_once(
    release: Release,
) -> None:
    assert release.status("cameraintegrations", release.integration)["phase"] == "Active"
    pages_before = len(release.triggers())
    known = {i["metadata"]["name"] for i in release.incidents()}
    [operator] = release.ready_pods(OPERATOR_SELECTOR)
    # Killed without releasing its Lease, as the leak starts: the incident lands while
    # no leader acts, and the replacement must take the Lease over and answer it.
    release.core().delete_namespaced_pod(operator.metadata.name, NAMESPACE, grace_period_seconds=0)
    release.upgrade({"demo": {"relay": {"fault": "xiaomi-2019"}}}, wait=False)

    incident = eventually(
        lambda: next((i for i in release.incidents() if i["metadata"]["name"] not in known), None),
        STARTUP,
        "a new LeakIncident",
    )
    name = incident["metadata"]["name"]
    status = eventually(
        lambda: settled(release.status("leakincidents", name)), STARTUP, "the incident settled"
    )
    assert status["paged"]["result"] == "Accepted" and status["shutdown"].get("done") is True, status
    [successor] = eventually(lambda: release.ready_pods(OPERATOR_SELECTOR), STARTUP, "a new operator Ready")
    assert successor.metadata.name != operator.metadata.name
    from kubernetes import client

    lease = client.CoordinationV1Api(release.node.api_client).read_namespaced_lease(
        release.operator, NAMESPACE
    )
    assert successor.metadata.name in lease.spec.holder_identity
    eventually(lambda: release.pods(RELAY_SELECTOR) == [] or None, REACTION, "the relay's pods gone")
    assert release.status("cameraintegrations", release.integration)["phase"] == "Suspended"
    new_keys = {
        i["status"]["paged"]["dedupKey"]
        for i in release.incidents()
        if i["metadata"]["name"] not in known and (i.get("status") or {}).get("paged")
    }
    triggers = eventually(
        lambda: release.triggers()[pages_before:], REACTION, "the new leader's page at the receiver"
    )
    assert len(triggers) == len(new_keys) == 1, (triggers, new_keys)


# ---- 6. upgrade and uninstall -------------------------------------------------------
def test_upgrade_rolls_the_operator_and_uninstall_leaves_nothing_behind(release: Release) -> None:
    [before] = release.ready_pods(OPERATOR_SELECTOR)
    release.upgrade({"operator": {"logLevel": "DEBUG"}, "demo": {"relay": {"fault": "none"}}})
    [after] = eventually(
        lambda: [p for p in release.ready_pods(OPERATOR_SELECTOR) if p.metadata.name != before.metadata.name],
        STARTUP,
        "the upgraded operator Ready",
    )
    assert after.metadata.name != before.metadata.name

    # The README's uninstall: canarywatch resources first (the operator removes its
    # finalizers and the agents go with their probes), then the release.
    release.node.kubectl(
        "delete", "canaryprobes,cameraintegrations", "--all", "-n", NAMESPACE, "--timeout=5m"
    )
    release.uninstall()

    def leftovers() -> dict[str, list[str]]:
        found: dict[str, list[str]] = {}
        kinds = (
            "deployments,replicasets,pods,services,secrets,serviceaccounts,roles,rolebindings,"
            "networkpolicies,configmaps,leases"
        )
        out = release.node.kubectl("get", kinds, "-n", NAMESPACE, "-o", "json")
        for item in json.loads(out.stdout)["items"]:
            name = item["metadata"]["name"]
            if (item["kind"], name) in {("ServiceAccount", "default"), ("ConfigMap", "kube-root-ca.crt")}:
                continue
            found.setdefault(item["kind"], []).append(name)
        return found

    # Pods take their grace period to go; wait for that, then say what is left.
    left: dict[str, list[str]] = {}

    def settled_leftovers() -> bool:
        nonlocal left
        left = leftovers()
        return not left

    # The operator's Lease included: the chart owns it, so the uninstall removes it.
    if not poll(settled_leftovers, STARTUP):
        pytest.fail(f"left in {NAMESPACE} after helm uninstall: {left}")
