"""Event cadence, device registry and event log."""

from __future__ import annotations

from canarywatch.relay.events import DeviceRegistry, EventLog, raises_event


def test_events_on_first_frame_then_every_nth() -> None:
    assert [seq for seq in range(1, 12) if raises_event(seq, 5)] == [1, 6, 11]
    assert all(raises_event(seq, 1) for seq in range(1, 5))


def test_registry_assigns_stable_ids_in_registration_order() -> None:
    registry = DeviceRegistry()
    door = registry.device_for("bob", "door")
    yard = registry.device_for("alice", "yard")
    assert registry.device_for("bob", "door") == door
    assert registry.device(yard.device_id) == yard
    assert registry.ownership() == [(door.device_id, "bob"), (yard.device_id, "alice")]
    assert registry.version == 2


def test_same_camera_name_in_two_tenants_is_two_devices() -> None:
    registry = DeviceRegistry()
    assert registry.device_for("alice", "door") != registry.device_for("bob", "door")


def test_event_log_since_and_retention() -> None:
    log = EventLog(retention=3)
    events = [log.append("dev-1", time=float(i), seq=i) for i in range(1, 6)]
    assert [e.event_id for e in log.since(0)] == [3, 4, 5]
    assert [e.event_id for e in log.since(4)] == [5]
    assert log.get(events[0].event_id) is None
    assert log.get(5) == events[4]
