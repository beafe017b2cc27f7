"""The one retry primitive of the package: capped exponential backoff with equal jitter,
and ``retry`` — an attempt run until it settles, on top of tenacity.

Every retry in canarywatch (API calls, pages, kill-switch webhooks, LeakIncident
creation, stream reconnects) goes through here, so "how long do we wait after the n-th
failure" has one answer, and a 429's ``Retry-After`` is honoured the same way
everywhere. An attempt asks for another try by raising ``RetryLater``; anything else it
returns or raises ends the retry at once.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

import tenacity

__all__ = ["Backoff", "RetryLater", "backoff_delay", "retry"]

T = TypeVar("T")
log = logging.getLogger(__name__)


def backoff_delay(
    attempt: int, *, base_delay: float, max_delay: float, rng: random.Random | None = None
) -> float:
    """Seconds to wait after failed attempt number ``attempt`` (1-based).

    Exponential and capped at ``max_delay``, with "equal jitter": half the delay is
    fixed and half random, so many clients hit by one outage spread their retries out
    while each of them still backs off.
    """
    if attempt < 1:
        raise ValueError(f"attempt is 1-based, got {attempt}")
    ceiling = min(max_delay, base_delay * 2.0 ** min(attempt - 1, 64))
    return ceiling / 2 + (rng or random).uniform(0.0, ceiling / 2)


@dataclass(frozen=True)
class Backoff:
    """How long to wait between attempts: ``base`` after the first failure, doubling up
    to ``cap`` (equal jitter, see ``backoff_delay``)."""

    base: float
    cap: float
    rng: random.Random | None = None

    def __post_init__(self) -> None:
        if not 0 < self.base <= self.cap:
            raise ValueError(f"need 0 < base <= cap, got base={self.base}, cap={self.cap}")

    def delay(self, attempt: int, retry_after: float | None = None) -> float:
        """The wait after failed attempt ``attempt``; a server's ``retry_after`` is
        honoured (never more than ``cap``)."""
        delay = backoff_delay(attempt, base_delay=self.base, max_delay=self.cap, rng=self.rng)
        if retry_after is not None:
            delay = max(delay, min(retry_after, self.cap))
        return delay


class RetryLater(Exception):
    """Raised by an attempt that failed in a way worth trying again (a 429, a 5xx, a
    refused connection). ``detail`` is for logs; ``retry_after`` is what the server asked
    for, in seconds, if it did."""

    def __init__(self, detail: str, *, retry_after: float | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        self.retry_after = retry_after


async def retry(
    attempt: Callable[[int], Awaitable[T]],
    *,
    backoff: Backoff,
    max_attempts: int | None,
    what: str,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    on_retry: Callable[[int, RetryLater, float], None] | None = None,
) -> T:
    """Run ``attempt(n)`` (``n`` counts from 1) until it returns, raises something other
    than ``RetryLater``, or ``max_attempts`` attempts (None: no limit) raised
    ``RetryLater`` — then that last ``RetryLater`` is raised.

    ``sleep`` waits between attempts; a caller that must stop early (shutting down, a
    deadline) gives one that raises. ``on_retry(n, error, delay)`` is told of each retry
    (metrics); ``what`` names the operation in the warning logged for it.
    """
    if max_attempts is not None and max_attempts < 1:
        raise ValueError(f"max_attempts must be >= 1 or None, got {max_attempts}")

    def wait(state: tenacity.RetryCallState) -> float:
        error = state.outcome.exception() if state.outcome else None
        retry_after = error.retry_after if isinstance(error, RetryLater) else None
        return backoff.delay(state.attempt_number, retry_after)

    def before_sleep(state: tenacity.RetryCallState) -> None:
        error = state.outcome.exception() if state.outcome else None
        assert isinstance(error, RetryLater)
        delay = state.upcoming_sleep
        log.warning("%s: %s (attempt %d); retrying in %.2fs", what, error.detail, state.attempt_number, delay)
        if on_retry is not None:
            on_retry(state.attempt_number, error, delay)

    controller = tenacity.AsyncRetrying(
        retry=tenacity.retry_if_exception_type(RetryLater),
        wait=wait,
        stop=tenacity.stop_never if max_attempts is None else tenacity.stop_after_attempt(max_attempts),
        sleep=sleep,
        before_sleep=before_sleep,
        reraise=True,
    )
    async for trial in controller:
        with trial:
            return await attempt(trial.retry_state.attempt_number)
    raise AssertionError("unreachable: tenacity either returns, raises or retries")  # pragma: no cover
