"""Leader election for the operator's replicas.

``LeaderElector`` keeps one replica of the operator in charge with a
``coordination.k8s.io`` Lease, the way client-go's leader election does: the leader
renews its claim every ``retry`` seconds and steps down when it could not renew for
``renew_deadline``; a standby takes over once the claim it observes has gone
``duration`` seconds without a renewal (measured on its own clock, so clock skew
between nodes does not matter).

Why not ``kubernetes.leaderelection``: it runs in threads with blocking callbacks,
cannot hand the lease over on a clean shutdown (a standby would wait a full lease
duration), and its calls would bypass ``Kube`` (its request log, its retries). kopf's
peering is not a leader election (see ``controller.main``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Mapping
from typing import Any

from canarywatch.controller.kube import LEASES, Conflict, Kube, KubeError, now_rfc3339

__all__ = ["LeaderElector"]

log = logging.getLogger(__name__)


class LeaderElector:
    """Lease-based leader election (see the module docstring).

    ``await acquire()`` returns once this replica leads; ``hold(on_lost)`` then renews
    until cancelled, calling ``on_lost()`` if the lease slipped away; ``release()``
    hands the lease over at once on a clean shutdown.
    """

    def __init__(
        self,
        kube: Kube,
        *,
        namespace: str,
        name: str,
        identity: str,
        duration: float,
        renew_deadline: float,
        retry: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not retry < renew_deadline < duration:
            raise ValueError("need retry < renew_deadline < duration")
        self._kube = kube
        self.namespace = namespace
        self.name = name
        self.identity = identity
        self._duration = duration
        self._renew_deadline = renew_deadline
        self._retry = retry
        self._clock = clock
        self._observed: tuple[str, str] | None = None
        self._observed_at = 0.0
        self.leading = False

    async def acquire(self) -> None:
        logged = False
        while not await self._try():
            if not logged:
                log.info("standing by: lease %s/%s is held by another replica", self.namespace, self.name)
                logged = True
            await asyncio.sleep(self._retry)
        self.leading = True
        log.info("leading: acquired lease %s/%s as %s", self.namespace, self.name, self.identity)

    async def hold(self, on_lost: Callable[[], None]) -> None:
        renewed = self._clock()
        while True:
            await asyncio.sleep(self._retry)
            if await self._try():
                renewed = self._clock()
            elif self._clock() - renewed > self._renew_deadline:
                self.leading = False
                log.error(
                    "lost lease %s/%s (not renewed for %.1fs): stopping",
                    self.namespace,
                    self.name,
                    self._clock() - renewed,
                )
                on_lost()
                return

    async def release(self) -> None:
        if not self.leading:
            return
        self.leading = False
        with contextlib.suppress(KubeError):
            lease = await self._kube.get(LEASES, self.namespace, self.name)
            if lease is not None and (lease.get("spec") or {}).get("holderIdentity") == self.identity:
                lease["spec"]["holderIdentity"] = ""
                lease["spec"]["leaseDurationSeconds"] = 1
                lease["spec"]["renewTime"] = now_rfc3339(micro=True)
                await self._replace(lease)
                log.info("released lease %s/%s", self.namespace, self.name)

    async def _try(self) -> bool:
        """One acquire-or-renew attempt; False when another replica holds a live lease."""
        now = now_rfc3339(micro=True)
        try:
            lease = await self._kube.get(LEASES, self.namespace, self.name)
            if lease is None:
                body = {
                    "apiVersion": LEASES.api_version,
                    "kind": LEASES.kind,
                    "metadata": {"name": self.name, "namespace": self.namespace},
                    "spec": self._spec(now, acquired=now, transitions=0),
                }
                return await self._kube.create_if_absent(body)
            spec = lease.get("spec") or {}
            holder = str(spec.get("holderIdentity") or "")
            record = (holder, str(spec.get("renewTime") or ""))
            if record != self._observed:
                self._observed, self._observed_at = record, self._clock()
            duration = float(spec.get("leaseDurationSeconds") or self._duration)
            if holder and holder != self.identity and self._clock() < self._observed_at + duration:
                return False
            ours = holder == self.identity
            transitions = int(spec.get("leaseTransitions") or 0) + (0 if ours else 1)
            lease["spec"] = self._spec(
                now, acquired=str(spec.get("acquireTime") or now) if ours else now, transitions=transitions
            )
            await self._replace(lease)
        except Conflict:
            return False  # someone else wrote it first: look again next time
        except KubeError as error:
            log.warning("lease %s/%s: %s", self.namespace, self.name, error)
            return False
        return True

    def _spec(self, now: str, *, acquired: str, transitions: int) -> dict[str, Any]:
        return {
            "holderIdentity": self.identity,
            "leaseDurationSeconds": max(1, round(self._duration)),
            "acquireTime": acquired,
            "renewTime": now,
            "leaseTransitions": transitions,
        }

    async def _replace(self, lease: Mapping[str, Any]) -> None:
        # PUT with the resourceVersion read: a concurrent writer gets a 409, not a tie.
        await self._kube.request(
            "PUT", LEASES.path(self.namespace, self.name), verb="update", what=LEASES.plural, body=dict(lease)
        )
