"""Urgent work first: while a kill switch is on its way, bulk work waits.

When 1,000 probes are reconciled at once, a busy API server answered even a GET in 0.1
to 0.9 s (16 applies in flight, on two shared cores), and building a probe's objects
takes the event loop for milliseconds at a time; a kill switch makes about six calls one
after another, so a LeakIncident waited seconds behind work that can wait. ``urgent()``
marks the kill switch's work; bulk calls not yet sent and reconciles not yet begun wait
in ``unhurried()`` until it is done, but never longer than ``URGENT_HOLD_SECONDS``: a
kill switch stuck on a slow webhook must not stop every probe's reconcile.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

__all__ = ["URGENT_HOLD_SECONDS", "Urgency"]

URGENT_HOLD_SECONDS = 5.0


class Urgency:
    """How many urgent tasks are running, and a way for bulk work to wait them out."""

    def __init__(self, hold_seconds: float = URGENT_HOLD_SECONDS) -> None:
        self.hold_seconds = hold_seconds
        self._running = 0
        self._calm = asyncio.Event()
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
                self._calm.set()

    async def unhurried(self) -> None:
        """Return once no urgent work runs, or after ``hold_seconds`` of waiting."""
        if not self._calm.is_set():
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.hold_seconds):
                    await self._calm.wait()
