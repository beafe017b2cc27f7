"""Install-wide options of every agent pod (from the operator's settings, set by the
chart): image pull Secrets, priority class, extra labels and annotations, and the
PodDisruptionBudget that keeps a node drain from taking a probe's agents down at once.

Why the pod spec and not the ServiceAccount: the viewers run under a ServiceAccount the
operator makes (and the cameras under the namespace's default one), so the usual "add
imagePullSecrets to the ServiceAccount" cannot be done by a user ahead of time; the
operator writes them into every pod spec instead.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from canarywatch.api import API_GROUP, LABEL_PROBE, label_value
from canarywatch.controller.manifests.names import dns_label, object_labels, object_metadata, stamp
from canarywatch.spec import ProbeSpec

__all__ = [
    "DEFAULT_OPTIONS",
    "DISRUPTION_BUDGET_ANNOTATION",
    "RESERVED_PREFIXES",
    "AgentPodOptions",
    "build_disruption_budget",
    "disruption_budget_names",
    "is_max_unavailable",
]

#: On each agent Deployment: the disruption budget the operator keeps for the probe's
#: agents (``maxUnavailable=1`` or ``off``). Part of the Deployment's config hash, so changing
#: the budget re-applies the Deployment and, with it, the PodDisruptionBudget.
DISRUPTION_BUDGET_ANNOTATION = f"{API_GROUP}/disruption-budget"
#: Label and annotation prefixes the operator owns; extra ones may not use them.
RESERVED_PREFIXES = (f"{API_GROUP}/", "app.kubernetes.io/")


def is_max_unavailable(value: str) -> bool:
    """A PodDisruptionBudget ``maxUnavailable``: a positive count or a percentage."""
    match = re.fullmatch(r"([0-9]+)(%?)", value)
    return match is not None and 0 < int(match[1]) <= (100 if match[2] else 1_000_000)


@dataclass(frozen=True, slots=True)
class AgentPodOptions:
    """What every camera and viewer pod gets besides what its probe asks for."""

    #: Names of Secrets in the probe's namespace for pulling the agent image.
    image_pull_secrets: tuple[str, ...] = ()
    priority_class_name: str = ""
    #: Extra pod labels; the operator's own (selectors, ``app.kubernetes.io/*``) win.
    labels: Mapping[str, str] = field(default_factory=dict)
    #: Extra pod annotations (e.g. a service mesh opt-out); the operator's own win.
    annotations: Mapping[str, str] = field(default_factory=dict)
    #: ``maxUnavailable`` of a PodDisruptionBudget per probe (over its camera and viewer
    #: pods), or None for no PodDisruptionBudgets.
    max_unavailable: str | None = "1"

    def __post_init__(self) -> None:
        if self.max_unavailable is not None and not is_max_unavailable(self.max_unavailable):
            raise ValueError(
                f"max_unavailable must be a count >= 1 or a percentage, got {self.max_unavailable!r}"
            )
        for kind, keys in (("label", self.labels), ("annotation", self.annotations)):
            reserved = sorted(k for k in keys if k.startswith(RESERVED_PREFIXES))
            if reserved:
                raise ValueError(
                    f"extra {kind}s may not use the operator's prefixes {RESERVED_PREFIXES}: {reserved}"
                )

    def apply(self, deployment: dict[str, Any]) -> dict[str, Any]:
        """``deployment`` (an agent's, before it is stamped) with the options added."""
        pod_template = deployment["spec"]["template"]
        metadata = pod_template["metadata"]
        metadata["labels"] = {**self.labels, **metadata["labels"]}
        metadata["annotations"] = {**self.annotations, **metadata.get("annotations", {})}
        pod = pod_template["spec"]
        if self.image_pull_secrets:
            pod["imagePullSecrets"] = [{"name": name} for name in self.image_pull_secrets]
        if self.priority_class_name:
            pod["priorityClassName"] = self.priority_class_name
        budget = f"maxUnavailable={self.max_unavailable}" if self.max_unavailable else "off"
        deployment["metadata"].setdefault("annotations", {})[DISRUPTION_BUDGET_ANNOTATION] = budget
        return deployment


#: Agent pods with nothing added, and PodDisruptionBudgets of maxUnavailable 1.
DEFAULT_OPTIONS = AgentPodOptions()


def disruption_budget_names(spec: ProbeSpec) -> tuple[str, ...]:
    """The PodDisruptionBudgets a probe may have: one over all its agents."""
    return (dns_label(spec.name, "agents"),)


def build_disruption_budget(spec: ProbeSpec, max_unavailable: str) -> dict[str, Any]:
    """One PodDisruptionBudget over all of a probe's agent pods (its camera pod and every
    viewer pod): a drain evicts at most ``max_unavailable`` of them at a time, so the
    probe keeps watching while nodes are rotated. Unhealthy pods may always be
    evicted: a crash-looping viewer must not block a drain."""
    value: int | str = int(max_unavailable) if max_unavailable.isdigit() else max_unavailable
    selector = {LABEL_PROBE: label_value(spec.name)}
    labels = object_labels(spec, "agents")
    return stamp(
        {
            "apiVersion": "policy/v1",
            "kind": "PodDisruptionBudget",
            "metadata": object_metadata(spec, disruption_budget_names(spec)[0], labels),
            "spec": {
                "maxUnavailable": value,
                "selector": {"matchLabels": selector},
                "unhealthyPodEvictionPolicy": "AlwaysAllow",
            },
        }
    )
