"""Time for shaped-network tests: it moves only when someone sleeps, and sleeping
yields to the event loop, so a test of seconds of shaping runs in milliseconds."""

from __future__ import annotations

import asyncio

__all__ = ["FakeTime"]


class FakeTime:
    """``clock()`` and ``sleep()`` to inject; ``sleeps`` records every sleep asked for."""

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += max(0.0, seconds)
        await asyncio.sleep(0)
