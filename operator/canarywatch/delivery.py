"""Published vs seen: each canary camera's frames accepted by the integration, against
the frames of that camera its own tenant's viewers were shown (pure).

A leak check alone cannot tell an integration that serves every tenant its own frames
from one that answers 2xx to every upload and serves nothing: both raise no incident.
The ledger makes the second visible: a camera whose frames were accepted but never
shown to its tenant is *undelivered*, a condition of the run (``FramesNotDelivered``)
with a line in the summary, not silence.

"Seen" counts distinct frames (by sequence number) with a verified signature of the
viewer's own tenant, through any path: a snapshot poll that shows the same frame
twice counts it once.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from canarywatch.markers import Observation, Status

__all__ = ["NOT_DELIVERED", "CameraDelivery", "DeliveryLedger", "describe", "summary_line"]

#: The run condition of a camera whose accepted frames its tenant never saw.
NOT_DELIVERED = "FramesNotDelivered"

# Distinct sequence numbers remembered per camera: enough to count a long run exactly
# while frames arrive roughly in order, bounded for a pod that runs for months.
_SEEN_WINDOW = 4096


@dataclass
class CameraDelivery:
    """One camera's published and seen counts."""

    tenant: str
    camera: int
    #: frames the integration accepted (2xx to the upload, or pulled from the camera).
    published: int = 0
    #: distinct frames of this camera shown to its own tenant's viewers.
    seen: int = 0
    last_seen_at: float | None = None
    _seqs: set[int] = field(default_factory=set, repr=False)

    def see(self, seq: int, at: float) -> bool:
        """Count frame ``seq`` seen at ``at``; True when it is one not seen before."""
        self.last_seen_at = at if self.last_seen_at is None else max(self.last_seen_at, at)
        if seq in self._seqs:
            return False
        self.seen += 1
        self._seqs.add(seq)
        if len(self._seqs) > 2 * _SEEN_WINDOW:
            newest = max(self._seqs)
            self._seqs = {s for s in self._seqs if s > newest - _SEEN_WINDOW}
        return True

    def to_dict(self) -> dict[str, object]:
        return {"tenant": self.tenant, "camera": self.camera, "published": self.published, "seen": self.seen}


class DeliveryLedger:
    """Published and seen counts of every camera of one probe."""

    def __init__(self) -> None:
        self._cameras: dict[tuple[str, int], CameraDelivery] = {}

    def camera(self, tenant: str, camera: int) -> CameraDelivery:
        key = (tenant, camera)
        entry = self._cameras.get(key)
        if entry is None:
            entry = self._cameras[key] = CameraDelivery(tenant, camera)
        return entry

    def published(self, tenant: str, camera: int, total: int) -> None:
        """The camera's running total of accepted frames (cameras count their own)."""
        self.camera(tenant, camera).published = total

    def seen(self, viewer_tenant: str, observation: Observation, *, at: float) -> CameraDelivery | None:
        """A frame a viewer of ``viewer_tenant`` was shown; only its own canaries count.
        The camera it is a new frame of, None when it is not one (another tenant's, or
        a frame this ledger has counted already)."""
        payload = observation.payload
        if (
            observation.status is not Status.VERIFIED
            or payload is None
            or observation.tenant != viewer_tenant
        ):
            return None
        camera = self.camera(viewer_tenant, payload.camera)
        return camera if camera.see(payload.seq, at) else None

    def cameras(self) -> list[CameraDelivery]:
        return [self._cameras[key] for key in sorted(self._cameras)]

    def undelivered(self, *, min_published: int) -> list[CameraDelivery]:
        """Cameras with at least ``min_published`` frames accepted and none seen."""
        return [c for c in self.cameras() if c.published >= min_published and c.seen == 0]

    def summary(self, *, min_published: int) -> dict[str, object]:
        """The run summary's ``delivery`` block."""
        undelivered = self.undelivered(min_published=min_published)
        return {
            "cameras": [c.to_dict() for c in self.cameras()],
            "published": sum(c.published for c in self.cameras()),
            "seen": sum(c.seen for c in self.cameras()),
            "conditions": [
                {"type": NOT_DELIVERED, "tenant": c.tenant, "camera": c.camera, "published": c.published}
                for c in undelivered
            ],
        }


def describe(cameras: Iterable[CameraDelivery]) -> list[str]:
    """One line per undelivered camera, for the terminal and the log."""
    return [
        f"{NOT_DELIVERED}: camera {c.tenant}/{c.camera}: {c.published} frames accepted by the "
        "integration, none shown to its own tenant's viewers (accepted and dropped?)"
        for c in cameras
    ]


def summary_line(block: Mapping[str, Any]) -> str:
    """The run summary's line for a ``DeliveryLedger.summary`` block."""
    conditions = block["conditions"]
    line = f"frames published {block['published']}, seen by their own tenants {block['seen']}"
    if conditions:
        cameras = ", ".join(f"{c['tenant']}/{c['camera']}" for c in conditions)
        line += f"; {NOT_DELIVERED}: {len(conditions)} camera(s) accepted frames nobody was shown ({cameras})"
    return line
