"""The reduced-scale read is a shortcut, never a different answer.

A JPEG is first decoded at 1/2–1/8 scale; only a clean codeword with a verified MAC is
concluded there. Everything else — including every non-ok verdict — comes from the
full-resolution decode, so the reduced read can neither attribute differently nor make
a damaged canary look foreign.
"""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np
import pytest

from canarywatch.bench.degradations import DEGRADATIONS, Degradation, samples
from canarywatch.markers import Decoder, FrameSpec, Keyring, Status, encode_image, render_frame
from canarywatch.markers import decode as decode_module

NOW = 1_795_000_000.5
PER_DEGRADATION = 40


@pytest.fixture
def reduce_calls(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The scale of every decode the decoder performs, in order."""
    calls: list[int] = []
    real = decode_module.load_gray

    def spy(data: bytes, info: Any, *, reduce: int = 1) -> np.ndarray:
        calls.append(reduce)
        return real(data, info, reduce=reduce)

    monkeypatch.setattr(decode_module, "load_gray", spy)
    return calls


def _canary(keyring: Keyring, tenant: str = "acme-7", w: int = 1280, h: int = 720) -> np.ndarray:
    return render_frame(FrameSpec(tenant, 3, 41, NOW, w, h), keyring.key(tenant))


@pytest.mark.parametrize("degradation", DEGRADATIONS, ids=lambda d: d.name)
def test_reduced_decode_agrees_with_full_decode(keyring: Keyring, degradation: Degradation) -> None:
    with_reduced, full_only = Decoder(keyring), Decoder(keyring, reduced_path=False)
    batch = samples(degradation, keyring, PER_DEGRADATION, seed=sum(map(ord, degradation.name)) + 5)
    for s in batch:
        assert isinstance(s.received, bytes)
        got, reference = with_reduced.decode(s.received), full_only.decode(s.received)
        if got.path == "reduced":
            assert got.status is Status.VERIFIED
            assert (reference.status, reference.tenant, reference.payload) == (
                Status.VERIFIED,
                got.tenant,
                got.payload,
            )
        else:  # fell back: the answer is the full decode's, whatever it is
            assert got == reference


@pytest.mark.parametrize(("w", "h", "scale"), [(1920, 1080, 8), (1280, 720, 8), (640, 360, 4), (320, 180, 2)])
def test_a_clean_frame_is_judged_on_the_reduced_decode_alone(
    keyring: Keyring, reduce_calls: list[int], w: int, h: int, scale: int
) -> None:
    obs = Decoder(keyring).decode(encode_image(_canary(keyring, "bravo-2", w, h)))
    assert (obs.status, obs.tenant, obs.path, obs.confidence) == (Status.VERIFIED, "bravo-2", "reduced", 1.0)
    assert reduce_calls == [scale]


def test_a_symbol_error_falls_back_to_full_resolution_and_is_corrected(
    keyring: Keyring, reduce_calls: list[int]
) -> None:
    frame = _canary(keyring)
    frame[40:120, 40:200] = (100, 40, 40)  # paint over data modules: symbol errors
    obs = Decoder(keyring).decode(encode_image(frame))
    assert reduce_calls == [8, 1]
    assert (obs.status, obs.tenant, obs.path) == (Status.VERIFIED, "acme-7", "fast")
    assert obs.confidence < 1.0


def test_a_forged_frame_is_called_forged_only_after_a_full_decode(reduce_calls: list[int]) -> None:
    stranger = Keyring.generate(["acme-7"])
    obs = Decoder(Keyring.generate(["acme-7", "bravo-2"])).decode(encode_image(_canary(stranger)))
    assert obs.status is Status.FORGED and obs.tenant is None
    assert reduce_calls == [8, 1] and obs.path == "fast"


def test_content_is_called_not_a_canary_only_after_a_full_decode(
    keyring: Keyring, reduce_calls: list[int]
) -> None:
    rng = np.random.default_rng(3)
    noise = cv2.GaussianBlur(rng.integers(0, 256, (720, 1280, 3), dtype=np.uint8), (0, 0), 4)
    obs = Decoder(keyring).decode(encode_image(noise))
    assert obs.status in (Status.NOT_CANARY, Status.DEGRADED, Status.UNDECODABLE)
    assert reduce_calls == [8, 1]


def test_png_and_small_jpegs_are_decoded_once_at_full_resolution(
    keyring: Keyring, reduce_calls: list[int]
) -> None:
    decoder = Decoder(keyring)
    assert decoder.decode(encode_image(_canary(keyring), "png")).status is Status.VERIFIED
    assert decoder.decode(encode_image(_canary(keyring, w=160, h=90))).status is Status.VERIFIED
    assert reduce_calls == [1, 1]
