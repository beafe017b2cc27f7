"""Each fault's decision, and that ``none`` never takes a leaking branch."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from canarywatch.relay.config import Fault
from canarywatch.relay.faults import (
    owner_map_is_scrambled,
    rebuild_owner_map,
    snapshot_checks_owner,
    snapshot_ttl,
    variant_cache_key,
)
from canarywatch.relay.state import Phase


def test_variant_key_drops_the_tenant_only_under_xiaomi() -> None:
    for fault in Fault:
        shared = variant_cache_key(fault, "alice", "door") == variant_cache_key(fault, "bob", "door")
        assert shared is (fault is Fault.XIAOMI_2019)
        # Different camera names never share a slot, whatever the fault.
        assert variant_cache_key(fault, "alice", "door") != variant_cache_key(fault, "alice", "yard")


def test_snapshot_ttl_is_replaced_only_under_stale_cache() -> None:
    for fault in Fault:
        ttl = snapshot_ttl(fault, ttl=0.5, stale_ttl=None)
        assert ttl == (None if fault is Fault.STALE_CACHE else 0.5)
    assert snapshot_ttl(Fault.STALE_CACHE, ttl=0.5, stale_ttl=3600.0) == 3600.0


def test_only_idor_skips_the_snapshot_owner_check() -> None:
    assert [f for f in Fault if not snapshot_checks_owner(f)] == [Fault.IDOR]


def test_owner_map_is_scrambled_only_for_wyze_while_recovering() -> None:
    scrambled = {(f, p) for f in Fault for p in Phase if owner_map_is_scrambled(f, p)}
    assert scrambled == {(Fault.WYZE_2024, Phase.RECOVERING)}


DEVICES = [("dev-1", "alice"), ("dev-2", "alice"), ("dev-3", "bob"), ("dev-4", "carol")]


def test_correct_rebuild_is_the_registry() -> None:
    assert rebuild_owner_map(DEVICES, scrambled=False) == dict(DEVICES)


def test_scrambled_rebuild_pairs_each_device_with_its_neighbours_owner() -> None:
    assert rebuild_owner_map(DEVICES, scrambled=True) == {
        "dev-1": "alice",
        "dev-2": "bob",
        "dev-3": "carol",
        "dev-4": "alice",
    }


def test_a_single_device_cannot_be_scrambled() -> None:
    assert rebuild_owner_map([("dev-1", "alice")], scrambled=True) == {"dev-1": "alice"}


ownerships = st.lists(st.sampled_from(["alice", "bob", "carol", "dave"]), min_size=1, max_size=30).map(
    lambda owners: [(f"dev-{i:03d}", owner) for i, owner in enumerate(owners)]
)


@given(ownerships)
def test_scrambling_misattributes_whenever_two_tenants_exist(
    devices: list[tuple[str, str]],
) -> None:
    scrambled = rebuild_owner_map(devices, scrambled=True)
    assert set(scrambled) == {device for device, _ in devices}
    wrong = [d for d, owner in devices if scrambled[d] != owner]
    assert bool(wrong) is (len({owner for _, owner in devices}) > 1)
