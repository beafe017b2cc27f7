"""The one retry primitive: how long it waits, when it stops, what it hands back."""

from __future__ import annotations

import random

import pytest

from canarywatch.retrying import Backoff, RetryLater, backoff_delay, retry


class Sleeps:
    def __init__(self) -> None:
        self.waits: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)


def test_backoff_doubles_up_to_the_cap_with_equal_jitter() -> None:
    rng = random.Random(7)
    delays = [backoff_delay(n, base_delay=1.0, max_delay=8.0, rng=rng) for n in range(1, 8)]
    ceilings = [1, 2, 4, 8, 8, 8, 8]
    for delay, ceiling in zip(delays, ceilings, strict=True):
        assert ceiling / 2 <= delay <= ceiling


def test_a_servers_retry_after_is_honoured_but_never_beyond_the_cap() -> None:
    backoff = Backoff(0.1, 5.0, rng=random.Random(1))
    assert backoff.delay(1, retry_after=3.0) == 3.0
    assert backoff.delay(1, retry_after=60.0) == 5.0
    assert backoff.delay(1) <= 0.1


@pytest.mark.parametrize(("base", "cap"), [(0.0, 1.0), (2.0, 1.0)])
def test_a_backoff_that_cannot_back_off_is_refused(base: float, cap: float) -> None:
    with pytest.raises(ValueError, match="base <= cap"):
        Backoff(base, cap)


async def test_retries_until_the_attempt_settles() -> None:
    sleeps = Sleeps()
    seen: list[int] = []

    async def attempt(n: int) -> str:
        seen.append(n)
        if n < 3:
            raise RetryLater("HTTP 503", retry_after=0.5 if n == 2 else None)
        return "done"

    retried: list[int] = []
    result = await retry(
        attempt,
        backoff=Backoff(0.1, 1.0),
        max_attempts=5,
        what="test",
        sleep=sleeps,
        on_retry=lambda n, _e, _d: retried.append(n),
    )
    assert (result, seen, retried) == ("done", [1, 2, 3], [1, 2])
    assert sleeps.waits[1] == 0.5  # Retry-After beat the 0.1-0.2 s backoff


async def test_the_last_retry_later_is_raised_when_attempts_run_out() -> None:
    sleeps = Sleeps()

    async def attempt(n: int) -> None:
        raise RetryLater(f"HTTP 500 #{n}")

    with pytest.raises(RetryLater, match="HTTP 500 #3"):
        await retry(attempt, backoff=Backoff(0.1, 1.0), max_attempts=3, what="test", sleep=sleeps)
    assert len(sleeps.waits) == 2


async def test_any_other_error_ends_the_retry_at_once() -> None:
    calls = 0

    async def attempt(n: int) -> None:
        nonlocal calls
        calls += 1
        raise PermissionError("HTTP 403")

    with pytest.raises(PermissionError):
        await retry(attempt, backoff=Backoff(0.1, 1.0), max_attempts=None, what="test", sleep=Sleeps())
    assert calls == 1


async def test_a_sleep_that_raises_stops_the_retry() -> None:
    class Closing(Exception):
        pass

    async def closing(_seconds: float) -> None:
        raise Closing

    async def attempt(n: int) -> None:
        raise RetryLater("HTTP 502")

    with pytest.raises(Closing):
        await retry(attempt, backoff=Backoff(0.1, 1.0), max_attempts=None, what="test", sleep=closing)
