"""Stopping asyncio tasks in bounded time.

A task told to stop (cancelled) ends within a loop pass or two, unless it is stuck in a
library's cleanup: a WebRTC peer connection whose close never returns, say. Such a task
must not hold the way out: a run writes its verdicts and exits, and names what it left
behind (the event loop's own teardown cancels it once more).

A task that stops a helper task of its own must not lose its own stop request on the
way: ``with suppress(CancelledError): await helper`` drops a cancellation of the task
itself that lands while it waits, and the task goes on. ``reap`` does it right.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from typing import Any

__all__ = ["cancel_within", "reap"]

log = logging.getLogger(__name__)


async def cancel_within(tasks: Iterable[asyncio.Task[Any]], timeout: float) -> set[asyncio.Task[Any]]:
    """Cancel ``tasks`` and wait for them, at most ``timeout`` seconds: the ones still
    running then, each logged as left behind. Their results and errors are dropped, as
    ``gather(return_exceptions=True)`` drops them: a task reports its own failures."""
    tasks = set(tasks)
    for task in tasks:
        task.cancel()
    if not tasks:
        return set()
    done, pending = await asyncio.wait(tasks, timeout=timeout)
    for task in done:
        if not task.cancelled():
            task.exception()  # retrieved: no "exception was never retrieved" at exit
    for task in sorted(pending, key=lambda t: t.get_name()):
        log.warning("%s did not stop within %.0f s of being told to; left behind", task.get_name(), timeout)
    return pending


async def reap(*helpers: asyncio.Task[Any] | asyncio.Future[Any]) -> None:
    """Cancel ``helpers`` (tasks the current task started) and wait until they are done.
    A cancellation of the current task meanwhile is raised, never absorbed; the helpers'
    own outcomes are left on them (``helper.exception()`` for a caller that cares)."""
    for helper in helpers:
        helper.cancel()
    if helpers:
        await asyncio.wait(helpers)
