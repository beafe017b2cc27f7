#!/usr/bin/env python3
"""Leak -> page -> relay pods gone, measured on the realcluster node (``make bench-realcluster``).

Starts the single-node Kubernetes of ``tests/support/realnode.py`` (root), builds and
imports the image (``hack/build-image.sh``), installs the chart's demo with the
realcluster tier's post-renderer (kill switch: ``scale`` the relay to 0, then a
NetworkPolicy; the receiver records its pages) and one viewer per tenant on the ``poor``
profile, then repeats ``--leaks`` times:

  switch the relay's fault to xiaomi-2019 (its admin API), wait until the incident is
  paged and the relay's pods are gone, resume (the ``kill-switch.canarywatch.io/resume``
  annotation), wait until the relay serves again and the incident is resolved.

Every moment is a wall-clock time on this machine (pods share its clock):
  frame     the viewer pod received the leaked frame   (LeakIncident spec.times.frameReceived)
  incident  the LeakIncident was created               (this process' watch saw it ADDED)
  page      the PagerDuty receiver accepted the trigger (its record's received_at)
  kill      the relay's pod started terminating        (watch: deletionTimestamp set)
  gone      the relay's pod was deleted                 (watch: DELETED)
and the p50/p99 of each step is printed.  Target: p99 of frame -> kill <= 2 s.

Usage: .venv/bin/python hack/bench-realcluster.py [--leaks N]   (as root)
"""

from __future__ import annotations

import argparse
import base64
import json
import sys
import threading
import time
import urllib.request
from datetime import datetime
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests" / "support"))

from helm_release import Image, ImageBuildError, Release, build_image  # noqa: E402
from realnode import RealNode, missing_prerequisites  # noqa: E402

from canarywatch.bench.harness import percentile  # noqa: E402

NAMESPACE = "cw-bench"
IMAGE_REF = "localhost/canarywatch:bench"
RELAY_SELECTOR = "app.kubernetes.io/instance=canarywatch,app.kubernetes.io/component=demo-relay"
STEPS = (("frame", "incident"), ("incident", "page"), ("page", "kill"), ("frame", "kill"), ("frame", "gone"))


def log(message: str) -> None:
    print(f"[bench-realcluster] {message}", file=sys.stderr, flush=True)


def wait(check: Any, timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(0.2)


def parse_time(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


class Watcher:
    """Arrival times of the watch events this benchmark cares about."""

    def __init__(self, release: Release) -> None:
        self.release = release
        self.incident_added: dict[str, float] = {}
        self.pod_terminating: dict[str, float] = {}
        self.pod_deleted: dict[str, float] = {}
        for target in (self._incidents, self._relay_pods):
            threading.Thread(target=self._forever, args=(target,), daemon=True).start()

    @staticmethod
    def _forever(watch_once: Any) -> None:
        # A watch ends on its timeout, on a dropped connection and when the node stops.
        while True:
            try:
                watch_once()
            except Exception:  # re-watch; the main thread's waits time out if it never recovers
                time.sleep(1.0)

    def _incidents(self) -> None:
        from kubernetes import watch

        from canarywatch import api

        group, version = api.API_VERSION.split("/")
        stream = watch.Watch().stream(
            self.release.custom().list_namespaced_custom_object, group, version, NAMESPACE,
            "leakincidents", timeout_seconds=300,
        )  # fmt: skip
        for event in stream:
            now = time.time()
            name = event["object"]["metadata"]["name"]
            if event["type"] == "ADDED":
                self.incident_added.setdefault(name, now)

    def _relay_pods(self) -> None:
        from kubernetes import watch

        stream = watch.Watch().stream(
            self.release.core().list_namespaced_pod, NAMESPACE, label_selector=RELAY_SELECTOR,
            timeout_seconds=300,
        )  # fmt: skip
        for event in stream:
            now = time.time()
            pod = event["object"]
            if pod.metadata.deletion_timestamp is not None:
                self.pod_terminating.setdefault(pod.metadata.name, now)
            if event["type"] == "DELETED":
                self.pod_deleted.setdefault(pod.metadata.name, now)


def import_image(node: RealNode) -> Image:
    log("building the image (hack/build-image.sh)")
    try:
        node.import_image(build_image(IMAGE_REF))
    except ImageBuildError as e:
        raise SystemExit(str(e)) from e
    return Image.parse(IMAGE_REF)


def set_fault(release: Release, fault: str) -> None:
    secret = release.core().read_namespaced_secret(f"{release.relay}-admin", NAMESPACE)
    token = base64.b64decode(secret.data["admin-token"]).decode()
    ip = release.core().read_namespaced_service(release.relay, NAMESPACE).spec.cluster_ip
    request = urllib.request.Request(
        f"http://{ip}:9000/v3/admin/fault", data=json.dumps({"fault": fault}).encode(), method="PUT",
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )  # fmt: skip

    def put() -> None:
        with urllib.request.urlopen(request, timeout=10) as response:
            response.read()

    release.node.in_netns(put)


def status(release: Release, plural: str, name: str) -> dict[str, Any]:
    return release.status(plural, name)


def one_leak(release: Release, watcher: Watcher, known: set[str]) -> dict[str, float]:
    [relay_pod] = wait(lambda: release.ready_pods(RELAY_SELECTOR), 300, "a Ready relay pod")
    set_fault(release, "xiaomi-2019")
    incident = wait(
        lambda: next((i for i in release.incidents() if i["metadata"]["name"] not in known), None),
        300,
        "a new LeakIncident",
    )
    name = incident["metadata"]["name"]
    known.add(name)
    paged = wait(
        lambda: (status(release, "leakincidents", name).get("paged") or {}).get("dedupKey"), 120, "the page"
    )
    gone = wait(lambda: watcher.pod_deleted.get(relay_pod.metadata.name), 120, "the relay pod deleted")
    page = wait(
        lambda: next(
            (
                p
                for p in release.pages_recorded()
                if p["event"]["dedup_key"] == paged and p["event"]["event_action"] == "trigger"
            ),
            None,
        ),
        60,
        "the receiver's record of the trigger",
    )
    moments = {
        "frame": parse_time(incident["spec"]["times"]["frameReceived"]),
        "incident": watcher.incident_added[name],
        "page": parse_time(page["received_at"]),
        "kill": watcher.pod_terminating[relay_pod.metadata.name],
        "gone": gone,
    }
    # Resume: the relay comes back without the fault (a new pod starts from its args).
    release.resume(release.integration)
    wait(
        lambda: status(release, "cameraintegrations", release.integration).get("phase") == "Active",
        300,
        "Active",
    )
    wait(lambda: release.ready_pods(RELAY_SELECTOR), 300, "the relay back")
    wait(
        lambda: status(release, "leakincidents", name).get("state") == "Resolved",
        300,
        "the incident resolved",
    )
    return moments


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--leaks", type=int, default=10)
    args = parser.parse_args()
    missing = missing_prerequisites()
    if missing:
        print("bench-realcluster needs: " + "; ".join(missing), file=sys.stderr)
        return 2
    node = RealNode()
    node.start()
    try:
        log(f"node up in {node.timings['total']:.1f}s")
        values: dict[str, Any] = {
            "operator": {"statusIntervalSeconds": 5, "resolveCheckSeconds": 2, "killCap": {"maxKills": 1000}},
            "demo": {
                "enabled": True,
                "tenants": ["acme-7", "bravo-2"],
                "relay": {"fault": "none"},
                "probe": {"networkProfiles": ["poor"], "transports": ["snapshot"], "fps": 2},
            },
        }
        release = Release(node, NAMESPACE, import_image(node), values=values)
        log("helm install")
        release.install()
        wait(
            lambda: any(c["type"] == "Ready" and c["status"] == "True"
                        for c in status(release, "canaryprobes", release.probe).get("conditions") or []),
            600, "the CanaryProbe Ready",
        )  # fmt: skip
        watcher = Watcher(release)
        known: set[str] = set()
        runs: list[dict[str, float]] = []
        for i in range(args.leaks):
            moments = one_leak(release, watcher, known)
            runs.append(moments)
            log(f"leak {i + 1}/{args.leaks}: frame -> kill {moments['kill'] - moments['frame']:.3f}s")
        print(f"realcluster: {len(runs)} leaks (xiaomi-2019, poor-profile viewers), seconds")
        print(f"{'step':<20} {'p50':>7} {'p99':>7} {'max':>7}")
        for start, end in STEPS:
            d = [r[end] - r[start] for r in runs]
            print(
                f"{start + ' -> ' + end:<20} {percentile(d, 50):7.3f} {percentile(d, 99):7.3f} {max(d):7.3f}"
            )
        return 0
    finally:
        node.stop()


if __name__ == "__main__":
    sys.exit(main())
