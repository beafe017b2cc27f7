"""``shutdown.Holding``: which leaked frames count against an engaged kill switch, and
how often its actions may run again while they keep coming."""

from __future__ import annotations

import random

from canarywatch.retrying import Backoff
from canarywatch.shutdown import IN_FLIGHT_GRACE_SECONDS, Holding


def test_frames_in_flight_when_the_kill_completed_do_not_count() -> None:
    holding = Holding()
    assert not holding.leaked_while_engaged(received_at=100.0, engaged_until=99.0)
    assert not holding.leaked_while_engaged(received_at=99.0 + IN_FLIGHT_GRACE_SECONDS, engaged_until=99.0)
    assert holding.leaked_while_engaged(received_at=99.1 + IN_FLIGHT_GRACE_SECONDS, engaged_until=99.0)


def test_reassertions_back_off_while_the_leak_goes_on_and_reset_on_resume() -> None:
    holding = Holding(backoff=Backoff(2.0, 16.0, rng=random.Random(1)))
    assert holding.due(0.0)
    delays = []
    now = 0.0
    for _ in range(6):
        delay = holding.note(now)
        assert not holding.due(now + delay - 0.01) and holding.due(now + delay)
        delays.append(delay)
        now += delay
    assert all(1.0 <= d <= 16.0 for d in delays) and delays[-1] >= 8.0  # doubled up to the cap
    holding.reset()
    assert holding.due(now) and holding.reasserted == 0
