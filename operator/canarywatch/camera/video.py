"""A canary camera that publishes H.264 video: RTSP (ANNOUNCE/RECORD) or RTMP.

Many cameras do not upload JPEGs: they push a video stream to the vendor's ingest (RTMP,
or RTSP in RECORD mode). ``VideoPublisher`` does that for one ``CanaryCamera``: it
renders each frame (the signed marker in every picture), encodes H.264 with PyAV at the
configured bitrate and keyframe interval, and muxes it to the server, live. A dropped
connection is counted and retried with backoff, the camera's sequence numbers going on.

PyAV is the ``video`` extra, imported when the first stream opens: a fleet that only
pushes JPEGs never loads it. The encoder runs in a thread (FFmpeg's network I/O blocks),
one per camera; ``run()`` stops it when cancelled.

Over TLS FFmpeg checks no certificate unless told to, so whoever answered would get the
URL's credentials (RTMP's stream key, RTSP's userinfo). ``rtmps`` is told to: FFmpeg's
TLS verifies the server against the trust store Python's ``ssl`` uses (its CA bundle
file, ``SSL_CERT_FILE`` honoured) for the URL's host; each session first checks the
certificate with Python's ``ssl`` too, so a refusal names why
(``SSLCertVerificationError``: unknown issuer, wrong host) instead of FFmpeg's bare I/O
error. ``rtsps`` is refused: FFmpeg's RTSP muxer passes no options to its TLS (it would
verify nothing), and a loopback relay that verifies for it cannot run in this process
(PyAV holds the GIL while FFmpeg opens the output, so the relay would never answer).
"""

from __future__ import annotations

import asyncio
import enum
import logging
import socket
import ssl
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

__all__ = [
    "StreamProtocol",
    "UnverifiableTls",
    "VideoPublisher",
    "VideoTarget",
    "ffmpeg_tls_verification",
    "live_h264_options",
]

log = logging.getLogger(__name__)

# Milliseconds: what FLV counts in, and fine enough for RTP's 90 kHz.
_TIME_BASE = Fraction(1, 1000)
# How long a connect or a write may block before the session counts as failed.
_IO_TIMEOUT_S = 5.0
_RTMPS_DEFAULT_PORT = 443


class UnverifiableTls(ssl.SSLError):
    """A TLS URL whose server this camera cannot verify: nothing is sent to it."""


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
        camera = self.camera
        while not self._stop.is_set():
            self.sessions += 1
            try:
                sent = self._session()
            except Exception as error:  # FFmpeg's errors, OSError: the session is over
                sent = 0
                self.session_failed(error)
                if isinstance(error, ssl.SSLError):  # the host only: the URL may carry credentials
                    log.warning(
                        "camera %s/%s: nothing sent to %s over TLS: %s",
                        camera.tenant,
                        camera.camera,
                        urlsplit(self.target.url).hostname,
                        _reason(error),
                    )
            delay = self.next_delay(sent)
            if not self._stop.is_set():
                self._stop.wait(delay)

    def _session(self) -> int:
        """One connection: frames until stopped or the server goes; frames sent."""
        import av  # the video extra; see the module docstring

        target, camera = self.target, self.camera
        options = {"rtsp_transport": "tcp"} if target.protocol is StreamProtocol.RTSP else {}
        options.update(_verified_tls_options(target.url))
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


def _verified_tls_options(url: str) -> dict[str, str]:
    """FFmpeg's options that make it verify ``url``'s TLS server (none for plain URLs),
    once Python's ``ssl`` has verified the server's certificate for the URL's host.

    Raises ``ssl.SSLCertVerificationError`` (or an ``OSError``) when it does not verify,
    ``UnverifiableTls`` when FFmpeg could not be made to verify it."""
    parts = urlsplit(url)
    if parts.scheme == "rtsps":
        raise UnverifiableTls("rtsps publishing is refused: FFmpeg's RTSP muxer cannot verify the server")
    if parts.scheme != "rtmps" or not parts.hostname:
        return {}
    options = ffmpeg_tls_verification()
    host, port = parts.hostname, parts.port or _RTMPS_DEFAULT_PORT
    context = ssl.create_default_context()
    with (
        socket.create_connection((host, port), timeout=_IO_TIMEOUT_S) as raw,
        context.wrap_socket(raw, server_hostname=host),
    ):
        pass  # the handshake is the check: nothing is sent inside it
    return options


def ffmpeg_tls_verification() -> dict[str, str]:
    """The options that make FFmpeg's TLS protocol verify its server (certificate and
    host) against the CA bundle Python's ``ssl`` reads (``SSL_CERT_FILE`` or the
    system's): FFmpeg's TLS (GnuTLS in PyAV's wheels) has no trust store of its own here.
    Only protocols that pass their options on to TLS take them (RTMP's does)."""
    bundle = ssl.get_default_verify_paths().cafile
    if bundle is None:
        raise UnverifiableTls("no CA bundle file for FFmpeg's TLS: point SSL_CERT_FILE at one")
    return {"tls_verify": "1", "ca_file": bundle}


def _reason(error: ssl.SSLError) -> str:
    if isinstance(error, ssl.SSLCertVerificationError):
        return f"its certificate did not verify ({error.verify_message or error.reason})"
    return str(error)
