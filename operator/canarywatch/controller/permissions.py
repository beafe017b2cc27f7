"""The operator's RBAC: exactly the API calls it makes, as Role/ClusterRole rules.

Three groups, so an install can grant each where it is needed:

- ``NAMESPACE_RULES`` in every namespace the operator watches (a Role per namespace, or
  a ClusterRole bound cluster-wide when it watches all of them): the canarywatch
  resources (watched and patched by kopf, status written by the handlers) and what a
  CanaryProbe runs on (keyring Secrets, RBAC of the agents, Deployments, Services).
- ``KILL_SWITCH_RULES`` in every namespace a kill-switch action targets (by default the
  integration's own): scale, NetworkPolicy, and merge-patch of ConfigMaps. A ``patch``
  action on another kind needs ``get`` and ``patch`` on it added here.
- ``LEADER_ELECTION_RULES`` in the operator's own namespace: its Lease.
- ``UNWATCHED_RULES`` cluster-wide for a namespaced operator that reports the
  CameraIntegrations and CanaryProbes it ignores (``controller/unwatched.py``).

Discovery (``/api``, ``/apis/...``) is allowed to every authenticated client by the
default ``system:discovery`` ClusterRole, and nothing cluster-scoped is called.

The cluster tier runs the operator with a ServiceAccount bound to these rules only,
and compares them with the calls the API server's audit log saw; ``GRANTED_NOT_CALLED``
lists the exceptions, each with the reason it cannot show up in a test.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from canarywatch.api import API_GROUP

__all__ = [
    "GRANTED_NOT_CALLED",
    "KILL_SWITCH_RULES",
    "LEADER_ELECTION_RULES",
    "NAMESPACE_RULES",
    "UNWATCHED_RULES",
    "Rule",
    "expand",
    "role_rules",
]

Rule = Mapping[str, Sequence[str]]

_GROUP = API_GROUP

NAMESPACE_RULES: tuple[Rule, ...] = (
    # kopf: list+watch, an integration's annotations (progress, last-handled
    # configuration) and finalizer; a probe's only to remove the finalizer an older
    # version put on it (its kopf state is in its status); handlers: get the integration
    # fresh under its lock, list incidents; get the probe an incident names
    # (controller.trust); delete finished incidents beyond the history limit.
    {"apiGroups": [_GROUP], "resources": ["cameraintegrations"], "verbs": ["get", "list", "watch", "patch"]},
    {"apiGroups": [_GROUP], "resources": ["canaryprobes"], "verbs": ["get", "list", "watch", "patch"]},
    # create: not called; RBAC lets the operator grant it to the viewers' Role only if
    # it holds it itself (the escalation check).
    {
        "apiGroups": [_GROUP],
        "resources": ["leakincidents"],
        "verbs": ["list", "watch", "patch", "create", "delete"],
    },
    {
        "apiGroups": [_GROUP],
        "resources": ["cameraintegrations/status", "canaryprobes/status", "leakincidents/status"],
        "verbs": ["patch"],
    },
    # A probe's keyring Secret: created once, an item added or removed with a tenant
    # (merge patch; an existing key is never rewritten); get: PagerDuty routing keys,
    # webhook credentials, and the keyring when a tenant is added.
    {"apiGroups": [""], "resources": ["secrets"], "verbs": ["get", "create", "patch"]},
    # Server-side apply of the agents' objects (the namespace's viewer account, a
    # probe's camera Service): a PATCH, which RBAC also checks as a create when the
    # object does not exist yet. A new probe's Service, Deployments and budget are
    # created (POST), and read before their first apply to hand what the create set
    # over to it (``controller.ownership``).
    {"apiGroups": [""], "resources": ["serviceaccounts"], "verbs": ["create", "patch"]},
    {"apiGroups": [""], "resources": ["services"], "verbs": ["get", "create", "patch"]},
    {
        "apiGroups": ["rbac.authorization.k8s.io"],
        "resources": ["roles", "rolebindings"],
        "verbs": ["create", "patch"],
    },
    # The probes' Deployments: indexed (list+watch), created, applied, deleted when stale.
    {
        "apiGroups": ["apps"],
        "resources": ["deployments"],
        "verbs": ["get", "list", "watch", "create", "patch", "delete"],
    },
    # The agents' PodDisruptionBudgets: created, applied; deleted when they are turned off.
    {
        "apiGroups": ["policy"],
        "resources": ["poddisruptionbudgets"],
        "verbs": ["get", "create", "patch", "delete"],
    },
    # Ready viewer pods, whose /metrics feed the probe's verdict counts.
    {"apiGroups": [""], "resources": ["pods"], "verbs": ["list"]},
    {"apiGroups": [""], "resources": ["events"], "verbs": ["create"]},
)

KILL_SWITCH_RULES: tuple[Rule, ...] = (
    {
        "apiGroups": ["apps"],
        "resources": ["deployments/scale", "statefulsets/scale"],
        "verbs": ["get", "patch"],
    },
    {
        "apiGroups": ["networking.k8s.io"],
        "resources": ["networkpolicies"],
        "verbs": ["get", "create", "delete"],
    },
    {"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get", "patch"]},
)

#: Cluster-wide, with CANARYWATCH_REPORT_UNWATCHED: find the objects it does not watch.
UNWATCHED_RULES: tuple[Rule, ...] = (
    {"apiGroups": [_GROUP], "resources": ["cameraintegrations", "canaryprobes"], "verbs": ["list"]},
)

LEADER_ELECTION_RULES: tuple[Rule, ...] = (
    {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "verbs": ["get", "create", "update"]},
)

#: (group, resource, verb) granted but never called, and why no test can see it.
GRANTED_NOT_CALLED: Mapping[tuple[str, str, str], str] = {
    (
        _GROUP,
        "leakincidents",
        "create",
    ): "held so the operator may grant it to the viewers' Role (RBAC escalation check)",
    (
        "policy",
        "poddisruptionbudgets",
        "delete",
    ): "only when the agents' PodDisruptionBudgets are turned off (CANARYWATCH_AGENT_MAX_UNAVAILABLE=off)",
    (
        "apps",
        "deployments",
        "get",
    ): "only when a probe's creation finds its Deployment there already (the operator restarted mid-way)"
    " or the index is behind the Deployment's managed fields (controller.ownership)",
}


def role_rules(*, kill_switch: bool = True, leader_election: bool = False) -> list[dict[str, list[str]]]:
    """Rules of one Role, as plain dicts (``rules:`` of a Role or ClusterRole manifest)."""
    groups: list[Rule] = list(NAMESPACE_RULES)
    if kill_switch:
        groups.extend(KILL_SWITCH_RULES)
    if leader_election:
        groups.extend(LEADER_ELECTION_RULES)
    return [{key: list(values) for key, values in rule.items()} for rule in groups]


def expand(rules: Iterable[Rule]) -> set[tuple[str, str, str]]:
    """Every (apiGroup, resource, verb) the rules allow (``deployments/scale`` stays whole)."""
    return {
        (group, resource, verb)
        for rule in rules
        for group in rule["apiGroups"]
        for resource in rule["resources"]
        for verb in rule["verbs"]
    }
