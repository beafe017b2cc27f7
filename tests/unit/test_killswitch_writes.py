"""What the kill switch records before it acts (``shutdown.KillSwitch``): one write,
saying the engagement, the action about to run and what it will replace. In the
operator each write is a round trip to a busy API server while the integration leaks."""

from __future__ import annotations

from typing import Any

from canarywatch.shutdown import ActionContext, ActionOutcome, KillSwitch, Result, SwitchState
from canarywatch.shutdown.records import KillSwitchRecord
from canarywatch.shutdown.state import MemoryStore


class CountingStore(MemoryStore):
    def __init__(self) -> None:
        super().__init__()
        self.saved: list[KillSwitchRecord] = []

    async def save(self, record: KillSwitchRecord) -> None:
        self.saved.append(record)
        await super().save(record)


class ScaleDown:
    """A snapshotting action that notes what had been recorded when it acted."""

    name, kind, reversible, target = "scale-ingest", "scale", True, "Deployment ns/ingest"

    def __init__(self, store: CountingStore) -> None:
        self.store = store
        self.recorded_when_acting: list[KillSwitchRecord] = []

    async def snapshot(self) -> dict[str, Any]:
        return {"replicas": 3}

    async def engage(self, context: ActionContext) -> ActionOutcome:
        self.recorded_when_acting = list(self.store.saved)
        return ActionOutcome(True, "scaled to 0")

    async def resume(self, context: ActionContext) -> ActionOutcome:
        return ActionOutcome(True, "restored")

    def describe(self) -> dict[str, Any]:
        return {"type": self.kind}


async def test_one_write_before_the_first_action_acts() -> None:
    store = CountingStore()
    action = ScaleDown(store)
    switch = KillSwitch([action], integration="relay", store=store)
    record = await switch.engage("leak-1", "cross_tenant")
    assert record.state is SwitchState.ENGAGED
    [before] = action.recorded_when_acting
    assert before.state is SwitchState.ENGAGING and before.incident == "leak-1"
    [pending] = before.actions
    assert (pending.name, pending.result, pending.previous) == (
        "scale-ingest",
        Result.PENDING,
        {"replicas": 3},
    )
