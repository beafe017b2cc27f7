"""``RtspReader``: watch an RTSP stream (TCP interleaved) as a camera app or a hub does.

FFmpeg's RTSP client (through PyAV) does the protocol, Basic and Digest authentication
(credentials from the URL's userinfo: ``rtsp://{tenant}:{token}@host/path``, or
``rtsp://{token}@host/path`` with a token ``user:password`` — the form the authorization
probe needs, see ``authz``) and the depacketising; it runs in a thread of its own per
connection, and the sampled frames (``video.Sampling``: keyframes only by default) cross
to the event loop through a small queue that keeps the newest (a viewer judges what is
shown now, not a backlog).

The hub's network profile applies as on every path: FFmpeg connects to a loopback
``ShapedTcpRelay`` that carries the RTSP connection (requests, and the interleaved RTP
the server sends back at the profile's bandwidth, latency and stalls) to the server; the
URL keeps its userinfo and path, only its host and port point at the relay, and the
relay puts the URL's own scheme, host and port back in the requests it forwards (a
server keys its streams on them: two viewers of a camera are one stream to it), and
signs FFmpeg's Digest ``Authorization`` again for that URL with the URL's user and
password (FFmpeg hashed the relay's URL into it; a strict server checks it against the
Request-URI).

The relay refuses redirects: FFmpeg follows a ``3xx`` reply's ``Location`` on a
connection of its own, past the relay (its TLS verification, its shaping), and some
FFmpeg versions (libavformat 59) send that other host the URL's credentials. A server
that redirects is closed on before FFmpeg reads the reply; it is counted as an error
(``RedirectRefused``) and logged as a warning with the status, never the URL. So every
URL that carries credentials is relayed, on every profile; only a plain ``rtsp`` URL
without credentials on an unshaped profile is read by FFmpeg directly (a redirect takes
nothing of the viewer's with it).

For ``rtsps`` (RTSP over TLS, port 322 by default) FFmpeg's own TLS checks no
certificate, so the relay opens the TLS connection itself (the system's trust store,
``SSL_CERT_FILE`` honoured; the URL's host checked and sent as SNI) and FFmpeg speaks
plain RTSP to it on loopback. The credentials stay in the RTSP
session, sent only once the server has proved it is the URL's host; a server whose
certificate does not verify is counted as an error naming the reason
(``SSLCertVerificationError``) and logged, and never sees a request.

A refusal (401/403/404 from the server) is yielded as an empty frame with that status; a
stream FFmpeg cannot decode as an empty 200 frame with ``meta["problem"] == "undecodable_video"``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
import threading
from collections.abc import AsyncGenerator, AsyncIterator
from urllib.parse import unquote, urlsplit, urlunsplit

from canarywatch.viewer.network import DigestCredentials, RedirectRefused, ShapedTcpRelay
from canarywatch.viewer.transports.base import FrameKind, ReceivedFrame
from canarywatch.viewer.transports.live import LiveVideoReader
from canarywatch.viewer.transports.video import DEFAULT_SAMPLING, DecodedFrame, UndecodableVideo

__all__ = ["RtspReader"]

logger = logging.getLogger(__name__)

_DEFAULT_PORTS = {"rtsp": 554, "rtsps": 322}

# Frames waiting for the event loop; beyond this the oldest is dropped.
_QUEUE_FRAMES = 2
# TCP interleaved; a live camera is probed for one second, not FFmpeg's default five
# (the first verdict would otherwise wait for it).
_RTSP_OPTIONS = {"rtsp_transport": "tcp", "analyzeduration": "1000000", "probesize": "500000"}


class RtspReader(LiveVideoReader):
    """Watches one RTSP URL; yields sampled frames (kind ``rtsp``; meta ``pts``).

    Reconnects with backoff (reset by every frame) when the stream ends, fails, or is
    silent for ``timeout_s``. The session is not used (FFmpeg speaks RTSP itself); it is
    taken for the same constructor as every transport.
    """

    kind = FrameKind.RTSP

    default_sampling = DEFAULT_SAMPLING
    #: the relay of the current connection (None when the URL is not relayed).
    link: ShapedTcpRelay | None = None

    async def first_frames(self, count: int = 1) -> list[ReceivedFrame]:
        """One connection's first ``count`` frames, or the one answer that is not a
        frame (a refusal, or ``undecodable_video``: the stream was served and FFmpeg
        could not decode it); empty when the connection failed (counted in ``errors``).
        For a look, not a watch: the authorization probe."""
        frames: list[ReceivedFrame] = []
        async with contextlib.aclosing(self._connection()) as connection:
            async for frame in connection:
                frames.append(frame)
                if len(frames) >= count or frame.status != 200 or not frame.body:
                    break
        return frames

    async def _connection(self) -> AsyncGenerator[ReceivedFrame, None]:
        """The frames of one connection, until it ends; its refusal or failure last."""
        parts = urlsplit(_userinfo_split(self.request.url))
        tls = parts.scheme == "rtsps"
        # credentials: relayed on every profile, so that a redirect is refused for them
        relayed = tls or (
            parts.scheme == "rtsp" and (self.shaper.profile.shapes_anything or parts.username is not None)
        )
        if not relayed or not parts.hostname:
            async for frame in self._read(parts.geturl()):
                yield frame
            return
        link = self.link = ShapedTcpRelay(
            self.shaper,
            parts.hostname,
            parts.port or _DEFAULT_PORTS[parts.scheme],
            tls=ssl.create_default_context() if tls else None,
            refuse_redirects=True,
            rtsp_origin=f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}",
            rtsp_credentials=_credentials(parts.username, parts.password),
        )
        async with link as (host, port):
            userinfo = parts.netloc.rpartition("@")[0]
            netloc = f"{userinfo}@{host}:{port}" if userinfo else f"{host}:{port}"
            async for frame in self._read(urlunsplit(parts._replace(scheme="rtsp", netloc=netloc)), link):
                yield frame

    async def _read(self, url: str, link: ShapedTcpRelay | None = None) -> AsyncIterator[ReceivedFrame]:
        """FFmpeg reading ``url`` (through ``link``) in a thread; its frames, then its
        refusal or failure (the relay's, when it could not reach or verify the server:
        FFmpeg only saw its connection end)."""
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[DecodedFrame | BaseException | None] = asyncio.Queue()
        stop = threading.Event()

        def put(item: DecodedFrame | BaseException | None) -> None:
            while isinstance(item, DecodedFrame) and queue.qsize() >= _QUEUE_FRAMES:
                queue.get_nowait()  # the newest frame is what a viewer is shown
            queue.put_nowait(item)

        def read() -> None:
            from canarywatch.viewer.transports.video import iter_frames

            try:
                for frame in iter_frames(
                    url,
                    sampling=self.sampling,
                    container_format="rtsp",
                    options=_RTSP_OPTIONS,
                    timeout_s=self.timeout_s,
                    limit=0,
                ):
                    if stop.is_set():
                        return
                    loop.call_soon_threadsafe(put, frame)
            except BaseException as error:  # handed to the loop, raised nowhere else
                if not stop.is_set():
                    loop.call_soon_threadsafe(put, error)
                return
            if not stop.is_set():
                loop.call_soon_threadsafe(put, None)

        thread = threading.Thread(target=read, name=f"rtsp {self.request.source}", daemon=True)
        thread.start()
        try:
            while True:
                item = await queue.get()
                if (
                    not isinstance(item, DecodedFrame)
                    and link is not None
                    and link.upstream_error is not None
                ):
                    # the relay's reason, not FFmpeg's "connection closed"
                    self._record_upstream_error(link.upstream_error)
                    return
                if item is None:
                    return
                if isinstance(item, UndecodableVideo) and not item.network:
                    yield self._refused(item)
                    return
                if isinstance(item, BaseException):
                    self._record_error(item, self.request.source)
                    return
                yield ReceivedFrame(
                    body=item.image,
                    received_at=self._wall_clock(),
                    kind=self.kind,
                    source=self.request.source,
                    status=200,
                    meta={"pts": "" if item.pts_s is None else f"{item.pts_s:.3f}"},
                )
        finally:
            # FFmpeg returns within timeout_s at most (its read timeout) and the thread ends.
            stop.set()

    def _record_upstream_error(self, error: OSError) -> None:
        self._record_error(error, self.request.source)
        if isinstance(error, RedirectRefused):
            logger.warning("%s: %s", self.request.source, error)  # the status only: no URL
        elif isinstance(error, ssl.SSLCertVerificationError):
            # the reason only (no URL: it may carry the credentials); nothing was sent
            logger.warning(
                "%s: the RTSP server's certificate did not verify (%s); no request was sent to it",
                self.request.source,
                error.verify_message or error.reason,
            )

    def _refused(self, error: UndecodableVideo) -> ReceivedFrame:
        status = error.status or 200
        meta = {} if error.status else {"problem": "undecodable_video", "undecodable": str(error)[:200]}
        return ReceivedFrame(b"", self._wall_clock(), self.kind, self.request.source, status, meta)


def _credentials(username: str | None, password: str | None) -> DigestCredentials | None:
    """The URL's user and password as FFmpeg sends them (percent-decoded)."""
    if username is None or password is None:
        return None
    return DigestCredentials(unquote(username), unquote(password))


def _userinfo_split(url: str) -> str:
    """``url`` with a token ``user:password`` filled into its userinfo made a user and a
    password again. A template's ``{token}`` is percent-encoded whole, colon included,
    and FFmpeg splits the userinfo at a literal ``:`` before it decodes each part: the
    encoded colon would make the whole token a user without a password. A user name
    cannot hold a colon in Basic or Digest authentication, so none is lost."""
    parts = urlsplit(url)
    userinfo, at, host = parts.netloc.rpartition("@")
    if not at or ":" in userinfo:
        return url
    for encoded in ("%3A", "%3a"):
        if encoded in userinfo:
            userinfo = userinfo.replace(encoded, ":", 1)
            break
    return urlunsplit(parts._replace(netloc=f"{userinfo}@{host}"))
