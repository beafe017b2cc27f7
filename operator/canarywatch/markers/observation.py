"""What the decoder reports about one image: an `Observation` with its `Status`.

Kept apart from the decoder (which needs OpenCV and numpy) so that code that only
reasons about observations — verdicts, the operator — does not load the image stack.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from canarywatch.markers.payload import Payload

__all__ = ["Observation", "Status"]


class Status(enum.StrEnum):
    VERIFIED = "verified"  # MAC verified under `tenant`'s key
    FORGED = "forged"  # a clean marker whose MAC fails under every known key
    DEGRADED = "degraded"  # recognisably a canary, payload unreadable
    NOT_CANARY = "not_canary"  # positive evidence this is not a canary frame
    UNDECODABLE = "undecodable"  # not an image, corrupt, blank, or over a limit


@dataclass(frozen=True, slots=True)
class Observation:
    status: Status
    reason: str = ""
    tenant: str | None = None
    payload: Payload | None = None
    confidence: float = 0.0
    path: str = ""  # which read concluded: "reduced" (DCT-scaled JPEG), "fast", "robust"
    width: int = 0
    height: int = 0
