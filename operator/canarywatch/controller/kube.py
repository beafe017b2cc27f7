"""The operator's client layer: the only canarywatch module that calls the Kubernetes API.

(kopf talks to the API too, for what it owns: watching the canarywatch resources,
patching the annotations it keeps its progress in, and the status patches handlers
return. Everything else goes through here, so ``controller.permissions`` can list it.)

The ``kubernetes`` client is synchronous; ``Kube`` runs each call on its own thread
pool (``concurrency`` calls in flight, and as many pooled connections) so a slow call
never blocks kopf's event loop. Calls made inside ``bulk()`` (reconciling probes) run
on a second pool of their own: when 1,000 probes start at once their thousands of
applies queue there, and a LeakIncident's calls (its verification, the kill switch)
still find a free thread at once, and while a kill switch is on its way bulk calls not
yet sent wait (``controller.urgency``). Objects go in and come out as plain JSON dicts, the
shape ``controller.manifests`` produces, without the client's model classes.

Errors are ``KubeError`` (``NotFound``, ``Conflict``, ``Forbidden``, ``Invalid``) with
the API server's reason and message; request bodies are never part of a message,
because some of them carry keys and tokens. An answer that says "try again" (429 or a
5xx: throttling, an etcd timeout, an API server restarting), and a refused
connection, are retried a few times within seconds by ``canarywatch.retrying``, after
``Retry-After`` when the server gives one (up to 10 s), as kopf's own client does for
kopf's calls: otherwise one such answer would hold a kill switch back until kopf
retries the handler, half a minute later. A timeout is not retried: the call may have
landed.

Why this thin layer over the client's ``ApiClient`` (its transport, auth and
serialization) and not its generated APIs: the operator works in plain dicts of any
kind (server-side apply, merge patches of whatever a patch action names), which the
generated model classes would convert back and forth; what is added is only what the
client lacks: these retries (urllib3's would also resend a write that timed out, and
wait out any ``Retry-After``), errors that keep the API's reason but never a request
body, and the per-verb request count (``requests``: liveness probe, benchmark).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
import os
from collections import Counter
from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextvars import ContextVar
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote, urlencode

import urllib3

from canarywatch.api import (
    API_GROUP,
    KIND_INCIDENT,
    KIND_INTEGRATION,
    KIND_PROBE,
    PLURAL_INCIDENTS,
    PLURAL_INTEGRATIONS,
    PLURAL_PROBES,
    VERSION,
)
from canarywatch.controller.urgency import Urgency
from canarywatch.retrying import Backoff, RetryLater, retry

__all__ = [
    "CAMERA_INTEGRATIONS",
    "CANARY_PROBES",
    "CONFIG_MAPS",
    "DEPLOYMENTS",
    "EVENTS",
    "FIELD_MANAGER",
    "LEAK_INCIDENTS",
    "LEASES",
    "NETWORK_POLICIES",
    "PODS",
    "POD_DISRUPTION_BUDGETS",
    "ROLES",
    "SECRETS",
    "STATEFUL_SETS",
    "Conflict",
    "Forbidden",
    "Invalid",
    "Kube",
    "KubeError",
    "NotFound",
    "Resource",
    "bulk",
    "resource_of",
]

log = logging.getLogger(__name__)

FIELD_MANAGER = "canarywatch-operator"
# API error messages end up in CR status, Events and logs: a bounded excerpt is enough
# to act on, and a misbehaving proxy cannot flood any of them.
_MESSAGE_LIMIT = 400
_REQUEST_TIMEOUT = 30.0
_RETRIED_STATUSES = frozenset({429, 500, 502, 503, 504})
_MAX_ATTEMPTS = 4  # then the error is the caller's: within seconds (0.5 + 1 + 2 at most)
_BACKOFF = Backoff(0.5, 10.0)  # a Retry-After of up to 10 s is honoured
_METADATA_LIST = "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1,application/json"


class KubeError(Exception):
    """A Kubernetes API call failed; ``status`` is the HTTP status (0: no answer)."""

    def __init__(self, status: int, reason: str, message: str) -> None:
        super().__init__(f"{status} {reason}: {message}" if status else message)
        self.status = status
        self.reason = reason
        self.message = message


class NotFound(KubeError):
    """404: the object (or its namespace) does not exist."""


class Conflict(KubeError):
    """409: the object exists already, or changed since it was read."""


class Forbidden(KubeError):
    """403: RBAC does not allow this call (see ``controller.permissions``)."""


class Invalid(KubeError):
    """422: the API server refused the object (schema, CEL rule, immutable field)."""


_ERRORS: Mapping[int, type[KubeError]] = {403: Forbidden, 404: NotFound, 409: Conflict, 422: Invalid}


@dataclass(frozen=True, slots=True)
class Resource:
    """One API resource: where its objects live under the API server's paths."""

    group: str
    version: str
    plural: str
    kind: str
    namespaced: bool = True

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    def path(
        self, namespace: str | None = None, name: str | None = None, subresource: str | None = None
    ) -> str:
        prefix = f"/apis/{self.group}/{self.version}" if self.group else f"/api/{self.version}"
        parts = [prefix]
        if self.namespaced:
            if namespace is None:
                raise ValueError(f"{self.kind} is namespaced: a namespace is required")
            parts.append(f"namespaces/{quote(namespace, safe='')}")
        parts.append(self.plural)
        if name is not None:
            parts.append(quote(name, safe=""))
            if subresource:
                parts.append(subresource)
        return "/".join(parts)

    def rbac_name(self, subresource: str | None = None) -> str:
        """The name RBAC rules and audit events use: ``deployments/scale``."""
        return f"{self.plural}/{subresource}" if subresource else self.plural


SECRETS = Resource("", "v1", "secrets", "Secret")
CONFIG_MAPS = Resource("", "v1", "configmaps", "ConfigMap")
PODS = Resource("", "v1", "pods", "Pod")
EVENTS = Resource("", "v1", "events", "Event")
SERVICES = Resource("", "v1", "services", "Service")
SERVICE_ACCOUNTS = Resource("", "v1", "serviceaccounts", "ServiceAccount")
DEPLOYMENTS = Resource("apps", "v1", "deployments", "Deployment")
STATEFUL_SETS = Resource("apps", "v1", "statefulsets", "StatefulSet")
ROLES = Resource("rbac.authorization.k8s.io", "v1", "roles", "Role")
ROLE_BINDINGS = Resource("rbac.authorization.k8s.io", "v1", "rolebindings", "RoleBinding")
POD_DISRUPTION_BUDGETS = Resource("policy", "v1", "poddisruptionbudgets", "PodDisruptionBudget")
NETWORK_POLICIES = Resource("networking.k8s.io", "v1", "networkpolicies", "NetworkPolicy")
LEASES = Resource("coordination.k8s.io", "v1", "leases", "Lease")
CAMERA_INTEGRATIONS = Resource(API_GROUP, VERSION, PLURAL_INTEGRATIONS, KIND_INTEGRATION)
CANARY_PROBES = Resource(API_GROUP, VERSION, PLURAL_PROBES, KIND_PROBE)
LEAK_INCIDENTS = Resource(API_GROUP, VERSION, PLURAL_INCIDENTS, KIND_INCIDENT)

_KNOWN: Mapping[tuple[str, str], Resource] = {
    (r.api_version, r.kind): r
    for r in (
        SECRETS,
        CONFIG_MAPS,
        PODS,
        EVENTS,
        SERVICES,
        SERVICE_ACCOUNTS,
        DEPLOYMENTS,
        STATEFUL_SETS,
        ROLES,
        ROLE_BINDINGS,
        NETWORK_POLICIES,
        POD_DISRUPTION_BUDGETS,
        LEASES,
        CAMERA_INTEGRATIONS,
        CANARY_PROBES,
        LEAK_INCIDENTS,
    )
}


def resource_of(obj: Mapping[str, Any]) -> Resource:
    """The resource of a built object (one of the kinds the operator creates)."""
    key = (str(obj.get("apiVersion")), str(obj.get("kind")))
    try:
        return _KNOWN[key]
    except KeyError:
        raise ValueError(f"no known resource for apiVersion {key[0]!r}, kind {key[1]!r}") from None


def now_rfc3339(*, micro: bool = False) -> str:
    moment = datetime.now(UTC)
    if micro:
        return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


#: Set by ``bulk()``: this task's calls (and those of tasks it starts) are bulk work.
_BULK: ContextVar[bool] = ContextVar("canarywatch_kube_bulk", default=False)


@contextlib.contextmanager
def bulk() -> Iterator[None]:
    """The calls made inside run on the bulk pool (see the module docstring)."""
    token = _BULK.set(True)
    try:
        yield
    finally:
        _BULK.reset(token)


class Kube:
    """Async calls to one API server; see the module docstring.

    ``requests`` counts the calls made, by RBAC verb and resource (``patch
    deployments``), for the benchmark and for debugging RBAC.
    """

    def __init__(
        self,
        api_client: Any,
        *,
        concurrency: int = 16,
        bulk_concurrency: int | None = None,
        field_manager: str = FIELD_MANAGER,
    ) -> None:
        bulk_concurrency = concurrency if bulk_concurrency is None else bulk_concurrency
        if min(concurrency, bulk_concurrency) < 1:
            raise ValueError(f"concurrency must be >= 1, got {concurrency!r} and {bulk_concurrency!r}")
        self._api = api_client
        self._executor = ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="canarywatch-kube")
        self._bulk = ThreadPoolExecutor(
            max_workers=bulk_concurrency, thread_name_prefix="canarywatch-kube-bulk"
        )
        self._field_manager = field_manager
        self._discovered: dict[tuple[str, str], Resource] = {}
        self.requests: Counter[str] = Counter()
        #: Bulk calls not yet sent wait while a kill switch is on its way.
        self.urgency = Urgency()

    @classmethod
    def from_environment(cls, *, concurrency: int = 16, bulk_concurrency: int | None = None) -> Kube:
        """In a pod, its ServiceAccount; elsewhere ``$KUBECONFIG`` (or ``~/.kube/config``)."""
        from kubernetes import client, config

        configuration = client.Configuration()
        if os.environ.get("KUBERNETES_SERVICE_HOST"):
            config.load_incluster_config(client_configuration=configuration)  # type: ignore[no-untyped-call]
        else:
            config.load_kube_config(client_configuration=configuration)  # type: ignore[no-untyped-call]
        bulk_concurrency = concurrency if bulk_concurrency is None else bulk_concurrency
        configuration.connection_pool_maxsize = concurrency + bulk_concurrency  # the two pools
        return cls(
            client.ApiClient(configuration), concurrency=concurrency, bulk_concurrency=bulk_concurrency
        )

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)
        self._bulk.shutdown(wait=False, cancel_futures=True)
        with contextlib.suppress(Exception):
            self._api.close()

    # -- the one place requests are made ---------------------------------------------------

    async def request(
        self,
        method: str,
        path: str,
        *,
        verb: str,
        what: str,
        query: Mapping[str, str] | None = None,
        body: Any = None,
        content_type: str = "application/json",
        accept: str = "application/json",
    ) -> Any:
        """One API call; the JSON answer, or ``KubeError``. ``verb``/``what`` label the count."""
        if _BULK.get():
            await self.urgency.unhurried()
        self.requests[f"{verb} {what}"] += 1
        url = path + (f"?{urlencode(query)}" if query else "")
        loop = asyncio.get_running_loop()
        call = functools.partial(self._call_blocking, method, url, body, content_type, accept)
        executor = self._bulk if _BULK.get() else self._executor

        async def attempt(number: int) -> tuple[int, bytes]:
            try:
                status, data, retry_after = await loop.run_in_executor(executor, call)
            except KubeError as error:
                # Not even connected (an API server restarting): nothing was sent, so
                # trying again is safe. A timeout is not retried: the call may have landed.
                if _never_sent(error):
                    raise _Unreached(error) from error
                raise
            if status in _RETRIED_STATUSES:
                raise _Busy(status, data, retry_after)
            return status, data

        try:
            status, data = await retry(
                attempt, backoff=_BACKOFF, max_attempts=_MAX_ATTEMPTS, what=f"{method} {path}"
            )
        except _Unreached as unreached:
            raise unreached.error from unreached.error.__cause__
        except _Busy as busy:
            status, data = busy.status, busy.data
        if status >= 400:
            raise _error(status, data, f"{method} {path}")
        return json.loads(data) if data else None

    def _call_blocking(
        self, method: str, url: str, body: Any, content_type: str, accept: str
    ) -> tuple[int, bytes, float | None]:
        serialized = self._api.param_serialize(
            method,
            url,
            header_params={"Content-Type": content_type, "Accept": accept},
            body=body,
            auth_settings=["BearerToken"],
        )
        try:
            response = self._api.call_api(*serialized, _request_timeout=_REQUEST_TIMEOUT)
            response.read()
        except Exception as error:
            # urllib3 and TLS errors: no HTTP answer to classify.
            where = url.split("?", maxsplit=1)[0]
            raise KubeError(0, "Unreachable", f"{method} {where}: {type(error).__name__}: {error}") from error
        return int(response.status), bytes(response.data or b""), _seconds(response.getheader("Retry-After"))

    # -- generic object calls ----------------------------------------------------------------

    async def get(
        self, resource: Resource, namespace: str | None, name: str, *, subresource: str | None = None
    ) -> Any:
        """The object, or None when it does not exist."""
        try:
            return await self.request(
                "GET",
                resource.path(namespace, name, subresource),
                verb="get",
                what=resource.rbac_name(subresource),
            )
        except NotFound:
            return None

    async def list_objects(
        self, resource: Resource, namespace: str | None, *, label_selector: str | None = None
    ) -> list[dict[str, Any]]:
        """The objects of ``resource`` in ``namespace``; None: in every namespace."""
        query = {"labelSelector": label_selector} if label_selector else None
        # A namespaced resource's cluster-wide collection has the path of a cluster one.
        path = replace(resource, namespaced=False).path() if namespace is None else resource.path(namespace)
        answer = await self.request("GET", path, verb="list", what=resource.plural, query=query)
        items = list(answer.get("items") or [])
        # A list's items carry no apiVersion/kind; put them back so they can be re-applied.
        for item in items:
            item.setdefault("apiVersion", resource.api_version)
            item.setdefault("kind", resource.kind)
        return items

    async def list_metadata(self, resource: Resource, namespace: str) -> list[dict[str, Any]]:
        """The metadata of the objects of ``resource`` in ``namespace`` (a fraction of
        what a full list costs the API server to send and this process to read)."""
        answer = await self.request(
            "GET", resource.path(namespace), verb="list", what=resource.plural, accept=_METADATA_LIST
        )
        return [dict(item) for item in answer.get("items") or []]

    async def create(self, obj: Mapping[str, Any], *, resource: Resource | None = None) -> Any:
        resource = resource or resource_of(obj)
        path, body = resource.path(obj.get("metadata", {}).get("namespace")), dict(obj)
        query = {"fieldManager": self._field_manager}
        return await self.request("POST", path, verb="create", what=resource.plural, query=query, body=body)

    async def create_if_absent(self, obj: Mapping[str, Any]) -> bool:
        """Create ``obj``; False if an object of that name exists already (kept as is)."""
        try:
            await self.create(obj)
        except Conflict:
            return False
        return True

    async def apply(self, obj: Mapping[str, Any]) -> Any:
        """Server-side apply (force): create or bring the fields this operator owns in line."""
        resource = resource_of(obj)
        meta = obj.get("metadata", {})
        return await self.request(
            "PATCH",
            resource.path(meta.get("namespace"), str(meta["name"])),
            verb="patch",
            what=resource.plural,
            query={"fieldManager": self._field_manager, "force": "true"},
            body=dict(obj),
            content_type="application/apply-patch+yaml",
        )

    async def merge_patch(
        self,
        resource: Resource,
        namespace: str | None,
        name: str,
        patch: Mapping[str, Any],
        *,
        subresource: str | None = None,
    ) -> Any:
        """RFC 7386 merge patch (``null`` deletes a key); of ``/status`` with ``subresource``."""
        return await self.request(
            "PATCH",
            resource.path(namespace, name, subresource),
            verb="patch",
            what=resource.rbac_name(subresource),
            query={"fieldManager": self._field_manager},
            body=dict(patch),
            content_type="application/merge-patch+json",
        )

    async def patch_status(
        self, resource: Resource, namespace: str, name: str, status: Mapping[str, Any]
    ) -> Any:
        return await self.merge_patch(
            resource, namespace, name, {"status": dict(status)}, subresource="status"
        )

    async def delete(
        self, resource: Resource, namespace: str | None, name: str, *, uid: str | None = None
    ) -> bool:
        """Delete (in the background); False if it was gone already. ``uid`` guards
        against deleting a same-named successor of the object that was meant."""
        body: dict[str, Any] = {"propagationPolicy": "Background"}
        if uid is not None:
            body["preconditions"] = {"uid": uid}
        try:
            await self.request(
                "DELETE", resource.path(namespace, name), verb="delete", what=resource.plural, body=body
            )
        except NotFound:
            return False
        return True

    async def resource(self, api_version: str, kind: str) -> Resource:
        """The resource of any ``apiVersion``/``kind`` (discovery, cached per process)."""
        known = _KNOWN.get((api_version, kind)) or self._discovered.get((api_version, kind))
        if known is not None:
            return known
        group, _, version = api_version.rpartition("/")
        path = f"/apis/{group}/{version}" if group else f"/api/{version}"
        try:
            listing = await self.request("GET", path, verb="get", what="discovery")
        except NotFound:
            raise NotFound(404, "NotFound", f"the API server does not serve {api_version}") from None
        for entry in listing.get("resources", []):
            if entry.get("kind") == kind and "/" not in str(entry.get("name")):
                found = Resource(group, version, str(entry["name"]), kind, bool(entry.get("namespaced")))
                self._discovered[(api_version, kind)] = found
                return found
        raise NotFound(404, "NotFound", f"{api_version} has no kind {kind}")

    # -- conveniences --------------------------------------------------------------------------

    async def secret_value(self, namespace: str, name: str, key: str) -> str:
        """One key of a Secret, decoded. ``KubeError`` (never the value) when unusable."""
        import base64

        secret = await self.get(SECRETS, namespace, name)
        if secret is None:
            raise NotFound(404, "NotFound", f"Secret {namespace}/{name} not found")
        encoded = (secret.get("data") or {}).get(key)
        if encoded is None:
            raise NotFound(404, "NotFound", f"Secret {namespace}/{name} has no key {key!r}")
        try:
            return base64.b64decode(encoded).decode()
        except (ValueError, UnicodeDecodeError):
            raise Invalid(
                422, "Invalid", f"Secret {namespace}/{name} key {key!r} is not UTF-8 text"
            ) from None

    async def replicas(self, workload: Resource, namespace: str, name: str) -> int | None:
        """``spec.replicas`` through the scale subresource; None if the workload is gone."""
        scale = await self.get(workload, namespace, name, subresource="scale")
        if scale is None:
            return None
        return int((scale.get("spec") or {}).get("replicas") or 0)

    async def scale(self, workload: Resource, namespace: str, name: str, replicas: int) -> None:
        await self.merge_patch(
            workload, namespace, name, {"spec": {"replicas": replicas}}, subresource="scale"
        )

    async def post_event(
        self,
        involved: Mapping[str, Any],
        *,
        reason: str,
        message: str,
        warning: bool = False,
        reporter: str = FIELD_MANAGER,
    ) -> None:
        """A core/v1 Event about ``involved`` (an object body), as ``kubectl describe`` shows."""
        meta = involved.get("metadata") or {}
        namespace = str(meta.get("namespace") or "default")
        stamp = now_rfc3339()
        event = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"generateName": f"{meta.get('name', 'canarywatch')}.", "namespace": namespace},
            "involvedObject": {
                "apiVersion": involved.get("apiVersion"),
                "kind": involved.get("kind"),
                "name": meta.get("name"),
                "namespace": namespace,
                "uid": meta.get("uid"),
            },
            "reason": reason,
            "message": message[:1024],
            "type": "Warning" if warning else "Normal",
            "source": {"component": reporter},
            "firstTimestamp": stamp,
            "lastTimestamp": stamp,
            "count": 1,
        }
        await self.create(event, resource=EVENTS)


class _Unreached(RetryLater):
    """The API server could not be reached, and nothing was sent."""

    def __init__(self, error: KubeError) -> None:
        super().__init__(error.message)
        self.error = error


class _Busy(RetryLater):
    """A "try again" answer (429 or a 5xx)."""

    def __init__(self, status: int, data: bytes, retry_after: float | None) -> None:
        super().__init__(f"answered {status}", retry_after=retry_after)
        self.status = status
        self.data = data


def _never_sent(error: KubeError) -> bool:
    """The call failed to connect (refused, reset while connecting, no route)."""
    cause = error.__cause__
    reason = getattr(cause, "reason", cause)  # urllib3's MaxRetryError wraps the cause
    return error.status == 0 and isinstance(reason, urllib3.exceptions.NewConnectionError | ConnectionError)


def _seconds(value: object) -> float | None:
    """A ``Retry-After`` in seconds (the API server never sends the HTTP-date form)."""
    try:
        seconds = float(str(value))
    except ValueError:
        return None
    return seconds if seconds >= 0 else None


def _error(status: int, data: bytes, what: str) -> KubeError:
    reason, message = "", ""
    try:
        parsed = json.loads(data)
    except ValueError:
        parsed = None
    if isinstance(parsed, dict):
        reason = str(parsed.get("reason") or "")
        message = str(parsed.get("message") or "")
    if not message:
        message = data.decode(errors="replace").strip()
    message = f"{what}: {message}"
    if len(message) > _MESSAGE_LIMIT:
        message = message[: _MESSAGE_LIMIT - 3] + "..."
    return _ERRORS.get(status, KubeError)(status, reason or "Error", message)
