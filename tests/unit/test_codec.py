"""Render → decode, attribution, forgery, and hostile input."""

import struct

import cv2
import numpy as np
import pytest

from canarywatch.markers import Decoder, FrameSpec, Keyring, Status, encode_image, render_frame
from canarywatch.markers.images import ImageLimits

NOW = 1_795_000_000.5


def frame(
    keyring: Keyring,
    tenant: str = "acme-7",
    *,
    camera: int = 2,
    seq: int = 77,
    w: int = 640,
    h: int = 360,
) -> np.ndarray:
    return render_frame(FrameSpec(tenant, camera, seq, NOW, w, h), keyring.key(tenant))


@pytest.mark.parametrize(
    ("w", "h"), [(1920, 1080), (1280, 720), (640, 360), (320, 180), (160, 90), (640, 480)]
)
@pytest.mark.parametrize("fmt", ["jpeg", "png"])
def test_roundtrip_sizes_and_formats(keyring: Keyring, decoder: Decoder, w: int, h: int, fmt: str) -> None:
    obs = decoder.decode(encode_image(frame(keyring, "bravo-2", w=w, h=h), fmt))
    assert obs.status is Status.VERIFIED
    assert obs.tenant == "bravo-2"
    assert obs.payload is not None
    assert (obs.payload.camera, obs.payload.seq, obs.payload.time) == (2, 77, NOW)


def test_720p_modules_are_aligned_to_the_jpeg_grid(keyring: Keyring) -> None:
    img = frame(keyring, w=1280, h=720)
    # every 8×8 block is a single colour, so JPEG's DCT sees flat blocks
    blocks = img.reshape(90, 8, 160, 8, 3)
    uniform = (blocks == blocks[:, :1, :, :1, :]).all(axis=(1, 3, 4))
    caption_rows = slice(40, 50)  # the caption box is text, not modules
    outside = np.ones_like(uniform)
    outside[caption_rows, 40:120] = False
    assert uniform[outside].all()


def test_frame_from_a_key_nobody_knows_is_forged(decoder: Decoder) -> None:
    stranger = Keyring.generate(["acme-7"])  # same tenant id, different key
    obs = decoder.decode(encode_image(frame(stranger)))
    assert obs.status is Status.FORGED
    assert obs.tenant is None
    assert "invalid under all 4 known keys" in obs.reason


def test_decoder_without_the_tenants_key_does_not_attribute(keyring: Keyring) -> None:
    other = Decoder(Keyring({"acme-7": keyring.key("acme-7")}))
    obs = other.decode(encode_image(frame(keyring, "bravo-2")))
    assert obs.status is Status.FORGED and obs.tenant is None


def test_grayscale_night_mode_decodes(keyring: Keyring, decoder: Decoder) -> None:
    gray = cv2.cvtColor(frame(keyring), cv2.COLOR_BGR2GRAY)
    obs = decoder.decode_image(gray)
    assert obs.status is Status.VERIFIED and obs.tenant == "acme-7"


def test_blank_image_is_undecodable(decoder: Decoder) -> None:
    obs = decoder.decode(encode_image(np.full((360, 640, 3), 30, np.uint8)))
    assert obs.status is Status.UNDECODABLE and "blank" in obs.reason


def _jpeg_with_size(width: int, height: int) -> bytes:
    real = encode_image(np.zeros((8, 8, 3), np.uint8))
    i = real.index(b"\xff\xc0")
    return real[: i + 5] + struct.pack(">HH", height, width) + real[i + 9 :]


def _png_with_size(width: int, height: int) -> bytes:
    real = encode_image(np.zeros((8, 8, 3), np.uint8), "png")
    return real[:16] + struct.pack(">II", width, height) + real[24:]


HOSTILE = {
    "empty": (b"", "empty body"),
    "garbage": (bytes(range(256)) * 4, "not an image"),
    "truncated jpeg": (None, "truncated JPEG"),
    "jpeg header only": (b"\xff\xd8\xff\xe0\x00\x10JFIF\x00", "truncated JPEG"),
    "huge jpeg header": (_jpeg_with_size(60000, 60000), "60000x60000"),
    "huge png header": (_png_with_size(100000, 100000), "100000x100000"),
    "zero png": (_png_with_size(0, 10), "empty 0x10"),
    "gif": (b"GIF89a\x10\x00\x10\x00\x00\x00\x00;", ""),
    "html": (b"<html><body>502 Bad Gateway</body></html>", "not an image"),
}


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_hostile_inputs_become_undecodable_with_a_reason(
    keyring: Keyring, decoder: Decoder, name: str
) -> None:
    data, reason = HOSTILE[name]
    if data is None:
        full = encode_image(frame(keyring))
        data = full[: len(full) // 2]
    obs = decoder.decode(data)
    assert obs.status is Status.UNDECODABLE
    assert obs.reason and reason in obs.reason


def test_body_over_the_cap_is_refused_before_decoding(keyring: Keyring) -> None:
    decoder = Decoder(keyring, limits=ImageLimits(max_bytes=1_000_000))
    big = encode_image(frame(keyring)) + b"\0" * (50 * 1024 * 1024)
    obs = decoder.decode(big)
    assert obs.status is Status.UNDECODABLE and "exceeds" in obs.reason


def test_corrupt_scan_data_never_raises(keyring: Keyring, decoder: Decoder) -> None:
    data = bytearray(encode_image(frame(keyring)))
    rng = np.random.default_rng(3)
    for _ in range(200):
        broken = bytearray(data)
        for pos in rng.integers(20, len(broken) - 2, 30):
            broken[pos] = int(rng.integers(0, 256))
        obs = decoder.decode(bytes(broken))
        assert obs.status is not Status.VERIFIED or obs.tenant == "acme-7"


def test_forged_reason_says_whether_the_claimed_tenant_is_known(keyring: Keyring, decoder: Decoder) -> None:
    impostor = Keyring.generate(["nobody-9"])
    obs = decoder.decode(encode_image(frame(impostor, "nobody-9")))
    assert obs.status is Status.FORGED and "is unknown" in obs.reason
    assert keyring.knows_tag(obs.payload.tenant_tag if obs.payload else b"") is False
