"""The PagerDuty outbox: events held until PagerDuty has accepted them.

Delivery is at-least-once: an event whose 202 was lost to a crash is sent again after
the restart, which is harmless because PagerDuty folds every trigger with an open
``dedup_key`` into the alert it already has. ``Outbox`` keeps them in a JSON-lines
file (standalone mode), ``MemoryOutbox`` in memory; a store may also record each
attempt before it is made (``attempting``: the operator writes it to the
LeakIncident's ``status.paged``).

The routing key is stored in the outbox file (mode 0600, needed to resend after a
restart) but never logged.
"""

from __future__ import annotations

import json
import logging
import os
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from canarywatch.files import atomic_write
from canarywatch.incidents.events import InvalidEventError, PagerDutyError

__all__ = ["MemoryOutbox", "Outbox", "OutboxEntry", "OutboxError", "OutboxStore"]

log = logging.getLogger(__name__)


class OutboxError(PagerDutyError):
    """The outbox file could not be read or written (the OSError is the cause)."""


@dataclass(frozen=True)
class OutboxEntry:
    """One pending event; ``id`` is unique per outbox and stable across restarts."""

    id: str
    event: dict[str, Any]


class OutboxStore(Protocol):
    """A FIFO of events not yet accepted by PagerDuty (``Outbox``, ``MemoryOutbox``)."""

    def append(self, event: Mapping[str, Any]) -> OutboxEntry:
        """Store a copy of ``event`` at the end (on disk, for ``Outbox``, when this returns)."""
        ...

    def remove(self, entry_id: str) -> None:
        """Forget a delivered or rejected entry; unknown ids are ignored (idempotent)."""
        ...

    def pending(self) -> list[OutboxEntry]:
        """The pending entries, oldest first."""
        ...

    async def attempting(self, entry: OutboxEntry, attempt: int) -> None:
        """Called before delivery attempt ``attempt`` (1-based, per send) of ``entry``:
        a store that records attempts does so here, before the request goes out."""
        ...

    def __len__(self) -> int: ...


class _EntryList:
    def __init__(self) -> None:
        self._entries: list[OutboxEntry] = []

    def pending(self) -> list[OutboxEntry]:
        return list(self._entries)

    def __len__(self) -> int:
        return len(self._entries)

    async def attempting(self, entry: OutboxEntry, attempt: int) -> None:
        """Nothing to record: the entry itself is the record until it is removed."""

    @staticmethod
    def _new_entry(event: Mapping[str, Any]) -> OutboxEntry:
        # A JSON round trip both deep-copies and proves the event can be persisted, so
        # the memory and file variants accept exactly the same events.
        try:
            copied = json.loads(json.dumps(event, allow_nan=False))
        except (TypeError, ValueError) as exc:
            raise InvalidEventError([f"event: not JSON-serializable ({exc})"]) from exc
        return OutboxEntry(id=uuid.uuid4().hex, event=copied)


class MemoryOutbox(_EntryList):
    """Outbox kept in memory only, for callers that persist delivery state elsewhere
    (the operator records it in the ``LeakIncident`` status)."""

    def append(self, event: Mapping[str, Any]) -> OutboxEntry:
        entry = self._new_entry(event)
        self._entries.append(entry)
        return entry

    def remove(self, entry_id: str) -> None:
        self._entries = [entry for entry in self._entries if entry.id != entry_id]


class Outbox(_EntryList):
    """Outbox backed by a JSON-lines file: one ``{"id": …, "event": …}`` per line.

    ``append`` appends one line and fsyncs; ``remove`` rewrites the file to a temporary
    sibling and ``os.replace``-s it, so a crash leaves either the old or the new file,
    never a mix. The only damage a crash can do is a cut-short last line; it is skipped
    with a warning when the file is opened (and the file is rewritten clean, so the next
    append does not glue onto it). The file holds routing keys: it is created 0600.

    One process owns one outbox file; two writers would resend each other's events.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        super().__init__()
        self.path = Path(path)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._entries = self._load()
        except OSError as exc:
            raise OutboxError(f"cannot open outbox {self.path}: {exc}") from exc

    def append(self, event: Mapping[str, Any]) -> OutboxEntry:
        entry = self._new_entry(event)
        try:
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            with os.fdopen(fd, "wb") as handle:
                handle.write(_entry_line(entry))
                handle.flush()
                os.fsync(handle.fileno())
        except OSError as exc:
            raise OutboxError(f"cannot append to outbox {self.path}: {exc}") from exc
        self._entries.append(entry)
        return entry

    def remove(self, entry_id: str) -> None:
        remaining = [entry for entry in self._entries if entry.id != entry_id]
        if len(remaining) != len(self._entries):
            self._rewrite(remaining)
            self._entries = remaining

    def _load(self) -> list[OutboxEntry]:
        if not self.path.exists():
            return []
        raw = self.path.read_bytes()
        lines = raw.split(b"\n")
        numbered = [(number, line) for number, line in enumerate(lines, 1) if line.strip()]
        entries: list[OutboxEntry] = []
        damaged = False
        for number, line in numbered:
            try:
                entries.append(_entry_from_line(line))
            except ValueError as exc:
                damaged = True
                where = "last line" if number == numbered[-1][0] else f"line {number}"
                log.warning(
                    "outbox %s: skipping unreadable %s (%s); most likely a write cut short by a crash",
                    self.path,
                    where,
                    exc,
                )
        if damaged or not raw.endswith(b"\n"):
            self._rewrite(entries)
        return entries

    def _rewrite(self, entries: Sequence[OutboxEntry]) -> None:
        try:
            atomic_write(self.path, b"".join(_entry_line(entry) for entry in entries))
        except OSError as exc:
            raise OutboxError(f"cannot rewrite outbox {self.path}: {exc}") from exc


def _entry_line(entry: OutboxEntry) -> bytes:
    record = {"id": entry.id, "event": entry.event}
    return json.dumps(record, ensure_ascii=False, separators=(",", ":")).encode() + b"\n"


def _entry_from_line(line: bytes) -> OutboxEntry:
    record = json.loads(line)  # JSONDecodeError and UnicodeDecodeError are ValueErrors
    if not (
        isinstance(record, dict)
        and isinstance(record.get("id"), str)
        and isinstance(record.get("event"), dict)
    ):
        raise ValueError("not an outbox record")
    return OutboxEntry(id=record["id"], event=record["event"])
