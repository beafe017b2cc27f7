"""When to re-assert an engaged kill switch (pure: time comes in as ``now``).

A leaked frame that arrives while the kill switch says Engaged means the kill does not
hold: a GitOps controller scaled the workload back, a flag was flipped back, a
NetworkPolicy is not enforced. Both shells then run the actions again
(``KillSwitch.reassert``), but not for every frame of a storm: ``Holding`` spaces the
re-assertions with the package's one backoff (``retrying.Backoff``), doubling while the
leak goes on, and says which leaked frames count as "while suspended" (those received
once the engagement had completed, after a grace for frames already in flight).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from canarywatch.retrying import Backoff

__all__ = ["IN_FLIGHT_GRACE_SECONDS", "Holding"]

#: A frame received this soon after the kill completed may have been requested before
#: it (a slow network profile stretches one fetch over seconds): not counted as a leak
#: through an engaged switch.
IN_FLIGHT_GRACE_SECONDS = 5.0


@dataclass
class Holding:
    """Paces re-assertions of one integration's engaged kill switch."""

    backoff: Backoff = field(default_factory=lambda: Backoff(2.0, 120.0))
    grace: float = IN_FLIGHT_GRACE_SECONDS
    reasserted: int = 0  # re-assertions since the engagement (or the last reset)
    _next_at: float = 0.0

    def leaked_while_engaged(self, *, received_at: float, engaged_until: float) -> bool:
        """True for a frame received once the engagement completed at ``engaged_until``."""
        return received_at > engaged_until + self.grace

    def due(self, now: float) -> bool:
        """True when a re-assertion may run now."""
        return now >= self._next_at

    def note(self, now: float) -> float:
        """A re-assertion ran at ``now``; returns the delay before the next may run."""
        self.reasserted += 1
        delay = self.backoff.delay(self.reasserted)
        self._next_at = now + delay
        return delay

    def reset(self) -> None:
        """The switch was resumed or engaged afresh: the next leak re-asserts at once."""
        self.reasserted = 0
        self._next_at = 0.0
