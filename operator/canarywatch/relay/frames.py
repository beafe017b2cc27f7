"""The origin of truth for frames: each camera's latest frame, and who is waiting for it.

Caches in front of this store can be wrong (that is what the faults do); the store
itself always holds, per (tenant, camera), the last frame that camera delivered.
"""

from __future__ import annotations

import asyncio
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
    """Latest frame per camera, plus wake-ups for MJPEG streams waiting on a camera."""

    def __init__(self) -> None:
        self._latest: dict[CameraKey, Frame] = {}
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
        waiter = self._waiters.pop(key, None)
        if waiter is not None:
            waiter.set()
        return frame

    def latest(self, tenant: str, camera: str) -> Frame | None:
        return self._latest.get((tenant, camera))

    async def wait_for_publish(self, tenant: str, camera: str) -> None:
        """Return after the camera's next frame, or after ``wake_all``."""
        waiter = self._waiters.setdefault((tenant, camera), asyncio.Event())
        await waiter.wait()

    def wake_all(self) -> None:
        """Release every waiter so streams re-check whether they may still serve."""
        waiters, self._waiters = self._waiters, {}
        for waiter in waiters.values():
            waiter.set()
