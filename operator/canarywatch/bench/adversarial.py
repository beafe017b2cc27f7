"""Adversarial images for the zero-false-attribution property.

Attribution may only ever name a tenant whose key really signed exactly that
payload. The generators aim at every way that could go wrong: noise, marker
look-alikes with random data, genuine codewords damaged past the RS capacity, a
genuine codeword whose tenant tag was rewritten and re-encoded (valid RS, wrong
MAC), half-and-half splices of two tenants' frames, and mutated JPEG bytes.
Used by the property test and printed by `canarywatch bench codec`.
"""

from __future__ import annotations

import multiprocessing
from collections import Counter
from concurrent.futures import ProcessPoolExecutor

import cv2
import numpy as np

from canarywatch.markers import Decoder, Keyring, Status, ecc, encode_image
from canarywatch.markers.layout import LAYOUT
from canarywatch.markers.payload import Payload, pack_signed, tenant_tag

__all__ = ["KINDS", "run_adversarial"]

KINDS = ("noise", "look-alike", "over-capacity", "retagged", "spliced", "mutated-jpeg")
TENANTS = ("acme-7", "bravo-2", "charlie-3")
SEED_KEYS = {t: bytes([i + 1]) * 32 for i, t in enumerate(TENANTS)}


def _grid_image(bits: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    grid = LAYOUT.fixed.copy()
    grid[LAYOUT.data_rows, LAYOUT.data_cols] = bits[: LAYOUT.data_bits].astype(bool)
    img = np.where(grid, 47, 202).astype(np.uint8)
    w = int(rng.choice([64, 96, 128]))
    return np.asarray(cv2.resize(img, (w, w * 9 // 16), interpolation=cv2.INTER_NEAREST))


def _codeword_bits(codeword: bytes) -> np.ndarray:
    bits = np.zeros(LAYOUT.data_bits, np.uint8)
    bits[: len(codeword) * 8] = np.unpackbits(np.frombuffer(codeword, np.uint8))
    return np.asarray(bits ^ LAYOUT.whitening)


def _genuine(rng: np.random.Generator) -> tuple[str, Payload]:
    tenant = TENANTS[int(rng.integers(0, len(TENANTS)))]
    payload = Payload(
        tenant_tag(tenant),
        int(rng.integers(0, 65536)),
        int(rng.integers(0, 2**32)),
        float(rng.integers(0, 2**31)),
    )
    return tenant, payload


def _case(kind: int, rng: np.random.Generator) -> tuple[object, set[tuple[str, int, int]]]:
    """(image bytes or array, the set of (tenant, camera, seq) that may be attributed)."""
    if kind == 0:  # noise of random size and texture
        h, w = int(rng.integers(20, 120)), int(rng.integers(36, 200))
        noise: np.ndarray = rng.integers(0, 256, (h, w), dtype=np.uint8)
        if rng.random() < 0.5:
            noise = np.asarray(cv2.GaussianBlur(noise, (0, 0), float(rng.uniform(0.5, 4))))
        return noise, set()
    if kind == 1:  # marker look-alike: real anchors and ring, random data modules
        return _grid_image(rng.integers(0, 2, LAYOUT.data_bits, dtype=np.uint8), rng), set()
    tenant, payload = _genuine(rng)
    message = pack_signed(payload, SEED_KEYS[tenant])
    codeword = bytearray(ecc.encode(message))
    truth = {(tenant, payload.camera, payload.seq)}
    if kind == 2:  # genuine codeword damaged at or past the correction capacity
        for pos in rng.choice(
            len(codeword), int(rng.integers(ecc.PARITY_BYTES // 2, len(codeword))), replace=False
        ):
            codeword[pos] ^= int(rng.integers(1, 256))
        return _grid_image(_codeword_bits(bytes(codeword)), rng), truth
    if kind == 3:  # tenant tag rewritten to another tenant and re-encoded: valid RS, wrong MAC
        victim = TENANTS[(TENANTS.index(tenant) + 1) % len(TENANTS)]
        forged = bytearray(message)
        forged[1:4] = tenant_tag(victim)
        if rng.random() < 0.5:  # ... or the victim's fields with a MAC copied from elsewhere
            forged[15:23] = rng.integers(0, 256, 8, dtype=np.uint8).tobytes()
        return _grid_image(_codeword_bits(ecc.encode(bytes(forged))), rng), set()
    if kind == 4:  # spliced halves of two tenants' frames
        other, p2 = _genuine(rng)
        a = _grid_image(_codeword_bits(bytes(codeword)), np.random.default_rng(1))
        b = _grid_image(
            _codeword_bits(ecc.encode(pack_signed(p2, SEED_KEYS[other]))), np.random.default_rng(1)
        )
        cut = int(rng.integers(8, a.shape[1] - 8))
        return np.concatenate([a[:, :cut], b[:, cut:]], axis=1), truth | {(other, p2.camera, p2.seq)}
    # kind 5: mutated JPEG bytes of a genuine frame
    img = _grid_image(_codeword_bits(bytes(codeword)), rng)
    data = bytearray(encode_image(cv2.cvtColor(img, cv2.COLOR_GRAY2BGR), quality=int(rng.integers(10, 95))))
    for pos in rng.integers(2, len(data), int(rng.integers(1, 12))):
        data[pos] = int(rng.integers(0, 256))
    return bytes(data), truth


# cheap kinds dominate so the 100k images fit in CI's budget; every kind gets thousands
_WEIGHTS = np.array([0.40, 0.12, 0.12, 0.12, 0.12, 0.12])


def _run_chunk(args: tuple[int, int]) -> tuple[Counter[str], list[str]]:
    seed, count = args
    cv2.setNumThreads(1)
    decoder = Decoder(Keyring(SEED_KEYS))
    rng = np.random.default_rng(seed)
    counts: Counter[str] = Counter()
    bad: list[str] = []
    for kind in rng.choice(len(_WEIGHTS), count, p=_WEIGHTS):
        image, allowed = _case(int(kind), rng)
        obs = decoder.decode(image) if isinstance(image, bytes) else decoder.decode_image(image)  # type: ignore[arg-type]
        counts[f"{KINDS[kind]}:{obs.status.value}"] += 1
        if obs.status is Status.VERIFIED:
            assert obs.payload is not None and obs.tenant is not None
            if (obs.tenant, obs.payload.camera, obs.payload.seq) not in allowed:
                bad.append(
                    f"kind {kind}: attributed to {obs.tenant} cam {obs.payload.camera} seq {obs.payload.seq}"
                )
    return counts, bad


def run_adversarial(total: int, *, workers: int = 2, chunks: int = 40) -> tuple[Counter[str], list[str]]:
    """Decode `total` adversarial images; (verdict counts per kind, false attributions)."""
    # spawn, not fork: a forked OpenCV thread pool can deadlock in the child
    context = multiprocessing.get_context("spawn")
    totals: Counter[str] = Counter()
    bad: list[str] = []
    per_chunk = -(-total // chunks)
    with ProcessPoolExecutor(workers, mp_context=context) as pool:
        for counts, wrong in pool.map(_run_chunk, [(seed, per_chunk) for seed in range(chunks)]):
            totals.update(counts)
            bad.extend(wrong)
    return totals, bad
