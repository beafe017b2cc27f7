"""A canary camera that publishes H.264 video: RTSP (ANNOUNCE/RECORD) or RTMP.

Many cameras do not upload JPEGs: they push a video stream to the vendor's ingest (RTMP,
or RTSP in RECORD mode). ``VideoPublisher`` does that for one ``CanaryCamera``: it
renders each frame (the signed marker in every picture), encodes H.264 with PyAV at the
configured bitrate and keyframe interval, and muxes it to the server, live. A dropped
connection is counted and retried with backoff, the camera's sequence numbers going on.

PyAV is the ``video`` extra, imported when the first stream opens: a fleet that only
pushes JPEGs never loads it. The encoder runs in a thread (FFmpeg's network I/O blocks),
one per camera; ``run()`` stops it when cancelled.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any
from urllib.parse import urlsplit

from canarywatch.camera.fleet import CanaryCamera
from canarywatch.camera.publishing import EncodedTarget, StreamPublisher
from canarywatch.retrying import Backoff

__all__ = ["StreamProtocol", "VideoPublisher", "VideoTarget", "live_h264_options"]

log = logging.getLogger(__name__)

# Milliseconds: what FLV counts in, and fine enough for RTP's 90 kHz.
_TIME_BASE = Fraction(1, 1000)
# How long a connect or a write may block before the session counts as failed.
_IO_TIMEOUT_S = 5.0


def live_h264_options(fps: float, keyframe_interval: float) -> dict[str, str]:
    """libx264's options for a live camera: no B-frames, no lookahead, a keyframe every
    ``keyframe_interval`` seconds exactly (a player joins, and a loss heals, there)."""
    gop = max(1, round(fps * keyframe_interval))
    return {
        "preset": "ultrafast",
        "tune": "zerolatency",
        "g": str(gop),
        "keyint_min": str(gop),
        "sc_threshold": "0",
    }


class StreamProtocol(enum.StrEnum):
    """How a camera publishes video; the URL's scheme must match."""

    RTSP = "rtsp"
    RTMP = "rtmp"

    @property
    def container(self) -> str:
        return "rtsp" if self is StreamProtocol.RTSP else "flv"

    @property
    def schemes(self) -> tuple[str, ...]:
        return ("rtsp", "rtsps") if self is StreamProtocol.RTSP else ("rtmp", "rtmps")


@dataclass(frozen=True)
class VideoTarget(EncodedTarget):
    """Where and how one camera publishes its stream (credentials in the URL's userinfo
    for RTSP, in its path or query for RTMP, as servers take them)."""

    protocol: StreamProtocol = field(kw_only=True)

    def __post_init__(self) -> None:
        super().__post_init__()
        scheme = urlsplit(self.url).scheme
        if scheme not in self.protocol.schemes:
            raise ValueError(f"a {self.protocol} camera needs a {'/'.join(self.protocol.schemes)} URL")


class VideoPublisher(StreamPublisher):
    """Publishes one camera's frames as a live H.264 stream until cancelled.

    Counts on the camera as the JPEG paths do: ``published`` for each frame written to
    the server, ``failed`` for each session that broke (connect refused, server gone).
    """

    target: VideoTarget

    def __init__(
        self,
        camera: CanaryCamera,
        target: VideoTarget,
        *,
        fps: float,
        clock: Callable[[], float] = time.time,
        backoff: Backoff | None = None,
    ) -> None:
        super().__init__(camera, target, fps=fps, clock=clock, backoff=backoff)
        self._stop = threading.Event()

    async def run(self) -> None:
        self._stop.clear()
        try:
            await asyncio.to_thread(self._publish)
        finally:
            self._stop.set()

    def stop(self) -> None:
        self._stop.set()

    def _publish(self) -> None:
        while not self._stop.is_set():
            self.sessions += 1
            try:
                sent = self._session()
            except Exception as error:  # FFmpeg's errors, OSError: the session is over
                sent = 0
                self.session_failed(error)
            delay = self.next_delay(sent)
            if not self._stop.is_set():
                self._stop.wait(delay)

    def _session(self) -> int:
        """One connection: frames until stopped or the server goes; frames sent."""
        import av  # the video extra; see the module docstring

        target, camera = self.target, self.camera
        options = {"rtsp_transport": "tcp"} if target.protocol is StreamProtocol.RTSP else {}
        container: Any = av.open(
            target.url, mode="w", format=target.protocol.container, options=options, timeout=_IO_TIMEOUT_S
        )
        sent = 0
        try:
            stream: Any = container.add_stream("libx264", rate=round(self.fps) or 1)
            stream.width, stream.height = camera.width - camera.width % 2, camera.height - camera.height % 2
            stream.pix_fmt = "yuv420p"
            stream.bit_rate = target.bitrate
            stream.options = live_h264_options(self.fps, target.keyframe_interval)
            interval = 1.0 / self.fps
            started = time.monotonic()
            last_pts = -1
            while not self._stop.is_set():
                tick = time.monotonic()
                picture = camera.next_picture(self.clock())
                frame = av.VideoFrame.from_ndarray(picture[: stream.height, : stream.width], format="bgr24")
                pts = max(last_pts + 1, round((tick - started) / _TIME_BASE))
                frame.pts, frame.time_base, last_pts = pts, _TIME_BASE, pts
                container.mux(stream.encode(frame))
                camera.published += 1
                camera.last_status = 200
                sent += 1
                self._stop.wait(max(0.0, interval - (time.monotonic() - tick)))
            container.mux(stream.encode(None))
        finally:
            try:
                container.close()
            except Exception as error:  # closing a broken connection fails too; nothing to save
                log.debug("closing %s: %s", target.where, type(error).__name__)
        return sent
