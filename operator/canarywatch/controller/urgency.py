"""Urgent work first: while a kill switch is on its way, bulk work waits.

When 1,000 probes are reconciled at once, a busy API server answered even a GET in 0.1
to 0.9 s (16 applies in flight, on two shared cores), and building a probe's objects
takes the event loop for milliseconds at a time; a kill switch makes about six calls one
after another, so a LeakIncident waited seconds behind work that can wait. ``urgent()``
marks the kill switch's work; bulk calls not yet sent and reconciles not yet begun wait
in ``unhurried()`` until it is done, but never longer than ``URGENT_HOLD_SECONDS``: a
kill switch stuck on a slow webhook must not stop every probe's reconcile.

Bulk work is more than the calls: kopf's handling of every watch event of a probe or
of one of its Deployments takes the event loop too (several a second per probe at a
cold start), and every step of the kill switch waits for the loop between its calls.
So that handling waits as well, in the first function of ours kopf runs for such an
event (the Deployments' index, ``controller.handlers``; ``probes.follow_probe``). And
it waits from the moment a LeakIncident that needs a response is seen (``expect``):
kopf's own steps before the handler starts were the longest wait of a kill switch
during a cold start. An expectation ends when urgent work ends, or after
``EXPECTED_HOLD_SECONDS``.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

__all__ = ["EXPECTED_HOLD_SECONDS", "URGENT_HOLD_SECONDS", "Urgency"]

URGENT_HOLD_SECONDS = 5.0
#: Bounded: a LeakIncident seen while kopf is still indexing its other kinds (its start,
#: a watch that lists again) waits for that indexing, which an expectation holds back.
EXPECTED_HOLD_SECONDS = 1.0


class Urgency:
    """How many urgent tasks are running, and a way for bulk work to wait them out."""

    def __init__(self, hold_seconds: float = URGENT_HOLD_SECONDS) -> None:
        self.hold_seconds = hold_seconds
        self._running = 0
        self._expected: asyncio.TimerHandle | None = None
        self._calm = asyncio.Event()
        self._calm.set()

    def expect(self, seconds: float = EXPECTED_HOLD_SECONDS) -> None:
        """Urgent work is on its way: bulk work waits from now until urgent work has
        run and ended, or for ``seconds`` if none starts."""
        if self._expected is not None:
            self._expected.cancel()
        self._expected = asyncio.get_running_loop().call_later(seconds, self._expectation_over)
        self._calm.clear()

    def _expectation_over(self) -> None:
        self._expected = None
        if not self._running:
            self._calm.set()

    @contextlib.asynccontextmanager
    async def urgent(self) -> AsyncIterator[None]:
        """Run the block as urgent work."""
        self._running += 1
        self._calm.clear()
        try:
            yield
        finally:
            self._running -= 1
            if not self._running:
                # What was expected has run (or runs now, and marks itself urgent).
                if self._expected is not None:
                    self._expected.cancel()
                    self._expected = None
                self._calm.set()

    async def unhurried(self) -> None:
        """Return once no urgent work runs, or after ``hold_seconds`` of waiting."""
        if not self._calm.is_set():
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.hold_seconds):
                    await self._calm.wait()
