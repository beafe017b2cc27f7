"""The relay's three caches, each the home of one incident class.

- ``SnapshotCache``: what ``live.jpg`` serves, refreshed after a TTL (``stale-cache``).
- ``VariantCache``: low-bandwidth renditions, transcoded once per source frame
  (``xiaomi-2019`` when its key loses the tenant).
- ``ThumbnailCache``: event thumbnails by device, authorised through a device→owner
  map that is rebuilt after outages (``wyze-2024``).

The caches do not know about faults; the relay passes in the key, the TTL or the
owner map that the active fault dictates (see ``faults``).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Hashable, Mapping
from dataclasses import dataclass

from canarywatch.relay.frames import CameraKey, Frame

__all__ = ["SnapshotCache", "ThumbnailCache", "Variant", "VariantCache"]

# Tag of an owner map that has never been built (or was invalidated): equal to nothing.
_UNBUILT: Hashable = object()


class SnapshotCache:
    """Per-camera snapshot as last served, reused until it is ``ttl`` seconds old."""

    def __init__(self) -> None:
        self._entries: dict[CameraKey, tuple[float, Frame]] = {}

    def read_through(
        self,
        key: CameraKey,
        *,
        now: float,
        ttl: float | None,
        load: Callable[[], Frame | None],
    ) -> Frame | None:
        """The cached frame if younger than ``ttl`` (None: never expires), else a fresh
        one from ``load``, cached from ``now``."""
        entry = self._entries.get(key)
        if entry is not None:
            cached_at, frame = entry
            if ttl is None or now - cached_at < ttl:
                return frame
        fresh = load()
        if fresh is not None:
            self._entries[key] = (now, fresh)
        return fresh

    def clear(self) -> None:
        self._entries.clear()


@dataclass(frozen=True)
class Variant:
    """A transcoded rendition and the source frame it was made from."""

    source_tenant: str
    source_camera: str
    source_seq: int
    source_ingest_id: int
    jpeg: bytes

    @classmethod
    def of(cls, frame: Frame, jpeg: bytes) -> Variant:
        return cls(frame.tenant, frame.camera, frame.seq, frame.ingest_id, jpeg)


class VariantCache:
    """Low-bandwidth renditions, bounded, least recently used evicted first."""

    def __init__(self, *, max_entries: int = 4096) -> None:
        self._entries: OrderedDict[Hashable, Variant] = OrderedDict()
        self._max_entries = max_entries

    def lookup(self, key: Hashable, frame: Frame) -> Variant | None:
        """A cached variant at least as new as ``frame``, else None (transcode it).

        Freshness is "made from this frame or a later one", judged by arrival order
        alone. That is right as long as the key identifies one camera; it is also
        exactly why a key shared between tenants serves another tenant's newer frame.
        """
        variant = self._entries.get(key)
        if variant is None or variant.source_ingest_id < frame.ingest_id:
            return None
        self._entries.move_to_end(key)
        return variant

    def store(self, key: Hashable, variant: Variant) -> None:
        current = self._entries.get(key)
        # Two viewers may transcode concurrently; never let an older result win.
        if current is not None and current.source_ingest_id > variant.source_ingest_id:
            return
        self._entries[key] = variant
        self._entries.move_to_end(key)
        while len(self._entries) > self._max_entries:
            self._entries.popitem(last=False)

    def clear(self) -> None:
        self._entries.clear()


class ThumbnailCache:
    """Event thumbnails keyed by device, and the device→owner map that guards them."""

    def __init__(self, *, per_device: int = 64) -> None:
        self._thumbnails: dict[str, OrderedDict[int, bytes]] = {}
        self._per_device = per_device
        self._owners: dict[str, str] = {}
        self._owners_tag: Hashable = _UNBUILT

    def put(self, device_id: str, event_id: int, jpeg: bytes) -> None:
        slot = self._thumbnails.setdefault(device_id, OrderedDict())
        slot[event_id] = jpeg
        while len(slot) > self._per_device:
            slot.popitem(last=False)

    def get(self, device_id: str, event_id: int) -> bytes | None:
        slot = self._thumbnails.get(device_id)
        return None if slot is None else slot.get(event_id)

    def owners(self, tag: Hashable, build: Callable[[], dict[str, str]]) -> Mapping[str, str]:
        """The device→owner map, rebuilt with ``build`` whenever ``tag`` changes.

        Rebuilding lazily on first use after a change (new device, end of an outage,
        end of the recovery window) is how a warming cache behaves, and keeps the
        map consistent with what the feed and the thumbnail check both read.
        """
        if tag != self._owners_tag:
            self._owners = build()
            self._owners_tag = tag
        return self._owners

    def invalidate_owners(self) -> None:
        self._owners_tag = _UNBUILT
