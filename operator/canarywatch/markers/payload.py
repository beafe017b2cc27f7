"""The signed payload a canary frame carries, and its byte format.

Layout (23 bytes, big-endian)::

    0      version (1)
    1..3   tenant tag: first 3 bytes of SHA-256("canarywatch/tenant/" + tenant id)
    4..5   camera number (uint16)
    6..9   sequence number (uint32)
    10..13 capture time, whole seconds since the Unix epoch (uint32)
    14     capture time, fraction of a second in 1/256 s
    15..22 HMAC-SHA256 over bytes 0..14 with the tenant's key, truncated to 64 bits

The tenant tag only narrows which keys are tried; attribution always comes from the
HMAC verifying under a key, never from the tag.
"""

from __future__ import annotations

import hashlib
import hmac
import struct
from collections.abc import Callable
from dataclasses import dataclass

__all__ = [
    "MAC_BYTES",
    "MAX_CAMERA",
    "MAX_SEQ",
    "PAYLOAD_BYTES",
    "VERSION",
    "Payload",
    "keyed_mac",
    "mac",
    "pack_signed",
    "split_signed",
    "tenant_tag",
]

VERSION = 1
MAC_BYTES = 8
_FIELDS = struct.Struct(">B3sHIIB")
PAYLOAD_BYTES = _FIELDS.size + MAC_BYTES
MAX_CAMERA = 0xFFFF
MAX_SEQ = 0xFFFFFFFF
_MAX_TIME = 0xFFFFFFFF
# HMAC's pads as `bytes.translate` tables: each key byte XOR 0x36 / 0x5C
_IPAD = bytes(b ^ 0x36 for b in range(256))
_OPAD = bytes(b ^ 0x5C for b in range(256))


def tenant_tag(tenant: str) -> bytes:
    """A short public tag of a tenant id, used to pick the candidate key quickly."""
    return hashlib.sha256(b"canarywatch/tenant/" + tenant.encode("utf-8")).digest()[:3]


@dataclass(frozen=True, slots=True)
class Payload:
    """The fields a canary frame attests to. `time` is Unix seconds (1/256 s resolution)."""

    tenant_tag: bytes
    camera: int
    seq: int
    time: float
    version: int = VERSION

    def __post_init__(self) -> None:
        if len(self.tenant_tag) != 3:
            raise ValueError("tenant_tag must be 3 bytes (use tenant_tag(tenant_id))")
        if not 0 <= self.camera <= MAX_CAMERA:
            raise ValueError(f"camera must be in 0..{MAX_CAMERA}, got {self.camera}")
        if not 0 <= self.seq <= MAX_SEQ:
            raise ValueError(f"seq must be in 0..{MAX_SEQ}, got {self.seq}")
        if not 0 <= self.time < _MAX_TIME:
            raise ValueError(f"time must be Unix seconds in 0..{_MAX_TIME}, got {self.time}")

    def to_bytes(self) -> bytes:
        whole = int(self.time)
        frac = min(255, round((self.time - whole) * 256))
        return _FIELDS.pack(self.version, self.tenant_tag, self.camera, self.seq, whole, frac)

    @classmethod
    def from_bytes(cls, raw: bytes) -> Payload:
        version, tag, camera, seq, whole, frac = _FIELDS.unpack(raw)
        return cls(tenant_tag=tag, camera=camera, seq=seq, time=whole + frac / 256, version=version)


def mac(key: bytes, fields: bytes) -> bytes:
    """The truncated HMAC-SHA256 that signs the payload fields."""
    # the one-shot C implementation: a verdict computes at least one of these per frame
    return hmac.digest(key, fields, "sha256")[:MAC_BYTES]


def keyed_mac(key: bytes) -> Callable[[bytes], bytes]:
    """`mac` with `key` bound: HMAC-SHA256 (RFC 2104) from the key's inner and outer
    hashes, computed once and copied per message. A viewer verifies every frame, and the
    one-shot `hmac.digest` looks the digest up and re-keys each time (three times the
    cost when caches are cold); `hmac.HMAC.copy` adds a Python object per message."""
    block = hashlib.sha256().block_size
    if len(key) > block:
        key = hashlib.sha256(key).digest()
    key = key.ljust(block, b"\0")
    inner = hashlib.sha256(key.translate(_IPAD))
    outer = hashlib.sha256(key.translate(_OPAD))

    def sign(fields: bytes) -> bytes:
        h = inner.copy()
        h.update(fields)
        o = outer.copy()
        o.update(h.digest())
        return o.digest()[:MAC_BYTES]

    return sign


def pack_signed(payload: Payload, key: bytes) -> bytes:
    """Payload fields followed by their MAC: the message that error correction protects."""
    fields = payload.to_bytes()
    return fields + mac(key, fields)


def split_signed(message: bytes) -> tuple[bytes, bytes]:
    """(fields, mac) of a signed message; raises ValueError on a wrong length."""
    if len(message) != PAYLOAD_BYTES:
        raise ValueError(f"signed payload must be {PAYLOAD_BYTES} bytes, got {len(message)}")
    return message[:-MAC_BYTES], message[-MAC_BYTES:]
