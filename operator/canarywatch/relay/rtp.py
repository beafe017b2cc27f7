"""H.264 over RTP (RFC 6184), interleaved in an RTSP connection (RFC 2326 10.12) (pure).

The relay's RTSP server sends each camera's segments as RTP packets on the RTSP TCP
connection: Annex B access units are split into NAL units, a NAL unit that does not
fit one packet is cut into FU-A fragments, the last packet of an access unit carries
the marker bit.
"""

from __future__ import annotations

import base64
import re
import struct

__all__ = ["MAX_PAYLOAD", "interleaved", "nal_units", "rtp_packets", "sdp"]

#: RTP payload bytes per packet: fits a 1500-byte MTU with IP/TCP/RTP headers.
MAX_PAYLOAD = 1400
PAYLOAD_TYPE = 96
_START_CODE = re.compile(rb"\x00\x00\x01")
_NAL_SPS, _NAL_PPS, _NAL_AUD = 7, 8, 9
_FU_A = 28


def nal_units(access_unit: bytes) -> list[bytes]:
    """The NAL units of an Annex B access unit (start codes and trailing zeros dropped)."""
    starts = [m.end() for m in _START_CODE.finditer(access_unit)]
    units = []
    for index, start in enumerate(starts):
        end = starts[index + 1] - 3 if index + 1 < len(starts) else len(access_unit)
        unit = access_unit[start:end].rstrip(b"\x00")
        if unit:
            units.append(unit)
    return units


def rtp_packets(access_unit: bytes, *, seq: int, timestamp: int, ssrc: int) -> list[bytes]:
    """The RTP packets of one access unit, numbered from ``seq``. Access unit delimiters
    are left out (RFC 6184 allows it; players do not need them)."""
    units = [u for u in nal_units(access_unit) if u[0] & 0x1F != _NAL_AUD]
    packets: list[bytes] = []
    for index, unit in enumerate(units):
        last_unit = index == len(units) - 1
        if len(unit) <= MAX_PAYLOAD:
            packets.append(_header(seq + len(packets), timestamp, ssrc, marker=last_unit) + unit)
            continue
        indicator = (unit[0] & 0xE0) | _FU_A
        nal_type = unit[0] & 0x1F
        body = unit[1:]
        chunks = [body[i : i + MAX_PAYLOAD - 2] for i in range(0, len(body), MAX_PAYLOAD - 2)]
        for position, chunk in enumerate(chunks):
            first, final = position == 0, position == len(chunks) - 1
            fu_header = (0x80 if first else 0) | (0x40 if final else 0) | nal_type
            header = _header(seq + len(packets), timestamp, ssrc, marker=last_unit and final)
            packets.append(header + bytes([indicator, fu_header]) + chunk)
    return packets


def interleaved(channel: int, packet: bytes) -> bytes:
    """One packet framed for an RTSP connection: ``$``, channel, 16-bit length."""
    return struct.pack("!cBH", b"$", channel, len(packet)) + packet


def sdp(*, control: str, parameter_sets: bytes | None) -> str:
    """The session description of one H.264 video track (``sprop-parameter-sets`` from
    the encoder's SPS and PPS when known; they are in-band at every keyframe anyway)."""
    fmtp = "packetization-mode=1"
    if parameter_sets:
        units = [u for u in nal_units(parameter_sets) if u[0] & 0x1F in (_NAL_SPS, _NAL_PPS)]
        if units:
            sps = next((u for u in units if u[0] & 0x1F == _NAL_SPS), units[0])
            fmtp += f";profile-level-id={sps[1:4].hex()}"
            fmtp += ";sprop-parameter-sets=" + ",".join(base64.b64encode(u).decode() for u in units)
    return (
        "v=0\r\n"
        "o=- 0 0 IN IP4 127.0.0.1\r\n"
        "s=canarywatch relay\r\n"
        "t=0 0\r\n"
        f"m=video 0 RTP/AVP {PAYLOAD_TYPE}\r\n"
        "c=IN IP4 0.0.0.0\r\n"
        f"a=rtpmap:{PAYLOAD_TYPE} H264/90000\r\n"
        f"a=fmtp:{PAYLOAD_TYPE} {fmtp}\r\n"
        f"a=control:{control}\r\n"
    )


def _header(seq: int, timestamp: int, ssrc: int, *, marker: bool) -> bytes:
    flags = (0x80 if marker else 0) | PAYLOAD_TYPE
    # sequence numbers and timestamps wrap, as RTP's counters do
    return struct.pack("!BBHII", 0x80, flags, seq & 0xFFFF, timestamp & 0xFFFFFFFF, ssrc)
