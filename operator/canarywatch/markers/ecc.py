"""Reed–Solomon protection of the signed payload (GF(2^8), poly 0x11d, generator 2, fcr 0).

Encoding and error/erasure correction use `reedsolo`; the clean-frame check that
runs on every frame is a vectorised syndrome computation, because a pure-Python
decode costs ~100 µs even when there is nothing to correct. Syndromes are linear over
GF(2) in the codeword's bits, so the check is one small matrix product on the bits the
decoder has just read (a few µs), not a table lookup per byte and syndrome.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import reedsolo

from canarywatch.markers.payload import PAYLOAD_BYTES

__all__ = [
    "CODEWORD_BYTES",
    "PARITY_BYTES",
    "Correction",
    "correct",
    "encode",
    "is_codeword",
    "is_codeword_bits",
]

PARITY_BYTES = 20
CODEWORD_BYTES = PAYLOAD_BYTES + PARITY_BYTES

_CODEC = reedsolo.RSCodec(PARITY_BYTES)  # same field parameters as the syndrome check below


def _tables() -> tuple[np.ndarray, np.ndarray]:
    exp = np.zeros(512, dtype=np.int32)
    log = np.zeros(256, dtype=np.int32)
    x = 1
    for i in range(255):
        exp[i] = x
        log[x] = i
        x <<= 1
        if x & 0x100:
            x ^= 0x11D
    exp[255:510] = exp[:255]
    return exp, log


_EXP, _LOG = _tables()
# exponent of α^(i·(n-1-k)) for syndrome i and codeword position k
_POWERS = (np.arange(PARITY_BYTES)[:, None] * (CODEWORD_BYTES - 1 - np.arange(CODEWORD_BYTES))[None, :]) % 255


def encode(message: bytes) -> bytes:
    """Systematic codeword: `message` followed by its parity bytes."""
    if len(message) != PAYLOAD_BYTES:
        raise ValueError(f"message must be {PAYLOAD_BYTES} bytes, got {len(message)}")
    return bytes(_CODEC.encode(message))


def _parity_check() -> np.ndarray:
    """(syndrome bits, codeword bits) matrix over GF(2), as float32 for a BLAS product.

    Column 8k+b is what bit b (MSB first) of codeword byte k adds to the 20 syndromes,
    each spread over its 8 bits; a word is a codeword iff the product is even everywhere.
    """
    check = np.zeros((PARITY_BYTES * 8, CODEWORD_BYTES * 8), dtype=np.float32)
    shifts = np.arange(8)
    for b in range(8):
        contribution = _EXP[(_LOG[1 << (7 - b)] + _POWERS) % 255]  # (syndrome, byte)
        bits = (contribution[:, None, :] >> shifts[None, :, None]) & 1  # (syndrome, bit, byte)
        check[:, b::8] = bits.reshape(PARITY_BYTES * 8, CODEWORD_BYTES)
    return check


_CHECK = _parity_check()


def is_codeword_bits(bits: np.ndarray) -> bool:
    """`is_codeword` for the codeword's CODEWORD_BYTES*8 bits (0/1, MSB of byte 0 first)."""
    # sums are at most 344, exact in float32; the parity is the low bit
    return not ((_CHECK @ bits.astype(np.float32)).astype(np.int16) & 1).any()


def is_codeword(codeword: np.ndarray) -> bool:
    """True when all syndromes vanish (the frame arrived without a single symbol error)."""
    return is_codeword_bits(np.unpackbits(codeword))


@dataclass(frozen=True, slots=True)
class Correction:
    message: bytes
    errors: int
    erasures: int

    @property
    def budget_used(self) -> float:
        """Share of the code's correction capacity this decode consumed (0 = clean)."""
        return (2 * self.errors + self.erasures) / PARITY_BYTES


def correct(codeword: bytes, erasures: Sequence[int] = ()) -> Correction | None:
    """Correct errors and erasures; None when the codeword is beyond repair."""
    if len(erasures) > PARITY_BYTES:
        return None
    try:
        message, _, errata = _CODEC.decode(bytearray(codeword), erase_pos=list(erasures) or None)
    except reedsolo.ReedSolomonError:
        return None
    errors = len(set(errata) - set(erasures))
    if 2 * errors + len(erasures) > PARITY_BYTES:
        return None
    return Correction(bytes(message), errors, len(erasures))
