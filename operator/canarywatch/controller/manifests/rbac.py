"""The agents' ServiceAccounts, and the viewers' Role and RoleBinding."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from canarywatch.api import API_GROUP, LABEL_ROLE, PLURAL_INCIDENTS, AgentRole
from canarywatch.controller.manifests.names import object_labels, object_metadata, service_account_name, stamp
from canarywatch.controller.manifests.probe import builder, parse_probe

__all__ = ["build_agent_rbac"]


@builder
def build_agent_rbac(probe: Mapping[str, Any]) -> list[dict[str, Any]]:
    """ServiceAccounts of the agents, and the viewers' Role/RoleBinding.

    Viewers may ``create`` LeakIncidents in the probe's namespace and nothing else
    (not even read them back); cameras need no API access and get no token at all.
    """
    spec = parse_probe(probe)
    camera_sa = service_account_name(spec.name, AgentRole.CAMERA)
    viewer_sa = service_account_name(spec.name, AgentRole.VIEWER)
    viewer_labels = object_labels(spec, "viewer", **{LABEL_ROLE: "viewer"})
    objects: list[dict[str, Any]] = [
        {
            "apiVersion": "v1",
            "kind": "ServiceAccount",
            "metadata": object_metadata(
                spec, camera_sa, object_labels(spec, "camera", **{LABEL_ROLE: "camera"})
            ),
            "automountServiceAccountToken": False,
        },
        {
            "apiVersion": "v1",
            "kind": "ServiceAccount",
            "metadata": object_metadata(spec, viewer_sa, viewer_labels),
            "automountServiceAccountToken": False,  # mounted by the viewer pods only
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "Role",
            "metadata": object_metadata(spec, viewer_sa, viewer_labels),
            "rules": [{"apiGroups": [API_GROUP], "resources": [PLURAL_INCIDENTS], "verbs": ["create"]}],
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "RoleBinding",
            "metadata": object_metadata(spec, viewer_sa, viewer_labels),
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": viewer_sa},
            "subjects": [{"kind": "ServiceAccount", "name": viewer_sa, "namespace": spec.namespace}],
        },
    ]
    return [stamp(obj) for obj in objects]
