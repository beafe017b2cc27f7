"""The viewers' ServiceAccount, Role and RoleBinding: one set per namespace, shared by
every probe there."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from canarywatch.api import API_GROUP, API_VERSION, KIND_PROBE, LABEL_ROLE, PLURAL_INCIDENTS, AgentRole
from canarywatch.controller.manifests.names import VIEWER_ACCOUNT, stamp

__all__ = ["build_viewer_rbac"]


def build_viewer_rbac(namespace: str, owners: Iterable[tuple[str, str]] = ()) -> list[dict[str, Any]]:
    """The ServiceAccount ``canarywatch-viewer`` of ``namespace``, its Role and
    RoleBinding, in creation order; owned by ``owners`` (the namespace's CanaryProbes,
    as (name, uid)): the garbage collector removes them with the last of them.

    Viewers may ``create`` LeakIncidents in their namespace and nothing else (not even
    read them back). The account is the namespace's, not a probe's: which probe an
    incident may name is not an RBAC question (RBAC cannot look into the object); the
    chart's ValidatingAdmissionPolicy admits this account only in its own namespace,
    and the operator acts only on an incident whose signed evidence verifies under the
    keyring of the probe it names (``controller.trust``). Every probe is an owner, none
    the controller: deleting one leaves them to the others, deleting the last takes them
    (an uninstall leaves nothing behind). Cameras run under the namespace's default
    account with no token mounted: they need no API access at all.
    """
    labels = {
        "app.kubernetes.io/name": "canarywatch",
        "app.kubernetes.io/component": "viewer",
        "app.kubernetes.io/part-of": "canarywatch",
        "app.kubernetes.io/managed-by": "canarywatch-operator",
        LABEL_ROLE: str(AgentRole.VIEWER),
    }
    references = [
        {"apiVersion": API_VERSION, "kind": KIND_PROBE, "name": name, "uid": uid}
        for name, uid in sorted(set(owners), key=lambda owner: owner[1])
    ]
    metadata: dict[str, Any] = {"name": VIEWER_ACCOUNT, "namespace": namespace, "labels": labels}
    if references:
        metadata["ownerReferences"] = references
    objects: list[dict[str, Any]] = [
        {
            "apiVersion": "v1",
            "kind": "ServiceAccount",
            "metadata": dict(metadata),
            "automountServiceAccountToken": False,  # mounted by the viewer pods only
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "Role",
            "metadata": dict(metadata),
            "rules": [{"apiGroups": [API_GROUP], "resources": [PLURAL_INCIDENTS], "verbs": ["create"]}],
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "RoleBinding",
            "metadata": dict(metadata),
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": VIEWER_ACCOUNT},
            "subjects": [{"kind": "ServiceAccount", "name": VIEWER_ACCOUNT, "namespace": namespace}],
        },
    ]
    return [stamp(obj) for obj in objects]
