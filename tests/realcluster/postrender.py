"""Helm post-renderer of the realcluster tier: what the tests change in the chart's demo.

``helm install --post-renderer`` pipes the rendered manifests through this script
(stdin -> stdout), so ``helm upgrade`` keeps the changes instead of reverting them:

* the demo CameraIntegration's kill switch becomes ``scale`` of the relay's Deployment
  (to 0; resume restores it) followed by the chart's own ``networkPolicy`` action, so a
  leak is seen to end with the relay's pods terminating and its ingress cut by the CNI;
* the integration resolves its incidents after 30 s clean instead of 5 min, so resume
  is seen to resolve incidents and pages within a test;
* the demo PagerDuty receiver records every accepted event in ``/tmp/pages.jsonl``
  (an emptyDir), which the tests read with ``kubectl exec``: the count of triggers.
"""

from __future__ import annotations

import sys
from typing import Any

import yaml

RECORD_PATH = "/tmp/pages.jsonl"
RESOLVE_AFTER_CLEAN_SECONDS = 30


def demo_integration(doc: dict[str, Any]) -> None:
    spec = doc["spec"]
    relay = doc["metadata"]["name"]  # the demo names its integration after its relay
    by_type = {a["type"]: a for a in spec["killSwitch"]["actions"]}
    scale = {"name": "scale-relay", "type": "scale", "scale": {"kind": "Deployment", "name": relay}}
    spec["killSwitch"]["actions"] = [scale, by_type["networkPolicy"]]
    spec["resolveAfterCleanSeconds"] = RESOLVE_AFTER_CLEAN_SECONDS


def record_pages(doc: dict[str, Any]) -> None:
    container = doc["spec"]["template"]["spec"]["containers"][0]
    container["args"] = [*container["args"], f"--record={RECORD_PATH}"]


def main() -> int:
    docs = [d for d in yaml.safe_load_all(sys.stdin) if d]
    for doc in docs:
        kind, name = doc.get("kind"), doc.get("metadata", {}).get("name", "")
        if kind == "CameraIntegration":
            demo_integration(doc)
        elif kind == "Deployment" and name.endswith("-demo-pd-receiver"):
            record_pages(doc)
    yaml.safe_dump_all(docs, sys.stdout, sort_keys=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
