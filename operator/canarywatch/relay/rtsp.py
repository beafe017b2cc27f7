"""The relay's RTSP server: each camera's ladder as a live H.264 stream (RFC 2326).

What Alexa's ``CameraStreamController`` hands a display is an RTSP URI; the relay
answers it like camera clouds do: ``rtsp://<host>:<port>/streams/<token>/<rung>``,
where the token is a stream grant (``grants``: one tenant's camera, expiring) and the
rung one of the HLS ladder's (``low`` comes out of the low-bandwidth cache, and leaks
under ``xiaomi-2019`` like every low rendition). RTP is interleaved on the RTSP TCP
connection (``RTP/AVP/TCP``; UDP is refused with 461), one H.264 access unit at a time,
paced by its timestamps, segment after segment at the live edge.

Methods: OPTIONS, DESCRIBE, SETUP, PLAY, GET_PARAMETER (keep-alive), TEARDOWN. A kill
switch or an outage refuses new sessions (503) and ends open ones.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

from canarywatch.relay import rtp
from canarywatch.relay.imaging import TranscodeError
from canarywatch.relay.ladder import rung_named
from canarywatch.relay.service import Relay
from canarywatch.relay.video import Rung, access_units

__all__ = ["RtspServer", "serving_rtsp"]

log = logging.getLogger(__name__)

_MAX_REQUEST_BYTES = 16 * 1024
_METHODS = "OPTIONS, DESCRIBE, SETUP, PLAY, GET_PARAMETER, TEARDOWN"
_REASONS = {
    200: "OK",
    400: "Bad Request",
    404: "Not Found",
    405: "Method Not Allowed",
    454: "Session Not Found",
    455: "Method Not Valid in This State",
    461: "Unsupported Transport",
    502: "Bad Gateway",
    503: "Service Unavailable",
}


@dataclass(frozen=True)
class _Request:
    method: str
    url: str
    headers: Mapping[str, str]


class _Refused(Exception):
    def __init__(self, status: int, detail: str = "") -> None:
        super().__init__(detail)
        self.status = status


class RtspServer:
    """Serves ``relay``'s cameras over RTSP on ``host:port`` (0: any free port)."""

    def __init__(self, relay: Relay, *, host: str = "127.0.0.1", port: int = 0) -> None:
        self.relay = relay
        self.host = host
        self.port = port
        self._server: asyncio.Server | None = None
        self._sessions: set[asyncio.Task[None]] = set()

    @property
    def base_url(self) -> str:
        return f"rtsp://{self.host}:{self.port}"

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._connection, self.host, self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
        for task in list(self._sessions):
            task.cancel()
        await asyncio.gather(*self._sessions, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()

    # -- one connection ----------------------------------------------------------------

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._sessions.add(task)
        session = secrets.token_hex(8)
        playing: asyncio.Task[None] | None = None
        try:
            while True:
                request = await _read_request(reader)
                if request is None:
                    break
                cseq = request.headers.get("cseq", "0")
                try:
                    status, headers, body = await self._answer(request, session, playing is not None)
                except _Refused as refused:
                    status, headers, body = refused.status, {}, str(refused).encode()
                writer.write(_response(status, cseq, headers, body))
                await writer.drain()
                if request.method == "PLAY" and status == 200 and playing is None:
                    tenant, camera, rung = self._target(request.url)
                    playing = asyncio.create_task(self._play(writer, tenant, camera, rung))
                    playing.add_done_callback(lambda _: writer.close())
                if request.method == "TEARDOWN":
                    break
        except (ConnectionError, asyncio.IncompleteReadError, ValueError) as error:
            log.debug("rtsp connection ended: %s", type(error).__name__)
        except asyncio.CancelledError:
            # stop() ends the session: returned from, not ended cancelled, as Python
            # 3.11's stream server calls exception() on this task when it is done, which
            # raises for a cancelled one (a CancelledError traceback on every stop)
            pass
        finally:
            if playing is not None:
                playing.cancel()
                with contextlib.suppress(asyncio.CancelledError, ConnectionError):
                    await playing
            writer.close()
            self._sessions.discard(task)

    async def _answer(
        self, request: _Request, session: str, playing: bool
    ) -> tuple[int, dict[str, str], bytes]:
        if request.method == "OPTIONS":
            return 200, {"Public": _METHODS}, b""
        if request.method == "GET_PARAMETER":
            return 200, {"Session": session}, b""
        if request.method == "TEARDOWN":
            return 200, {"Session": session}, b""
        if request.method not in ("DESCRIBE", "SETUP", "PLAY"):
            return 405, {"Allow": _METHODS}, b""
        tenant, camera, rung = self._target(request.url)
        if request.method == "DESCRIBE":
            base = request.url.rstrip("/") + "/"
            extradata = await self._parameter_sets(tenant, camera, rung)
            body = rtp.sdp(control="trackID=0", parameter_sets=extradata).encode()
            return 200, {"Content-Base": base, "Content-Type": "application/sdp"}, body
        if request.method == "SETUP":
            transport = request.headers.get("transport", "")
            if "TCP" not in transport.upper():
                return 461, {}, b""  # interleaved TCP only, as Alexa requires
            return 200, {"Transport": "RTP/AVP/TCP;unicast;interleaved=0-1", "Session": session}, b""
        if playing:
            return 455, {}, b""
        return 200, {"Session": session, "Range": "npt=0.000-"}, b""

    def _target(self, url: str) -> tuple[str, str, Rung]:
        """The granted camera and the rung of ``rtsp://…/streams/<token>/<rung>[/trackID=0]``."""
        parts = [p for p in urlsplit(url).path.split("/") if p]
        if len(parts) < 3 or parts[0] != "streams":
            raise _Refused(404, "expected /streams/<token>/<rung>")
        grant = self.relay.stream_grant(parts[1])
        rung = rung_named(parts[2])
        if grant is None or rung is None:
            raise _Refused(404, "unknown or expired stream; ask InitializeCameraStreams again")
        refusal = self.relay.refusal()
        if refusal is not None:
            raise _Refused(503, refusal.message)
        return grant.tenant, grant.camera, rung

    async def _parameter_sets(self, tenant: str, camera: str, rung: Rung) -> bytes | None:
        windows = self.relay.video_windows(tenant, camera)
        if not windows:
            raise _Refused(404, f"camera {camera} has no video yet")
        try:
            segment = await self.relay.video_segment(tenant, camera, rung, windows[-1])
            if segment is None:
                return None
            extradata, _ = await asyncio.to_thread(access_units, segment)
        except TranscodeError as error:
            raise _Refused(502, str(error)) from error
        return extradata or None

    # -- streaming ---------------------------------------------------------------------

    async def _play(self, writer: asyncio.StreamWriter, tenant: str, camera: str, rung: Rung) -> None:
        seq, ssrc = secrets.randbelow(1 << 16), secrets.randbits(32)
        clock: float | None = None
        rtp_clock = 0
        async for window, units in self._segments(tenant, camera, rung):
            start = window * self.relay.config.hls_segment_seconds
            for pts, unit in units:
                timestamp = round(start * 90_000) + pts
                # pace by the stream's own clock: a display shows it live, not in a burst
                if clock is None:
                    clock, rtp_clock = time.monotonic(), timestamp
                due = clock + (timestamp - rtp_clock) / 90_000
                await asyncio.sleep(max(0.0, due - time.monotonic()))
                packets = rtp.rtp_packets(unit, seq=seq, timestamp=timestamp, ssrc=ssrc)
                seq = (seq + len(packets)) & 0xFFFF
                writer.write(b"".join(rtp.interleaved(0, packet) for packet in packets))
                await writer.drain()

    async def _segments(
        self, tenant: str, camera: str, rung: Rung
    ) -> AsyncIterator[tuple[int, list[tuple[int, bytes]]]]:
        """Each new segment at the live edge, until the relay refuses (kill, outage)."""
        relay = self.relay
        sent: int | None = None
        while relay.refusal() is None and not relay.closing:
            windows = relay.video_windows(tenant, camera)
            if not windows or (sent is not None and windows[-1] <= sent):
                await asyncio.sleep(min(0.5, relay.config.hls_segment_seconds / 4))
                continue
            window = windows[-1] if sent is None or sent + 1 not in windows else sent + 1
            try:
                segment = await relay.video_segment(tenant, camera, rung, window)
                if segment is None:
                    sent = window
                    continue
                _, units = await asyncio.to_thread(access_units, segment)
            except TranscodeError as error:
                log.debug("rtsp: segment %d of %s/%s: %s", window, tenant, camera, error)
                sent = window
                continue
            sent = window
            yield window, units


async def _read_request(reader: asyncio.StreamReader) -> _Request | None:
    """The next request, skipping interleaved packets (RTCP) the client sends; None at EOF."""
    while True:
        first = await reader.read(1)
        if not first:
            return None
        if first == b"$":
            header = await reader.readexactly(3)
            await reader.readexactly(int.from_bytes(header[1:3], "big"))
            continue
        head = first + await reader.readuntil(b"\r\n\r\n")
        if len(head) > _MAX_REQUEST_BYTES:
            raise ValueError("RTSP request head too large")
        lines = head.decode("utf-8", "replace").split("\r\n")
        method, url, *_ = [*lines[0].split(" "), "", ""]
        headers = {}
        for line in lines[1:]:
            name, sep, value = line.partition(":")
            if sep:
                headers[name.strip().lower()] = value.strip()
        length = int(headers.get("content-length", "0") or 0)
        if length:
            await reader.readexactly(min(length, _MAX_REQUEST_BYTES))
        return _Request(method.upper(), url, headers)


def _response(status: int, cseq: str, headers: Mapping[str, str], body: bytes) -> bytes:
    lines = [
        f"RTSP/1.0 {status} {_REASONS.get(status, 'Error')}",
        f"CSeq: {cseq}",
        "Server: canarywatch-relay",
    ]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    if body:
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


@contextlib.asynccontextmanager
async def serving_rtsp(relay: Relay, *, host: str, port: int) -> AsyncIterator[RtspServer]:
    server = RtspServer(relay, host=host, port=port)
    await server.start()
    try:
        yield server
    finally:
        await server.stop()
