"""The published-vs-seen ledger: distinct own frames count, other tenants' and
unverified frames do not, and only cameras with frames accepted and none seen are
reported."""

from __future__ import annotations

from canarywatch.delivery import DeliveryLedger, summary_line
from canarywatch.markers import Observation, Payload, Status


def seen(tenant: str, camera: int, seq: int, status: Status = Status.VERIFIED) -> Observation:
    payload = Payload(b"abc", camera, seq, 1.0)
    return Observation(status, tenant=tenant, payload=payload)


def test_own_distinct_frames_count_once_and_others_not_at_all() -> None:
    ledger = DeliveryLedger()
    ledger.published("acme-7", 0, 10)
    ledger.published("acme-7", 1, 10)
    new = [ledger.seen("acme-7", seen("acme-7", 0, seq), at=float(seq)) for seq in (1, 2, 2, 3)]
    # a snapshot poll showing frame 2 twice: new once (what the seen counter counts)
    assert [c is not None for c in new] == [True, True, False, True]
    assert ledger.seen("acme-7", seen("bravo-2", 1, 5), at=5.0) is None  # a leak is not a delivery
    assert ledger.seen("acme-7", seen("acme-7", 1, 6, Status.DEGRADED), at=6.0) is None
    (zero, one) = ledger.cameras()
    assert (zero.seen, zero.last_seen_at, one.seen) == (3, 3.0, 0)
    assert [(c.tenant, c.camera) for c in ledger.undelivered(min_published=5)] == [("acme-7", 1)]
    assert ledger.undelivered(min_published=11) == []
    line = summary_line(ledger.summary(min_published=5))
    assert line == (
        "frames published 20, seen by their own tenants 3; "
        "FramesNotDelivered: 1 camera(s) accepted frames nobody was shown (acme-7/1)"
    )


def test_the_seen_window_stays_bounded() -> None:
    ledger = DeliveryLedger()
    for seq in range(20_000):
        ledger.seen("acme-7", seen("acme-7", 0, seq), at=1.0)
    camera = ledger.camera("acme-7", 0)
    assert camera.seen == 20_000 and len(camera._seqs) <= 2 * 4096 + 1
