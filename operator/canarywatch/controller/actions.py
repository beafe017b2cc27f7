"""Kill-switch actions in a cluster: the Kubernetes implementations that
``shutdown.KillSwitch`` (the one engine) runs for the operator.

The four action types of ``CameraIntegration.spec.killSwitch.actions`` implement the
``shutdown.Action`` protocol (``engage``/``resume`` with an ``ActionContext``, an
``ActionOutcome`` back, nothing raised for an expected failure)::

    scale          a Deployment/StatefulSet to 0 replicas; resume restores the count
    networkPolicy  a deny-all NetworkPolicy for the selected pods; resume deletes exactly it
    patch          a JSON merge patch of any namespaced object; resume restores the values
                   of exactly the keys it changed (those nobody changed since)
    webhook        shutdown.WebhookAction, its credentials read from Secrets

What an action replaces is read *before* it acts (``snapshot``) and recorded in
``status.killSwitch.actions[].previous`` before the change is made. A restarted
operator therefore never mistakes its own change for the original (a Deployment it
already scaled to 0 still resumes to 3), and resume works from that record alone for
the Kubernetes actions, even when the action was since removed from the spec.

The engine runs them (order, idempotency, crash recovery, resume) and keeps its record
in ``status.killSwitch`` through ``controller.suspension``'s store; ``resume_action``
is its resumer.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from canarywatch.api import (
    API_VERSION,
    KILL_SWITCH_OWNER_ANNOTATION,
    LABEL_INTEGRATION,
    LABEL_KILL_SWITCH_ACTION,
    MANUAL_INCIDENT,
    RESUME_ANNOTATION,
    label_value,
)
from canarywatch.controller.kube import (
    DEPLOYMENTS,
    NETWORK_POLICIES,
    STATEFUL_SETS,
    Kube,
    KubeError,
    NotFound,
    Resource,
)
from canarywatch.controller.mergepatch import ABSENT, assign, leaves, lookup, paths
from canarywatch.errors import FieldError
from canarywatch.shutdown import (
    Action,
    ActionConfigError,
    ActionContext,
    ActionOutcome,
    ActionRecord,
    WebhookAction,
    WebhookRequest,
)

__all__ = [
    "LABEL_KILL_SWITCH_ACTION",
    "ActionSpecError",
    "KubeAction",
    "NetworkPolicyAction",
    "PatchAction",
    "ScaleAction",
    "WebhookKillAction",
    "build_actions",
    "resume_action",
    "resume_hint",
]

log = logging.getLogger(__name__)

_OWNER_ANNOTATION = KILL_SWITCH_OWNER_ANNOTATION
_WORKLOADS: Mapping[str, Resource] = {"Deployment": DEPLOYMENTS, "StatefulSet": STATEFUL_SETS}


class ActionSpecError(FieldError):
    """A kill-switch action cannot be built; ``field`` is its path in the spec."""


class KubeAction(Action, Protocol):
    """A kill-switch action whose engage step can be recorded before it acts."""

    @property
    def target(self) -> str:
        """What it acts on, without secrets (``Deployment shop/relay-ingest``)."""
        ...

    async def snapshot(self) -> dict[str, Any]:
        """What ``engage`` will replace (and ``resume`` needs), read before acting."""
        ...


# ---------------------------------------------------------------------------------------
# The actions
# ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ScaleAction:
    """Scale a Deployment or StatefulSet to 0; resume restores the recorded replicas."""

    name: str
    kube: Kube = field(repr=False)
    workload_kind: str
    namespace: str
    workload: str
    previous: Mapping[str, Any] | None = None

    kind = "scale"
    reversible = True

    @property
    def target(self) -> str:
        return f"{self.workload_kind} {self.namespace}/{self.workload}"

    @property
    def _resource(self) -> Resource:
        return _WORKLOADS[self.workload_kind]

    def describe(self) -> dict[str, Any]:
        return {"kind": self.kind, "name": self.name, "target": self.target}

    async def snapshot(self) -> dict[str, Any]:
        replicas = await self.kube.replicas(self._resource, self.namespace, self.workload)
        found = {"kind": self.workload_kind, "namespace": self.namespace, "name": self.workload}
        return found if replicas is None else {**found, "replicas": replicas}

    async def engage(self, context: ActionContext) -> ActionOutcome:
        # One request: the count it replaces was read by snapshot() (and recorded).
        try:
            await self.kube.scale(self._resource, self.namespace, self.workload, 0)
        except NotFound:
            return ActionOutcome(False, f"{self.target} not found")
        except KubeError as error:
            return ActionOutcome(False, str(error))
        return ActionOutcome(True, f"scaled {self.target} to 0 replicas")

    async def resume(self, context: ActionContext) -> ActionOutcome:
        wanted = (self.previous or {}).get("replicas")
        if not isinstance(wanted, int):
            return ActionOutcome(False, f"no replica count was recorded for {self.target}; scale it by hand")
        try:
            replicas = await self.kube.replicas(self._resource, self.namespace, self.workload)
            if replicas is None:
                return ActionOutcome(False, f"{self.target} not found")
            if replicas != 0:
                # Someone scaled it since the kill: theirs is the newer decision.
                return ActionOutcome(
                    True, f"{self.target} left at {replicas} replicas (changed since the kill)"
                )
            await self.kube.scale(self._resource, self.namespace, self.workload, wanted)
        except KubeError as error:
            return ActionOutcome(False, str(error))
        return ActionOutcome(True, f"restored {self.target} to {wanted} replicas")


@dataclass(frozen=True)
class NetworkPolicyAction:
    """Create a NetworkPolicy that denies all traffic to/from the selected pods; resume
    deletes that very object (found by name, checked by its kill-switch labels)."""

    name: str
    kube: Kube = field(repr=False)
    integration: Mapping[str, Any] = field(repr=False)  # the CameraIntegration's metadata
    namespace: str
    pod_selector: Mapping[str, Any]
    direction: str = "Both"
    previous: Mapping[str, Any] | None = None

    kind = "networkPolicy"
    reversible = True

    @property
    def policy_name(self) -> str:
        recorded = (self.previous or {}).get("name")
        if isinstance(recorded, str) and recorded:
            return recorded
        return _dns_name("canarywatch-kill", str(self.integration.get("name")), self.name)

    @property
    def target(self) -> str:
        return f"NetworkPolicy {self.namespace}/{self.policy_name}"

    def describe(self) -> dict[str, Any]:
        return {"kind": self.kind, "name": self.name, "target": self.target, "direction": self.direction}

    async def snapshot(self) -> dict[str, Any]:
        return {"namespace": self.namespace, "name": self.policy_name}

    def manifest(self) -> dict[str, Any]:
        types = ["Ingress", "Egress"] if self.direction == "Both" else [self.direction]
        meta: dict[str, Any] = {
            "name": self.policy_name,
            "namespace": self.namespace,
            "labels": self._labels(),
            "annotations": {_OWNER_ANNOTATION: self._owner()},
        }
        if self.namespace == self.integration.get("namespace") and self.integration.get("uid"):
            # Same namespace: deleting the integration takes its switch-off with it.
            meta["ownerReferences"] = [
                {
                    "apiVersion": API_VERSION,
                    "kind": "CameraIntegration",
                    "name": self.integration["name"],
                    "uid": self.integration["uid"],
                }
            ]
        # No ingress/egress rules with these policyTypes: nothing is allowed.
        return {
            "apiVersion": NETWORK_POLICIES.api_version,
            "kind": NETWORK_POLICIES.kind,
            "metadata": meta,
            "spec": {"podSelector": dict(self.pod_selector), "policyTypes": types},
        }

    async def engage(self, context: ActionContext) -> ActionOutcome:
        try:
            if await self.kube.create_if_absent(self.manifest()):
                return ActionOutcome(True, f"created {self.target} ({self.direction.lower()} traffic denied)")
            existing = await self.kube.get(NETWORK_POLICIES, self.namespace, self.policy_name)
        except KubeError as error:
            return ActionOutcome(False, str(error))
        if existing is not None and self._ours(existing):
            return ActionOutcome(True, f"{self.target} already in place")
        return ActionOutcome(False, f"{self.target} exists and was not made by this kill switch; left alone")

    async def resume(self, context: ActionContext) -> ActionOutcome:
        try:
            existing = await self.kube.get(NETWORK_POLICIES, self.namespace, self.policy_name)
            if existing is None:
                return ActionOutcome(True, f"{self.target} already gone")
            if not self._ours(existing):
                return ActionOutcome(False, f"{self.target} was not made by this kill switch; left alone")
            await self.kube.delete(
                NETWORK_POLICIES, self.namespace, self.policy_name, uid=existing["metadata"]["uid"]
            )
        except KubeError as error:
            return ActionOutcome(False, str(error))
        return ActionOutcome(True, f"deleted {self.target}")

    def _labels(self) -> dict[str, str]:
        return {
            "app.kubernetes.io/managed-by": "canarywatch-operator",
            LABEL_INTEGRATION: label_value(str(self.integration.get("name"))),
            LABEL_KILL_SWITCH_ACTION: label_value(self.name),
        }

    def _owner(self) -> str:
        return f"{self.integration.get('namespace')}/{self.integration.get('name')}/{self.name}"

    def _ours(self, obj: Mapping[str, Any]) -> bool:
        meta = obj.get("metadata") or {}
        return (meta.get("annotations") or {}).get(_OWNER_ANNOTATION) == self._owner()


@dataclass(frozen=True)
class PatchAction:
    """JSON merge-patch a namespaced object; resume restores the replaced values.

    ``previous`` lists every leaf key the patch sets, with the value it had (or that it
    was absent) and the value the patch gave it. Resume puts back the old value of each
    key that still holds the patched value, and leaves keys changed since then alone.
    """

    name: str
    kube: Kube = field(repr=False)
    api_version: str
    object_kind: str
    namespace: str
    object_name: str
    merge_patch: Mapping[str, Any] = field(default_factory=dict)
    previous: Mapping[str, Any] | None = None

    kind = "patch"
    reversible = True

    @property
    def target(self) -> str:
        return f"{self.object_kind} {self.namespace}/{self.object_name}"

    def describe(self) -> dict[str, Any]:
        return {"kind": self.kind, "name": self.name, "target": self.target, "keys": paths(self.merge_patch)}

    async def snapshot(self) -> dict[str, Any]:
        found = {
            "apiVersion": self.api_version,
            "kind": self.object_kind,
            "namespace": self.namespace,
            "name": self.object_name,
        }
        resource = await self.kube.resource(self.api_version, self.object_kind)
        current = await self.kube.get(resource, self.namespace, self.object_name)
        if current is None:
            return found
        keys = []
        for path, was, now in leaves(self.merge_patch, current):
            entry: dict[str, Any] = {"path": list(path)}
            entry |= {"wasAbsent": True} if was is ABSENT else {"was": was}
            entry |= {"setAbsent": True} if now is ABSENT else {"set": now}
            keys.append(entry)
        return {**found, "keys": keys}

    async def engage(self, context: ActionContext) -> ActionOutcome:
        try:
            resource = await self.kube.resource(self.api_version, self.object_kind)
            if await self.kube.get(resource, self.namespace, self.object_name) is None:
                return ActionOutcome(False, f"{self.target} not found")
            await self.kube.merge_patch(resource, self.namespace, self.object_name, self.merge_patch)
        except KubeError as error:
            return ActionOutcome(False, str(error))
        return ActionOutcome(True, f"patched {', '.join(paths(self.merge_patch))} of {self.target}")

    async def resume(self, context: ActionContext) -> ActionOutcome:
        keys = (self.previous or {}).get("keys")
        if not isinstance(keys, list):
            return ActionOutcome(
                False, f"no previous values were recorded for {self.target}; restore by hand"
            )
        try:
            resource = await self.kube.resource(self.api_version, self.object_kind)
            current = await self.kube.get(resource, self.namespace, self.object_name)
            if current is None:
                return ActionOutcome(False, f"{self.target} not found")
            restore: dict[str, Any] = {}
            kept: list[str] = []
            for entry in keys:
                path = [str(p) for p in entry.get("path", [])]
                applied = ABSENT if entry.get("setAbsent") else entry.get("set")
                if lookup(current, path) != applied:
                    kept.append(".".join(path))  # changed since the kill: not ours to undo
                    continue
                assign(restore, path, None if entry.get("wasAbsent") else entry.get("was"))
            if restore:
                await self.kube.merge_patch(resource, self.namespace, self.object_name, restore)
        except KubeError as error:
            return ActionOutcome(False, str(error))
        detail = f"restored {', '.join(paths(restore)) or 'nothing'} of {self.target}"
        if kept:
            detail += f"; left {', '.join(kept)} (changed since the kill)"
        return ActionOutcome(True, detail)


@dataclass(frozen=True)
class WebhookKillAction:
    """``shutdown.WebhookAction`` as a recorded kill-switch action."""

    webhook: WebhookAction
    host: str  # scheme://host, for status; the URL itself may be a credential

    kind = "webhook"

    @property
    def name(self) -> str:
        return self.webhook.name

    @property
    def reversible(self) -> bool:
        return self.webhook.reversible

    @property
    def target(self) -> str:
        return f"{self.webhook.request.method} {self.host}"

    def describe(self) -> dict[str, Any]:
        return self.webhook.describe()

    async def snapshot(self) -> dict[str, Any]:
        return {}

    async def engage(self, context: ActionContext) -> ActionOutcome:
        return await self.webhook.engage(context)

    async def resume(self, context: ActionContext) -> ActionOutcome:
        return await self.webhook.resume(context)


# ---------------------------------------------------------------------------------------
# Building actions from the spec
# ---------------------------------------------------------------------------------------


async def build_actions(
    integration: Mapping[str, Any], kube: Kube, *, may_act_in: Callable[[str], bool] | None = None
) -> list[KubeAction]:
    """The integration's ``spec.killSwitch.actions``, ready to run.

    Reads the Secrets webhooks refer to. Raises ``ActionSpecError`` naming the field for
    anything that cannot run (a missing Secret, a webhook URL that is not absolute) or
    must not: a target namespace other than the integration's own that ``may_act_in``
    refuses (None: the integration's own namespace only). The operator acts with its
    own, wide permissions: whoever may create a CameraIntegration must not borrow them
    to switch off another team's workloads (a confused deputy).
    """
    meta = integration.get("metadata") or {}
    namespace = str(meta.get("namespace"))
    entries = ((integration.get("spec") or {}).get("killSwitch") or {}).get("actions") or []
    actions: list[KubeAction] = []
    for index, entry in enumerate(entries):
        where = f"spec.killSwitch.actions[{index}]"
        name, kind = str(entry.get("name", "")), str(entry.get("type", ""))
        settings = entry.get(kind)
        if not name or not isinstance(settings, Mapping):
            raise ActionSpecError(where, f"needs a name and its {kind or 'type'} settings")
        where = f"{where}.{kind}"
        target_namespace = str(settings.get("namespace") or namespace)
        if target_namespace != namespace and not (may_act_in is not None and may_act_in(target_namespace)):
            raise ActionSpecError(
                f"{where}.namespace",
                f"{target_namespace!r} is not this integration's namespace ({namespace}) and the "
                "install does not allow kill-switch actions there (Helm value "
                "rbac.killSwitchNamespaces, CANARYWATCH_KILL_SWITCH_NAMESPACES)",
            )
        if kind == "scale":
            workload_kind = str(settings.get("kind", "Deployment"))
            if workload_kind not in _WORKLOADS:
                raise ActionSpecError(f"{where}.kind", f"expected one of {', '.join(_WORKLOADS)}")
            actions.append(ScaleAction(name, kube, workload_kind, target_namespace, str(settings["name"])))
        elif kind == "networkPolicy":
            actions.append(
                NetworkPolicyAction(
                    name,
                    kube,
                    meta,
                    target_namespace,
                    dict(settings.get("podSelector") or {}),
                    str(settings.get("direction", "Both")),
                )
            )
        elif kind == "patch":
            actions.append(
                PatchAction(
                    name,
                    kube,
                    str(settings["apiVersion"]),
                    str(settings["kind"]),
                    target_namespace,
                    str(settings["name"]),
                    dict(settings.get("mergePatch") or {}),
                )
            )
        elif kind == "webhook":
            actions.append(await _webhook(name, settings, where, namespace, kube))
        else:
            raise ActionSpecError(f"spec.killSwitch.actions[{index}].type", f"unknown action type {kind!r}")
    return actions


async def _webhook(
    name: str, settings: Mapping[str, Any], where: str, namespace: str, kube: Kube
) -> WebhookKillAction:
    async def secret(ref: object, at: str) -> str:
        if not isinstance(ref, Mapping):
            raise ActionSpecError(at, "expected {name, key}")
        try:
            return await kube.secret_value(namespace, str(ref.get("name")), str(ref.get("key")))
        except KubeError as error:
            raise ActionSpecError(at, error.message) from error

    headers = {str(k): str(v) for k, v in (settings.get("headers") or {}).items()}
    for index, item in enumerate(settings.get("headersFrom") or []):
        headers[str(item["header"])] = await secret(item.get("secretKeyRef"), f"{where}.headersFrom[{index}]")

    async def request(spec: Mapping[str, Any], at: str) -> WebhookRequest:
        url = spec.get("url")
        if url is None:
            url = await secret(spec.get("urlSecretRef"), f"{at}.urlSecretRef")
        try:
            return WebhookRequest(
                url=str(url),
                method=str(spec.get("method", "POST")),
                # The resume call goes to the same service: same credentials.
                headers=headers,
                body=None if spec.get("body") is None else str(spec["body"]),
                content_type=str(spec.get("contentType", "application/json")),
            )
        except ActionConfigError as error:
            raise ActionSpecError(f"{at}.{error.field}", error.message) from error

    engage = await request(settings, where)
    resume = None
    if isinstance(settings.get("resume"), Mapping):
        resume = await request(settings["resume"], f"{where}.resume")
    signing = None
    if settings.get("signingSecretRef") is not None:
        signing = await secret(settings["signingSecretRef"], f"{where}.signingSecretRef")
    try:
        webhook = WebhookAction(
            name=name,
            request=engage,
            resume_request=resume,
            secret=signing,
            timeout=float(settings.get("timeout", 10)),
            max_attempts=int(settings.get("maxAttempts", 4)),
        )
    except ActionConfigError as error:
        raise ActionSpecError(f"{where}.{error.field}", error.message) from error
    return WebhookKillAction(webhook, str(engage.describe()["target"]))


def resume_action(
    record: ActionRecord, configured: Action | None, kube: Kube, integration: Mapping[str, Any]
) -> Action | None:
    """The action that undoes ``record``: the Kubernetes ones rebuilt from what was
    recorded (so a changed or removed spec entry still resumes), a webhook from the
    current spec (its Secrets are not recorded). None: nobody knows how to undo it.
    ``integration`` is the CameraIntegration (its metadata names the NetworkPolicy owner)."""
    previous = record.previous or {}
    if record.kind == "scale" and previous.get("kind") in _WORKLOADS:
        return ScaleAction(
            record.name,
            kube,
            str(previous["kind"]),
            str(previous.get("namespace")),
            str(previous.get("name")),
            previous=previous,
        )
    if record.kind == "networkPolicy" and previous.get("name"):
        return NetworkPolicyAction(
            record.name,
            kube,
            integration.get("metadata") or {},
            str(previous.get("namespace")),
            {},
            previous=previous,
        )
    if record.kind == "patch" and previous.get("kind"):
        return PatchAction(
            record.name,
            kube,
            str(previous.get("apiVersion")),
            str(previous["kind"]),
            str(previous.get("namespace")),
            str(previous.get("name")),
            previous=previous,
        )
    return configured


def resume_hint(integration: Mapping[str, Any], action_names: Iterable[str], incident: str) -> str:
    """How to resume, and what a human must undo (for ``status.killSwitch.resumeHint``).

    A switch-off by hand (``spec.suspended: true``) is undone by setting it back to
    false; one for a leak only by the resume annotation naming that incident, so no sync
    of ``spec`` from Git can switch a live leak back on."""
    meta = integration.get("metadata") or {}
    where = f"kubectl -n {meta.get('namespace')}"
    if incident == MANUAL_INCIDENT:
        command = (
            f"{where} patch cameraintegration {meta.get('name')} "
            """--type merge -p '{"spec":{"suspended":false}}'"""
        )
    else:
        command = (
            f"{where} annotate cameraintegration {meta.get('name')} "
            f"{RESUME_ANNOTATION}={incident} --overwrite"
        )
    # A webhook with no resume request is the one action nothing here can undo.
    entries = ((integration.get("spec") or {}).get("killSwitch") or {}).get("actions") or []
    one_way = {
        str(e.get("name"))
        for e in entries
        if e.get("type") == "webhook" and not isinstance((e.get("webhook") or {}).get("resume"), Mapping)
    }
    manual = [name for name in action_names if name in one_way]
    hint = f"to resume, run: {command}"
    if manual:
        hint += f"; undo by hand: {', '.join(manual)}"
    return hint[:1024]


def _dns_name(*parts: str) -> str:
    """``parts`` joined as a DNS-1123 label, shortened with a hash when too long."""
    joined = re.sub(r"-{2,}", "-", re.sub(r"[^a-z0-9-]", "-", "-".join(parts).lower())).strip("-")
    if len(joined) <= 63:
        return joined
    digest = hashlib.sha256(json.dumps(parts).encode()).hexdigest()[:8]
    return f"{joined[:54].rstrip('-')}-{digest}"
