"""The issue's robustness bar: >= 99.5 % exact decodes per degradation, zero false attributions."""

import pytest

from canarywatch.bench.degradations import DEGRADATIONS, Degradation, h264_roundtrip, samples
from canarywatch.markers import Decoder, Keyring, Status

FRAMES = 200  # 99.5 % of 200: at most one miss per degradation


def _score(decoder: Decoder, batch: list) -> tuple[int, int, list[str]]:  # type: ignore[type-arg]
    correct = false = 0
    misses: list[str] = []
    for s in batch:
        obs = (
            decoder.decode(s.received) if isinstance(s.received, bytes) else decoder.decode_image(s.received)
        )
        if obs.status is Status.VERIFIED and obs.payload is not None:
            if (obs.tenant, obs.payload.camera, obs.payload.seq) == (
                s.spec.tenant,
                s.spec.camera,
                s.spec.seq,
            ):
                correct += 1
            else:
                false += 1
        else:
            assert obs.status is not Status.NOT_CANARY, f"a canary frame looked foreign: {obs.reason}"
            misses.append(obs.reason)
    return correct, false, misses


@pytest.mark.slow
@pytest.mark.parametrize("degradation", DEGRADATIONS, ids=lambda d: d.name)
def test_decodes_through_degradation(keyring: Keyring, decoder: Decoder, degradation: Degradation) -> None:
    batch = list(samples(degradation, keyring, FRAMES, seed=sum(map(ord, degradation.name))))
    correct, false, misses = _score(decoder, batch)
    assert false == 0
    assert correct >= 0.995 * FRAMES, misses[:5]


@pytest.mark.slow
def test_decodes_through_low_bitrate_h264(keyring: Keyring, decoder: Decoder) -> None:
    batch = list(h264_roundtrip(keyring, FRAMES, seed=7, bitrate=150_000))
    assert len(batch) >= FRAMES * 0.95  # the encoder may hold back a trailing frame or two
    correct, false, misses = _score(decoder, batch)
    assert false == 0
    assert correct >= 0.995 * len(batch), misses[:5]
