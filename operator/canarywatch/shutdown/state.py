"""Where a kill switch keeps its record: the ``StateStore`` protocol, and the stores of
standalone mode (a JSON file; memory). The operator's store is the CameraIntegration's
``status.killSwitch`` (``controller.suspension``)."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Protocol

from canarywatch.files import atomic_write
from canarywatch.shutdown.records import KillSwitchRecord

__all__ = [
    "STATE_VERSION",
    "FileStore",
    "KillSwitchError",
    "KillSwitchStateError",
    "MemoryStore",
    "StateStore",
]

STATE_VERSION = 2


class KillSwitchError(Exception):
    """Base class for kill-switch errors."""


class KillSwitchStateError(KillSwitchError):
    """The state cannot be read, written or trusted (the cause is kept)."""


class StateStore(Protocol):
    """Holds one integration's ``KillSwitchRecord`` across restarts.

    ``save`` raising ``KillSwitchStateError`` does not stop the actions (see
    ``KillSwitch``); any other exception does, for a store that must not let an action
    run before what it replaces is recorded.
    """

    where: str  # for messages: the file, or the object

    def load(self) -> KillSwitchRecord | None: ...

    async def save(self, record: KillSwitchRecord) -> None: ...


class MemoryStore:
    """No persistence: a restart forgets the kill switch (tests, throwaway runs)."""

    where = "memory"

    def __init__(self, record: KillSwitchRecord | None = None) -> None:
        self.record = record

    def load(self) -> KillSwitchRecord | None:
        return self.record

    async def save(self, record: KillSwitchRecord) -> None:
        self.record = record


class FileStore:
    """A JSON file, written atomically (a crash leaves the old or the new file)."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self.where = str(self.path)

    def load(self) -> KillSwitchRecord | None:
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return None
        except OSError as error:
            raise KillSwitchStateError(f"cannot read kill-switch state {self.path}: {error}") from error
        try:
            document = json.loads(text)
            version = document.get("version")
            if version == 1:
                return KillSwitchRecord.from_dict(_from_version_1(document["record"]))
            if version != STATE_VERSION:
                raise ValueError(f"unsupported version {version!r}")
            return KillSwitchRecord.from_dict(document["record"])
        except (ValueError, KeyError, TypeError, AttributeError) as error:
            # Refuse rather than guess: "not engaged" could hide a switched-off integration.
            raise KillSwitchStateError(
                f"kill-switch state {self.path} is not valid ({error}); inspect it, then move it away"
            ) from error

    async def save(self, record: KillSwitchRecord) -> None:
        document = {"version": STATE_VERSION, "record": record.to_dict()}
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            atomic_write(self.path, json.dumps(document, indent=2).encode())
        except OSError as error:
            raise KillSwitchStateError(f"cannot write kill-switch state {self.path}: {error}") from error


_V1_STATES = {
    "engaging": "Engaging",
    "engaged": "Engaged",
    "engage_failed": "EngageFailed",
    "resuming": "Resuming",
    "resumed": "Resumed",
    "resume_failed": "ResumeFailed",
}


def _from_version_1(record: Mapping[str, Any]) -> dict[str, Any]:
    """A version-1 record (lower-case words, separate engage and resume lists) in the
    current shape, so an engaged switch survives the upgrade."""
    resumed = {r["action"]: r for r in record.get("resume_results", ())}
    actions = []
    for engaged in record.get("engage_results", ()):
        latest = resumed.get(engaged["action"], engaged)
        actions.append(
            {
                "name": latest["action"],
                "kind": engaged["kind"],
                "step": latest["step"],
                "result": str(latest["status"]).capitalize(),
                "detail": latest["detail"],
                "attempts": latest["attempts"],
                "started_at": latest["started_at"],
                "finished_at": latest["finished_at"],
            }
        )
    return {**record, "state": _V1_STATES[record["phase"]], "actions": actions}
