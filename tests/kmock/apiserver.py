"""The API server of the kmock tier: kmock's Kubernetes emulator keeping the promises of
a real kube-apiserver that kopf and the operator rely on, and faults on demand.

kmock's ``KubernetesEmulator`` stores a written object as it was sent and applies every
write before it looks for a reaction. A real API server, and so ``ApiServer``:

* fills in ``metadata``: the namespace from the URL, ``uid``, ``creationTimestamp``,
  ``generation`` (incremented when the spec changes) and a new ``resourceVersion`` on
  every write (kopf's JSON patches ``test`` it), and a name from ``generateName``
  (every Event has one);
* answers a list with the ``resourceVersion`` it shows, and a watch from a
  ``resourceVersion`` with what changed after it (kmock's starts with every object as
  it is: kopf takes its own stale copies for news, patches them again, and once that
  fails, no further event makes it retry);
* creates the object on a server-side apply of one that does not exist (the probes'
  Secrets, RBAC and Deployments are applied);
* answers a failed JSON-patch ``test`` with 422, which kopf takes as "retry";
* does not apply a write it refuses: a request answered by ``fail()`` leaves the objects
  as they were.

Discovery serves kmock's bundled built-in resources and the CRDs of ``crds/``.
Everything else (label selectors, admission, defaults, garbage collection) is what
kmock does, which is little: that is the cluster tier's job.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import json
import uuid
import warnings
from collections.abc import AsyncIterator, Mapping
from datetime import UTC, datetime
from typing import Any, Self

import attrs
import jsonpatch
import kmock
from aiohttp import web
from aiohttp.test_utils import RawTestServer
from manifests import CRD_FILES, documents

__all__ = ["ApiServer", "Serving", "status_body"]

_APPLY = "application/apply-patch+yaml"
_VERBS = ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"]


class Serving:
    """``api`` over HTTP on 127.0.0.1, as ``async with Serving(api) as serving: …``.

    ``restart()`` cuts every connection, watches included, as an API server that
    restarts does, and listens on the same port again.
    """

    def __init__(self, api: ApiServer) -> None:
        self.api = api
        self._listening = contextlib.AsyncExitStack()

    async def __aenter__(self) -> Self:
        await self._listen()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self._listening.aclose()

    async def restart(self, *, down_for: float = 0.0) -> None:
        """Stop, refuse connections for ``down_for`` seconds, listen again."""
        [server] = self.api.servers
        port = server.port
        await self._listening.aclose()
        await asyncio.sleep(down_for)
        await self._listen(port)

    async def _listen(self, port: int | None = None) -> None:
        await self._listening.enter_async_context(
            kmock.Server(self.api, port=port, server_cls=_PromptlyStopped)
        )


class _PromptlyStopped(RawTestServer):
    """aiohttp waits a minute for open requests when it stops, and a watch stays open
    for good: give them a moment, then cut them, as a restarting API server does."""

    async def _make_runner(self, debug: bool = True, **kwargs: Any) -> web.ServerRunner:
        server = web.Server(self._handler, loop=self._loop, debug=debug, **kwargs)
        return web.ServerRunner(server, debug=debug, shutdown_timeout=0.2, **kwargs)


def status_body(code: int, reason: str, message: str) -> dict[str, Any]:
    """A ``meta/v1 Status`` as the API server sends it with an error."""
    return {
        "apiVersion": "v1",
        "kind": "Status",
        "metadata": {},
        "status": "Failure",
        "code": code,
        "reason": reason,
        "message": message,
    }


@attrs.define(kw_only=True)
class ApiServer(kmock.KubernetesEmulator):
    """See the module docstring. ``async with ApiServer() as api, Serving(api): …``"""

    _faults: list[kmock.View] = attrs.field(factory=list, init=False)
    _version: int = attrs.field(default=0, init=False)  # the latest resourceVersion given out

    def __attrs_post_init__(self) -> None:
        super().__attrs_post_init__()
        with warnings.catch_warnings():  # kmock 0.8 reads its bundled list with a deprecated call
            warnings.filterwarnings("ignore", "read_binary is deprecated", DeprecationWarning)
            self.resources.load_bundled()
        self.resources.load_data(json.dumps(_crd_discovery()))

    def fail(
        self, view: kmock.View, code: int, reason: str, message: str, *, retry_after: int | None = None
    ) -> kmock.View:
        """Answer the requests ``view`` selects with an error, without applying them.

        ``api.fail(api["patch", DEPLOYMENTS, kmock.subresource("scale")][:1], 500, …)``
        refuses the first scale patch; the returned view lists the requests refused.
        """
        headers = {"Retry-After": str(retry_after)} if retry_after is not None else {}
        reaction = view << code << kmock.headers(headers) << kmock.data(status_body(code, reason, message))
        self._faults.append(view)
        return reaction

    async def _handle(self, request: kmock.Request) -> web.StreamResponse:
        if any(request in fault for fault in self._faults):
            # Refused, so not applied: straight to the reactions, past the emulator's store.
            return await kmock.RawHandler._handle(self, request)
        if request.resource is not None and request.action == kmock.action.CREATE:
            self._created(request.data, request.namespace)
        elif request.resource is not None and request.action == kmock.action.UPDATE:
            self._updating(request)
        elif request.resource is not None and request.action == kmock.action.DELETE:
            key = (request.resource, request.namespace, request.name)
            if key in self.objects and not self.objects[key].deleted:  # else the emulator's 404
                self.objects[key].patch({"metadata": {"resourceVersion": self._next_version()}})
        try:
            return await super()._handle(request)
        except jsonpatch.JsonPatchTestFailed as error:
            raise kmock.KubernetesError(status=422, reason="Invalid", message=str(error)) from error

    async def _serve_list(self, request: kmock.Request) -> Any:
        listing = await super()._serve_list(request)
        listing["metadata"]["resourceVersion"] = str(self._version)  # kmock says "..."
        return listing

    async def _serve_watch(self, request: kmock.Request) -> AsyncIterator[Any]:
        since = request.params.get("resourceVersion", "")
        async for event in super()._serve_watch(request):
            meta = event.get("object", {}).get("metadata", {}) if isinstance(event, dict) else {}
            version = str(meta.get("resourceVersion", ""))
            if not (since.isdigit() and version.isdigit() and int(version) <= int(since)):
                yield event

    def _next_version(self) -> str:
        self._version += 1
        return str(self._version)

    def _created(self, body: Any, namespace: str | None) -> None:
        if not isinstance(body, dict):
            return
        meta = body.setdefault("metadata", {})
        if not meta.get("name") and meta.get("generateName"):
            meta["name"] = f"{meta['generateName']}{uuid.uuid4().hex[:5]}"
        if namespace is not None:
            meta["namespace"] = namespace
        meta |= {
            "uid": str(uuid.uuid4()),
            "creationTimestamp": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "generation": 1,
            "resourceVersion": self._next_version(),
        }

    def _updating(self, request: kmock.Request) -> None:
        key = (request.resource, request.namespace, request.name)
        if key not in self.objects or self.objects[key].deleted:
            if request.headers.get("Content-Type", "").startswith(_APPLY):
                # Server-side apply creates: an empty object, then the emulator patches it.
                stub: dict[str, Any] = {"metadata": {"name": request.name}}
                self._created(stub, request.namespace)
                if key in self.objects:
                    self.objects[key].create(stub)
                else:
                    self.objects[key] = stub
            return  # anything else: the emulator answers 404
        current = self.objects[key]
        version = self._next_version()
        changes = request.data
        if isinstance(changes, Mapping):
            changes.setdefault("metadata", {})["resourceVersion"] = version
            if request.subresource is None and _changes_spec(current.raw, changes):
                changes["metadata"]["generation"] = int(current.raw["metadata"].get("generation", 1)) + 1
        elif isinstance(changes, list):  # a JSON patch: its `test` ops run first
            changes.append({"op": "replace", "path": "/metadata/resourceVersion", "value": version})


def _changes_spec(current: Mapping[str, Any], changes: Mapping[str, Any]) -> bool:
    if "spec" not in changes:
        return False
    patched = kmock.Object(copy.deepcopy(dict(current)))
    patched.patch({"spec": changes["spec"]})
    return bool(patched.raw.get("spec") != current.get("spec"))


def _crd_discovery() -> list[dict[str, Any]]:
    """``/apis/<group>/<version>`` of every CRD in ``crds/``, as ``kmock fetch resources`` writes it."""
    lists: dict[str, dict[str, Any]] = {}
    for path in CRD_FILES:
        spec = documents(path)[0]["spec"]
        names, namespaced = spec["names"], spec["scope"] == "Namespaced"
        for version in spec["versions"]:
            group_version = f"{spec['group']}/{version['name']}"
            listing = lists.setdefault(
                group_version,
                {
                    "kind": "APIResourceList",
                    "apiVersion": "v1",
                    "groupVersion": group_version,
                    "resources": [],
                },
            )
            listing["resources"].append(
                {
                    "name": names["plural"],
                    "singularName": names.get("singular", ""),
                    "namespaced": namespaced,
                    "kind": names["kind"],
                    "verbs": _VERBS,
                    "shortNames": names.get("shortNames", []),
                    "categories": names.get("categories", []),
                }
            )
            for subresource in version.get("subresources") or {}:
                listing["resources"].append(
                    {
                        "name": f"{names['plural']}/{subresource}",
                        "namespaced": namespaced,
                        "kind": names["kind"],
                        "verbs": ["get", "patch", "update"],
                    }
                )
    return list(lists.values())
