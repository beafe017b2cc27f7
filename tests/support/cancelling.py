"""Does a task stop when told to, wherever the cancellation lands?"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any


async def ignored_cancellations(
    watch: Callable[[], Coroutine[Any, Any, None]], attempts: int = 20
) -> list[int]:
    """Start ``watch()`` ``attempts`` times and cancel it after a different number of
    loop passes each time: the attempts whose task was still running 2 s after its
    cancellation (each torn down anyway, cancelled until it ends)."""
    ignored = []
    for attempt in range(attempts):
        task = asyncio.create_task(watch())
        for _ in range(3 + attempt % 7):
            await asyncio.sleep(0)
        task.cancel()
        done, _ = await asyncio.wait([task], timeout=2)
        if not done:
            ignored.append(attempt)
        while not done:
            task.cancel()
            done, _ = await asyncio.wait([task], timeout=1)
    return ignored
