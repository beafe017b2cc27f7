"""WebRTC plumbing shared by WHEP viewers and WHIP cameras (aiortc, imported lazily).

WHIP (RFC 9725) and WHEP (draft-ietf-wish-whep) are the same exchange in opposite
directions: the client POSTs its SDP offer (``Content-Type: application/sdp``, the
tenant's credential as ``Authorization: Bearer``), the server answers ``201 Created``
with its SDP answer and a ``Location`` naming the session, which the client DELETEs
when it leaves. ICE candidates travel in the SDP (no trickle): aiortc gathers them all
before ``setLocalDescription`` returns, and servers answer with theirs.

No STUN or TURN server is configured (aiortc would otherwise ask a public one): a
monitor talks to the integration it watches, on the network it shares with it, and
sends no traffic anywhere else. Host candidates are every interface's address but the
loopback one (aioice leaves 127.0.0.1 out), which a server on 127.0.0.1 still reaches.

aiortc (and through it PyAV) is imported on first use: a snapshot-only viewer never
loads it (``tests/unit/test_import_weight.py``).
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

from yarl import URL

if TYPE_CHECKING:
    from aiortc import RTCPeerConnection, RTCRtpTransceiver

__all__ = [
    "CLOSE_TIMEOUT_S",
    "SDP_CONTENT_TYPE",
    "SignalingError",
    "close_peer",
    "looks_like_sdp",
    "negotiated_codec",
    "only_codec",
    "peer_connection",
    "session_url",
]

log = logging.getLogger(__name__)

SDP_CONTENT_TYPE = "application/sdp"
#: The longest a peer connection's close is waited for.
CLOSE_TIMEOUT_S = 5.0
#: The largest SDP answer read: a few KiB in practice (codecs, candidates).
MAX_SDP_BYTES = 64 * 1024


class SignalingError(Exception):
    """The offer/answer exchange failed in a way the client cannot retry into success
    (an answer that is not SDP, no codec in common); the reason, short."""


def peer_connection() -> RTCPeerConnection:
    """A peer connection with no ICE servers (see the module docstring)."""
    from aiortc import RTCConfiguration, RTCPeerConnection

    return RTCPeerConnection(RTCConfiguration(iceServers=[]))


async def close_peer(pc: RTCPeerConnection, *, timeout: float = CLOSE_TIMEOUT_S) -> None:
    """``pc.close()``, waited for at most ``timeout`` seconds. aiortc's close can wait
    forever: it awaits its transceivers' tasks, and a second close (aiortc starts one
    itself when the remote ends DTLS) waits for the first, which never finishes if it
    failed or was cancelled. A session being left is not worth a stuck viewer or camera."""
    try:
        async with asyncio.timeout(timeout):
            await pc.close()
    except TimeoutError:
        log.warning("a WebRTC peer connection did not close within %.0f s; left behind", timeout)


def only_codec(transceiver: RTCRtpTransceiver, mime_type: str) -> None:
    """Offer (or answer) ``mime_type`` only (``video/H264``), with its retransmissions: a
    sender that hands aiortc encoded packets can send no other codec."""
    from aiortc import RTCRtpSender

    capabilities = RTCRtpSender.getCapabilities(transceiver.kind)
    wanted = (mime_type.lower(), f"{transceiver.kind}/rtx")
    transceiver.setCodecPreferences([c for c in capabilities.codecs if c.mimeType.lower() in wanted])


def looks_like_sdp(body: bytes) -> bool:
    """An SDP session description starts with its version line."""
    return body.lstrip()[:4] == b"v=0\r" or body.lstrip()[:4] == b"v=0\n"


def session_url(endpoint: str, location: str | None) -> str | None:
    """The session resource a ``Location`` names (relative to the endpoint), or None
    when there is none or it is on another origin: the DELETE carries the tenant's
    credential, which never crosses an origin."""
    if not location:
        return None
    base = URL(endpoint)
    url = base.join(URL(location))
    return str(url) if url.origin() == base.origin() else None


def negotiated_codec(sdp: str, kind: str = "video") -> str:
    """The codec of an answer's first ``kind`` section (``H264``, ``VP8``; "" if none):
    the first payload type of its ``m=`` line, named by its ``a=rtpmap``."""
    payload: str | None = None
    for line in sdp.splitlines():
        if line.startswith("m="):
            fields = line[2:].split()
            if payload is not None:
                break  # the section ended without naming it
            if fields and fields[0] == kind and len(fields) > 3:
                payload = fields[3]
        elif payload is not None and line.startswith(f"a=rtpmap:{payload} "):
            return line.split(" ", 1)[1].split("/", 1)[0]
    return ""
