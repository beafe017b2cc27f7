"""The three caches on their own: TTL, once-per-frame transcoding, per-device bounds."""

from __future__ import annotations

from canarywatch.relay.caches import SnapshotCache, ThumbnailCache, Variant, VariantCache
from canarywatch.relay.frames import Frame


def frame(tenant: str, camera: str, seq: int, ingest_id: int) -> Frame:
    return Frame(tenant, camera, seq, ingest_id, received_at=0.0, jpeg=f"{tenant}{seq}".encode())


class Origin:
    """A load function that returns whatever frame the camera last delivered."""

    def __init__(self, current: Frame) -> None:
        self.current: Frame | None = current
        self.loads = 0

    def __call__(self) -> Frame | None:
        self.loads += 1
        return self.current


def test_snapshot_cache_refreshes_after_ttl() -> None:
    cache, origin = SnapshotCache(), Origin(frame("a", "c", 1, 1))
    first = cache.read_through(("a", "c"), now=0.0, ttl=1.0, load=origin)
    origin.current = frame("a", "c", 2, 2)
    assert cache.read_through(("a", "c"), now=0.9, ttl=1.0, load=origin) == first
    assert cache.read_through(("a", "c"), now=1.0, ttl=1.0, load=origin) == origin.current


def test_snapshot_cache_with_zero_ttl_always_loads() -> None:
    cache, origin = SnapshotCache(), Origin(frame("a", "c", 1, 1))
    for _ in range(3):
        cache.read_through(("a", "c"), now=0.0, ttl=0.0, load=origin)
    assert origin.loads == 3


def test_snapshot_cache_without_ttl_never_refreshes_until_cleared() -> None:
    cache, origin = SnapshotCache(), Origin(frame("a", "c", 1, 1))
    first = cache.read_through(("a", "c"), now=0.0, ttl=None, load=origin)
    origin.current = frame("a", "c", 2, 2)
    assert cache.read_through(("a", "c"), now=1e9, ttl=None, load=origin) == first
    cache.clear()
    assert cache.read_through(("a", "c"), now=1e9, ttl=None, load=origin) == origin.current


def test_snapshot_cache_does_not_cache_absence() -> None:
    cache, origin = SnapshotCache(), Origin(frame("a", "c", 1, 1))
    origin.current = None
    assert cache.read_through(("a", "c"), now=0.0, ttl=None, load=origin) is None
    origin.current = frame("a", "c", 1, 1)
    assert cache.read_through(("a", "c"), now=0.0, ttl=None, load=origin) == origin.current


def test_variant_is_reused_until_a_newer_source_frame_arrives() -> None:
    cache = VariantCache()
    old, new = frame("a", "c", 1, 10), frame("a", "c", 2, 11)
    assert cache.lookup("k", old) is None
    cache.store("k", Variant.of(old, b"small-1"))
    assert cache.lookup("k", old) == Variant.of(old, b"small-1")
    assert cache.lookup("k", new) is None


def test_variant_from_an_older_frame_never_replaces_a_newer_one() -> None:
    cache = VariantCache()
    old, new = frame("a", "c", 1, 10), frame("a", "c", 2, 11)
    cache.store("k", Variant.of(new, b"small-2"))
    cache.store("k", Variant.of(old, b"small-1"))  # a slow concurrent transcode
    variant = cache.lookup("k", old)
    assert variant is not None and variant.jpeg == b"small-2"


def test_shared_key_serves_the_newest_frame_of_any_tenant() -> None:
    """The mechanism behind xiaomi-2019, shown on the cache itself."""
    cache = VariantCache()
    alice, bob = frame("alice", "door", 1, 1), frame("bob", "door", 1, 2)
    cache.store("door", Variant.of(bob, b"bob-small"))
    variant = cache.lookup("door", alice)
    assert variant is not None and variant.source_tenant == "bob"


def test_variant_cache_evicts_least_recently_used() -> None:
    cache = VariantCache(max_entries=2)
    frames = [frame("a", f"c{i}", 1, i) for i in range(3)]
    cache.store("k0", Variant.of(frames[0], b"0"))
    cache.store("k1", Variant.of(frames[1], b"1"))
    assert cache.lookup("k0", frames[0]) is not None  # k0 is now the most recent
    cache.store("k2", Variant.of(frames[2], b"2"))
    assert cache.lookup("k1", frames[1]) is None
    assert cache.lookup("k0", frames[0]) is not None


def test_thumbnails_are_bounded_per_device() -> None:
    cache = ThumbnailCache(per_device=2)
    for event_id in (1, 2, 3):
        cache.put("dev-1", event_id, f"t{event_id}".encode())
    cache.put("dev-2", 4, b"t4")
    assert cache.get("dev-1", 1) is None
    assert cache.get("dev-1", 3) == b"t3"
    assert cache.get("dev-2", 4) == b"t4"
    assert cache.get("dev-3", 4) is None


def test_owner_map_is_rebuilt_only_when_its_tag_changes() -> None:
    cache = ThumbnailCache()
    builds: list[str] = []

    def build(owner: str) -> dict[str, str]:
        builds.append(owner)
        return {"dev-1": owner}

    assert cache.owners(("v1",), lambda: build("alice")) == {"dev-1": "alice"}
    assert cache.owners(("v1",), lambda: build("bob")) == {"dev-1": "alice"}
    assert cache.owners(("v2",), lambda: build("bob")) == {"dev-1": "bob"}
    cache.invalidate_owners()
    cache.owners(("v2",), lambda: build("carol"))
    assert builds == ["alice", "bob", "carol"]
