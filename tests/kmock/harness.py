"""The kmock tier's side of the API server: objects written over HTTP, read from the
emulator's store, and waiting for them while the event loop serves the operator."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any, TypeVar

import kmock
import pytest
from apiserver import ApiServer
from outcomes import settled

from canarywatch.controller.kube import DEPLOYMENTS, LEAK_INCIDENTS, Resource, resource_of

__all__ = ["NAMESPACE", "Cluster", "eventually"]

NAMESPACE = "canarywatch"
_HANDLED = "canarywatch.io/last-handled-configuration"
T = TypeVar("T")


async def eventually(probe: Callable[[], T | None], *, what: str, timeout: float = 15.0) -> T:
    """``probe()``'s first truthy answer, polled while the event loop serves the API."""
    deadline = time.monotonic() + timeout
    while not (value := probe()):
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:.0f}s waiting for {what}")
        await asyncio.sleep(0.1)
    return value


class Cluster:
    """The tests' side of the API server: objects written over HTTP, as ``kubectl`` does
    (so watches see them), and read from the emulator's store."""

    def __init__(self, api: ApiServer) -> None:
        self.api = api

    async def create(self, obj: dict[str, Any]) -> dict[str, Any]:
        resource = resource_of(obj)
        async with self.api.post(resource.path(NAMESPACE), json=obj) as response:
            answer: dict[str, Any] = await response.json()
            assert response.status < 300, answer
            return answer

    def get(self, resource: Resource, name: str) -> dict[str, Any] | None:
        key = (kmock.resource(resource), NAMESPACE, name)
        if key not in self.api.objects or self.api.objects[key].deleted:
            return None
        return dict(self.api.objects[key].raw)

    def handled(self, resource: Resource, name: str) -> bool:
        """Whether the operator has run every handler of the object's latest change
        (kopf then records it, in the annotation ``controller.main.kopf_settings`` names)."""
        annotations = (self.get(resource, name) or {}).get("metadata", {}).get("annotations") or {}
        return _HANDLED in annotations

    def status(self, resource: Resource, name: str) -> dict[str, Any]:
        return dict((self.get(resource, name) or {}).get("status") or {})

    def events(self, name: str) -> list[dict[str, Any]]:
        """The Events about ``name``, posted by kopf or the operator."""
        return [
            obj.raw
            for (resource, _, _), obj in self.api.objects.items()
            if resource == kmock.resource("v1/events") and not obj.deleted
            if obj.raw.get("involvedObject", {}).get("name") == name
        ]

    def replicas(self, name: str) -> int:
        return int((self.get(DEPLOYMENTS, name) or {})["spec"]["replicas"])

    def settled(self, name: str) -> dict[str, Any] | None:
        """The incident's status once paged (or not) and shut down (or not), else None."""
        return settled(self.status(LEAK_INCIDENTS, name))
