"""Devices and motion-style events: the data behind the event-thumbnail feed.

``DeviceRegistry`` is the relay's source of truth for who owns which camera; the
thumbnail cache keeps a derived device→owner map (see ``caches.ThumbnailCache``),
and it is that copy, not this registry, that goes wrong under ``wyze-2024``.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

__all__ = ["Device", "DeviceRegistry", "Event", "EventLog", "raises_event"]


def raises_event(seq: int, every: int) -> bool:
    """Whether a camera's ``seq``-th frame raises an event: the first, then every N-th
    after it, so a new camera shows up in the feed at once."""
    return (seq - 1) % every == 0


@dataclass(frozen=True)
class Device:
    device_id: str
    tenant: str
    camera: str


class DeviceRegistry:
    """Every camera ever seen, with a relay-assigned opaque device id."""

    def __init__(self) -> None:
        self._by_camera: dict[tuple[str, str], Device] = {}
        self._by_id: dict[str, Device] = {}

    @property
    def version(self) -> int:
        """Changes whenever a device is added, so derived maps know to rebuild."""
        return len(self._by_id)

    def device_for(self, tenant: str, camera: str) -> Device:
        """The camera's device, registered on first sight."""
        device = self._by_camera.get((tenant, camera))
        if device is None:
            # Zero-padded so that id order is registration order, like a DB sequence.
            device = Device(f"dev-{len(self._by_id) + 1:06d}", tenant, camera)
            self._by_camera[(tenant, camera)] = device
            self._by_id[device.device_id] = device
        return device

    def device(self, device_id: str) -> Device:
        """A registered device; ids come only from ``device_for``, so unknown is a bug."""
        return self._by_id[device_id]

    def ownership(self) -> list[tuple[str, str]]:
        """(device id, owner) for every device, in device-id order."""
        return [(d.device_id, d.tenant) for d in sorted(self._by_id.values(), key=_id_order)]


@dataclass(frozen=True)
class Event:
    event_id: int
    device_id: str
    time: float
    #: the camera frame sequence number the event's thumbnail was made from.
    seq: int


class EventLog:
    """Relay-wide event history, oldest dropped past ``retention``."""

    def __init__(self, *, retention: int) -> None:
        self._events: OrderedDict[int, Event] = OrderedDict()
        self._retention = retention
        self._last_id = 0

    def append(self, device_id: str, *, time: float, seq: int) -> Event:
        self._last_id += 1
        event = Event(self._last_id, device_id, time, seq)
        self._events[event.event_id] = event
        while len(self._events) > self._retention:
            self._events.popitem(last=False)
        return event

    def get(self, event_id: int) -> Event | None:
        return self._events.get(event_id)

    def since(self, event_id: int) -> list[Event]:
        """Events newer than ``event_id``, oldest first."""
        return [e for e in self._events.values() if e.event_id > event_id]


def _id_order(device: Device) -> str:
    return device.device_id
