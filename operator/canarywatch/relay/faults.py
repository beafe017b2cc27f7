"""What each fault changes, as small pure decisions the relay consults.

Each fault is a realistic defect in one mechanism, not a "serve the wrong frame"
switch: the leak has to emerge from the cache or the check, under the same condition
as in the real incident, so that canarywatch is tested against the real failure shape.

- ``xiaomi-2019``: the low-bandwidth variant cache is keyed by camera name only (the
  low rung of the HLS ladder comes out of it too).
- ``wyze-2024``: the device→owner map rebuilt during outage recovery pairs devices
  with the wrong owners until the recovery window ends.
- ``stale-cache``: the snapshot cache ignores its TTL.
- ``idor``: the snapshot path does not check that the token's tenant owns the URL's.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence

from canarywatch.relay.config import Fault
from canarywatch.relay.state import Phase

__all__ = [
    "owner_map_is_scrambled",
    "rebuild_owner_map",
    "segment_cache_key",
    "snapshot_checks_owner",
    "snapshot_ttl",
    "variant_cache_key",
]


def variant_cache_key(fault: Fault, tenant: str, camera: str) -> Hashable:
    """Key of the low-bandwidth variant cache for one camera.

    The 2019 cache was introduced "to improve streaming quality" and keyed by the
    camera's id alone. Camera ids are only unique per tenant ("front-door" exists in
    many homes), so tenants sharing a camera name share one cache slot.
    """
    if fault is Fault.XIAOMI_2019:
        return ("camera", camera)
    return ("tenant-camera", tenant, camera)


def segment_cache_key(
    fault: Fault, tenant: str, camera: str, *, rung: str, window: int, part: bool = False
) -> Hashable:
    """Key of the video segment cache (``part``: of a Low-Latency part): the low rung is
    made by the low-bandwidth cache (``variant_cache_key``), so it loses the tenant under
    ``xiaomi-2019`` like every other low-bandwidth rendition; the high rung is always the
    camera's own."""
    what = ("part" if part else "segment", rung, window)
    if rung == "low":
        return (variant_cache_key(fault, tenant, camera), *what)
    return (("tenant-camera", tenant, camera), *what)


def snapshot_ttl(fault: Fault, *, ttl: float, stale_ttl: float | None) -> float | None:
    """How long a cached snapshot may be served; None means forever."""
    if fault is Fault.STALE_CACHE:
        return stale_ttl
    return ttl


def snapshot_checks_owner(fault: Fault) -> bool:
    """Whether ``live.jpg`` checks that the token's tenant is the URL's tenant.

    Only the snapshot path loses the check under ``idor``: the classic IDOR is one
    handler written without the ownership line the others have.
    """
    return fault is not Fault.IDOR


def owner_map_is_scrambled(fault: Fault, phase: Phase) -> bool:
    """Whether the device→owner map is built from mismatched orderings right now."""
    return fault is Fault.WYZE_2024 and phase is Phase.RECOVERING


def rebuild_owner_map(devices: Sequence[tuple[str, str]], *, scrambled: bool) -> dict[str, str]:
    """The device-id→owner map the thumbnail cache authorises against.

    ``devices`` is (device id, owner) in device-id order. A cache warming after an
    outage loads the id column and the owner column separately and zips them; the
    Wyze-class bug is that the owner column comes back in a different order (here
    rotated by one row, as from a replica that sorts differently), so each device is
    paired with its neighbour's owner. With two or more owners at least one device
    is always attributed to the wrong tenant.
    """
    device_ids = [device_id for device_id, _ in devices]
    owners = [owner for _, owner in devices]
    if scrambled and len(owners) > 1:
        owners = owners[1:] + owners[:1]
    return dict(zip(device_ids, owners, strict=True))
