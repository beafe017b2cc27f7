"""The chart's admission policies (``charts/canarywatch/templates/admission-policies.yaml``)
in a test's API server: rendered by the real ``helm`` for a release watching the test's
namespace, so they bind there alone and never constrain another test's namespace."""

from __future__ import annotations

import subprocess
from typing import Any

import controlplane
import yaml
from kubernetes import client
from kubernetes.client.exceptions import ApiException
from manifests import REPO

__all__ = ["AdmissionPolicies"]

_KINDS = {  # kind -> the typed client's method suffix
    "ValidatingAdmissionPolicy": "validating_admission_policy",
    "ValidatingAdmissionPolicyBinding": "validating_admission_policy_binding",
}


class AdmissionPolicies:
    """``install(*sets)`` creates the policies (``--set`` assignments on top of the
    test's namespace as the watched one); ``remove()`` deletes what was created."""

    def __init__(self, api_client: Any, namespace: str) -> None:
        self.api = client.AdmissionregistrationV1Api(api_client)
        self.namespace = namespace
        self.created: list[tuple[str, str]] = []

    def install(self, *sets: str) -> None:
        args = [str(controlplane.find_binary("helm")), "template", "cw", str(REPO / "charts" / "canarywatch")]
        args += ["--namespace", self.namespace, "--show-only", "templates/admission-policies.yaml"]
        for assignment in (f"operator.watchNamespaces={{{self.namespace}}}", *sets):
            args += ["--set", assignment]
        rendered = subprocess.run(args, capture_output=True, text=True, timeout=60, check=True).stdout
        for obj in (d for d in yaml.safe_load_all(rendered) if d):
            suffix = _KINDS[obj["kind"]]
            getattr(self.api, f"create_{suffix}")(body=obj)
            self.created.append((suffix, obj["metadata"]["name"]))

    def remove(self) -> None:
        for suffix, name in self.created:
            try:
                getattr(self.api, f"delete_{suffix}")(name)
            except ApiException as error:
                if error.status != 404:
                    raise
        self.created = []
