import numpy as np
import pytest

from canarywatch.markers import ecc

MESSAGE = bytes(range(ecc.PAYLOAD_BYTES))


def test_clean_codeword_passes_the_fast_syndrome_check() -> None:
    cw = ecc.encode(MESSAGE)
    assert ecc.is_codeword(np.frombuffer(cw, np.uint8))
    damaged = bytearray(cw)
    damaged[7] ^= 1
    assert not ecc.is_codeword(np.frombuffer(bytes(damaged), np.uint8))


@pytest.mark.parametrize("errors", [1, 5, ecc.PARITY_BYTES // 2])
def test_corrects_up_to_half_the_parity_in_errors(errors: int) -> None:
    rng = np.random.default_rng(errors)
    cw = bytearray(ecc.encode(MESSAGE))
    for pos in rng.choice(len(cw), errors, replace=False):
        cw[pos] ^= int(rng.integers(1, 256))
    got = ecc.correct(bytes(cw))
    assert got is not None and got.message == MESSAGE and got.errors == errors


def test_erasures_double_the_capacity() -> None:
    cw = bytearray(ecc.encode(MESSAGE))
    erased = list(range(0, 2 * ecc.PARITY_BYTES, 2))
    for pos in erased:
        cw[pos] = 0
    assert ecc.correct(bytes(cw)) is None
    got = ecc.correct(bytes(cw), erased)
    assert got is not None and got.message == MESSAGE and got.budget_used == 1.0


def test_beyond_capacity_never_returns_the_original_silently_wrong() -> None:
    rng = np.random.default_rng(0)
    for _ in range(200):
        cw = bytearray(ecc.encode(MESSAGE))
        for pos in rng.choice(len(cw), ecc.PARITY_BYTES, replace=False):
            cw[pos] ^= int(rng.integers(1, 256))
        got = ecc.correct(bytes(cw))
        # beyond capacity: either refused or a *different* codeword, which the MAC rejects
        assert got is None or got.budget_used > 0


def test_the_syndrome_check_agrees_with_reed_solomon() -> None:
    rng = np.random.default_rng(7)
    for _ in range(300):
        cw = np.frombuffer(ecc.encode(rng.bytes(ecc.PAYLOAD_BYTES)), np.uint8)
        assert ecc.is_codeword(cw)
        bits = np.unpackbits(cw)
        bits[rng.choice(bits.size, int(rng.integers(1, 9)), replace=False)] ^= 1
        damaged = np.packbits(bits)
        # a few flipped bits are never another codeword (distance 21 bytes), and are repairable
        assert not ecc.is_codeword(damaged)
        assert ecc.correct(damaged.tobytes()) is not None


def test_the_table_encoder_agrees_with_reed_solomon() -> None:
    import random

    import reedsolo

    codec, rng = reedsolo.RSCodec(ecc.PARITY_BYTES), random.Random(11)
    messages = [bytes(len(MESSAGE)), bytes([255]) * len(MESSAGE), MESSAGE]
    messages += [rng.randbytes(len(MESSAGE)) for _ in range(300)]
    for message in messages:
        assert ecc.encode(message) == bytes(codec.encode(message))
