"""What every video-publishing camera shares, whatever its protocol (RTSP, RTMP, WHIP).

``EncodedTarget``: the stream's encoding settings, checked once, and its URL without
credentials for logs. ``StreamPublisher``: a camera's session bookkeeping — sessions
opened, each failed session counted on the camera and logged without credentials, and
the backoff before the next one, which starts over once a session has sent a frame.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from canarywatch.camera.fleet import CanaryCamera
from canarywatch.retrying import Backoff

__all__ = ["EncodedTarget", "StreamPublisher"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class EncodedTarget:
    """Where one camera publishes (``url``, credentials included where the protocol takes
    them) and how its H.264 is encoded."""

    url: str = field(repr=False)
    #: seconds between keyframes (a player joins, and a lost frame heals, at the next one).
    keyframe_interval: float = field(default=2.0, kw_only=True)
    #: target bitrate in bits per second.
    bitrate: int = field(default=1_000_000, kw_only=True)

    def __post_init__(self) -> None:
        if not self.keyframe_interval > 0:
            raise ValueError(f"keyframe_interval must be > 0 seconds, got {self.keyframe_interval}")
        if self.bitrate < 10_000:
            raise ValueError(f"bitrate must be at least 10000 bit/s, got {self.bitrate}")

    @property
    def where(self) -> str:
        """The URL without credentials, for logs."""
        parts = urlsplit(self.url)
        return f"{parts.scheme}://{parts.hostname}:{parts.port or ''}{parts.path}"


class StreamPublisher:
    """One camera's publishing sessions: ``run`` them in the subclass, report each with
    ``session_failed`` and wait ``next_delay`` before the next."""

    def __init__(
        self,
        camera: CanaryCamera,
        target: EncodedTarget,
        *,
        fps: float,
        clock: Callable[[], float] = time.time,
        backoff: Backoff | None = None,
    ) -> None:
        if fps <= 0:
            raise ValueError("fps must be positive")
        self.camera = camera
        self.target = target
        self.fps = fps
        self.clock = clock
        self.backoff = backoff or Backoff(base=0.5, cap=10.0)
        #: sessions opened (the first and every reconnection).
        self.sessions = 0
        self.last_error: str | None = None
        self._failures = 0

    def session_failed(self, error: BaseException, *, status: int | None = None) -> None:
        """Count a session that broke on the camera (``status``: the server's answer)."""
        self.camera.failed += 1
        if status is not None:
            self.camera.last_status = status
        self.last_error = f"{type(error).__name__}: {str(error)[:120]}"
        log.debug(
            "camera %s/%s: %s to %s",
            self.camera.tenant,
            self.camera.camera,
            self.last_error,
            self.target.where,
        )

    def next_delay(self, sent: int) -> float:
        """Seconds before the next session, after one that sent ``sent`` frames."""
        self._failures = 0 if sent else self._failures + 1
        return self.backoff.delay(max(1, self._failures))
