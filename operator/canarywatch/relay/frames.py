"""The origin of truth for frames: each camera's latest frame, and who is waiting for it.

Caches in front of this store can be wrong (that is what the faults do); the store
itself always holds, per (tenant, camera), the last frame that camera delivered.
"""

from __future__ import annotations

import asyncio
from collections import deque
from dataclasses import dataclass

__all__ = ["CameraKey", "Frame", "FrameStore"]

CameraKey = tuple[str, str]  # (tenant, camera)


@dataclass(frozen=True)
class Frame:
    """One frame as the camera delivered it, with where and when it came from."""

    tenant: str
    camera: str
    #: per-camera sequence number, 1 for the camera's first frame.
    seq: int
    #: relay-wide arrival order; later frames of any camera have larger ids.
    ingest_id: int
    received_at: float
    jpeg: bytes


class FrameStore:
    """Latest frame per camera, its recent frames (what video segments are made of),
    plus wake-ups for MJPEG streams waiting on a camera."""

    def __init__(self, *, history: int = 64) -> None:
        self._latest: dict[CameraKey, Frame] = {}
        self._history: dict[CameraKey, deque[Frame]] = {}
        self._history_length = history
        self._ingest_count = 0
        # One event per camera that somebody waits on, replaced on every publish so a
        # waiter never sees a stale "set" from an earlier frame.
        self._waiters: dict[CameraKey, asyncio.Event] = {}

    def publish(self, tenant: str, camera: str, jpeg: bytes, *, now: float) -> Frame:
        key = (tenant, camera)
        previous = self._latest.get(key)
        self._ingest_count += 1
        frame = Frame(
            tenant=tenant,
            camera=camera,
            seq=1 if previous is None else previous.seq + 1,
            ingest_id=self._ingest_count,
            received_at=now,
            jpeg=jpeg,
        )
        self._latest[key] = frame
        self._history.setdefault(key, deque(maxlen=self._history_length)).append(frame)
        waiter = self._waiters.pop(key, None)
        if waiter is not None:
            waiter.set()
        return frame

    def latest(self, tenant: str, camera: str) -> Frame | None:
        return self._latest.get((tenant, camera))

    def recent(self, tenant: str, camera: str) -> tuple[Frame, ...]:
        """The camera's retained frames, oldest first (empty for an unknown camera)."""
        return tuple(self._history.get((tenant, camera), ()))

    def cameras_of(self, tenant: str) -> list[str]:
        """The cameras of ``tenant`` that have delivered a frame, by name."""
        return sorted(camera for owner, camera in self._latest if owner == tenant)

    async def wait_for_publish(self, tenant: str, camera: str) -> None:
        """Return after the camera's next frame, or after ``wake_all``."""
        waiter = self._waiters.setdefault((tenant, camera), asyncio.Event())
        await waiter.wait()

    def wake_all(self) -> None:
        """Release every waiter so streams re-check whether they may still serve."""
        waiters, self._waiters = self._waiters, {}
        for waiter in waiters.values():
            waiter.set()
