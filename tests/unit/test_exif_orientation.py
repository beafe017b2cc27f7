"""A JPEG's EXIF orientation is read without OpenCV and applied as ``cv2.imdecode`` applied
it, and a canary stored turned under its tag is verified (never ``foreign``), as it was
when OpenCV decoded every JPEG; a tag alone attributes nothing."""

from __future__ import annotations

import struct

import cv2
import numpy as np
import pytest
import skimage.data
from exif import stored_turned, with_orientation
from hypothesis import given
from hypothesis import strategies as st

from canarywatch.bench.adversarial import KINDS, SEED_KEYS, _case
from canarywatch.markers import Decoder, FrameSpec, Keyring, Status, encode_image, images, render_frame
from canarywatch.markers.images import load_gray, probe
from canarywatch.markers.orientation import exif_orientation, oriented


def photo(width: int = 320, height: int = 200) -> np.ndarray:
    """A photograph, not square (a quarter turn shows in its shape too)."""
    image = cv2.cvtColor(skimage.data.astronaut(), cv2.COLOR_RGB2BGR)
    return cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA)


@pytest.mark.parametrize("byte_order", ["MM", "II"])
@pytest.mark.parametrize("orientation", range(1, 9))
def test_the_tag_is_applied_as_opencv_applied_it(orientation: int, byte_order: str) -> None:
    jpeg = with_orientation(encode_image(photo(), quality=90), orientation, byte_order=byte_order)
    assert probe(jpeg).orientation == orientation
    shown_by_opencv = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_GRAYSCALE)
    assert np.array_equal(oriented(load_gray(jpeg, probe(jpeg)), orientation), shown_by_opencv)


def _app1(payload: bytes) -> bytes:
    return b"\xff\xe1" + struct.pack(">H", len(payload) + 2) + payload


def _tiff(entry: bytes, *, count: int = 1, magic: int = 42, ifd: int = 8) -> bytes:
    return b"MM" + struct.pack(">HI", magic, ifd) + struct.pack(">H", count) + entry + bytes(4)


ORIENTATION_SIX = struct.pack(">HHIHH", 0x0112, 3, 1, 6, 0)


@pytest.mark.parametrize(
    ("segments", "expected"),
    [
        (b"", 1),
        (_app1(b"http://ns.adobe.com/xap/1.0/\x00<x:xmpmeta/>"), 1),  # XMP, no EXIF
        (_app1(b"http://ns.adobe.com/xap/1.0/\x00<x/>") + _app1(b"Exif\x00\x00" + _tiff(ORIENTATION_SIX)), 6),
        (_app1(b"Exif\x00\x00" + _tiff(struct.pack(">HHIHH", 0x0112, 3, 1, 9, 0))), 1),  # out of range
        (_app1(b"Exif\x00\x00" + _tiff(struct.pack(">HHIHH", 0x0112, 3, 1, 0, 0))), 1),
        (_app1(b"Exif\x00\x00" + _tiff(struct.pack(">HHII", 0x0112, 4, 1, 6))), 1),  # a LONG, not a SHORT
        (_app1(b"Exif\x00\x00" + _tiff(ORIENTATION_SIX, magic=43)), 1),
        (_app1(b"Exif\x00\x00" + _tiff(ORIENTATION_SIX, ifd=4000)), 1),  # IFD past the segment
        (_app1(b"Exif\x00\x00" + _tiff(b"", count=500)), 1),  # more entries claimed than held
        (_app1(b"Exif\x00\x00" + b"XX" + _tiff(ORIENTATION_SIX)[2:]), 1),  # no byte order
        (_app1(b"Exif\x00\x00MM\x00"), 1),  # cut short
    ],
    ids=[
        "none",
        "xmp",
        "exif-after-xmp",
        "nine",
        "zero",
        "long",
        "magic",
        "ifd-outside",
        "entries-missing",
        "byte-order",
        "short",
    ],
)
def test_a_missing_or_malformed_tag_leaves_the_pixels_as_stored(segments: bytes, expected: int) -> None:
    jpeg = encode_image(photo(64, 40), quality=80)
    assert probe(jpeg[:2] + segments + jpeg[2:]).orientation == expected


@given(st.binary(max_size=300))
def test_any_segment_has_an_orientation_and_never_raises(body: bytes) -> None:
    assert 1 <= exif_orientation(body) <= 8
    assert 1 <= exif_orientation(b"Exif\x00\x00" + body) <= 8
    assert 1 <= exif_orientation(b"Exif\x00\x00MM\x00\x2a\x00\x00\x00\x08" + body) <= 8


def _canary(keyring: Keyring) -> np.ndarray:
    return render_frame(FrameSpec("acme-7", 1, 2, 1_795_000_000.0, 1280, 720), keyring.key("acme-7"))


@pytest.mark.parametrize("orientation", [3, 6, 8])
def test_a_canary_stored_turned_under_its_tag_is_verified(
    keyring: Keyring, decoder: Decoder, orientation: int
) -> None:
    # What a display shows is the canary upright: before JPEGs were decoded by simplejpeg,
    # OpenCV turned it and it verified; as stored, a quarter turn looked like no canary.
    jpeg = encode_image(stored_turned(_canary(keyring), orientation), quality=85)
    obs = decoder.decode(with_orientation(jpeg, orientation))
    assert obs.status is Status.VERIFIED, obs.reason
    assert obs.tenant == "acme-7" and obs.payload is not None and obs.payload.seq == 2


@pytest.mark.parametrize("orientation", [3, 6, 8])
def test_a_tag_on_upright_pixels_does_not_stop_a_canary_verifying(
    keyring: Keyring, decoder: Decoder, orientation: int
) -> None:
    obs = decoder.decode(with_orientation(encode_image(_canary(keyring), quality=85), orientation))
    assert obs.status is Status.VERIFIED and obs.tenant == "acme-7"


@pytest.mark.parametrize("orientation", [3, 6, 8])
def test_a_photograph_under_a_tag_is_still_not_a_canary(decoder: Decoder, orientation: int) -> None:
    jpeg = encode_image(stored_turned(photo(1280, 720), orientation), quality=85)
    obs = decoder.decode(with_orientation(jpeg, orientation))
    assert obs.status is Status.NOT_CANARY, obs.reason


def test_a_jpeg_comes_as_stored_from_either_decoder(monkeypatch: pytest.MonkeyPatch) -> None:
    # OpenCV reads the JPEGs simplejpeg refuses; it must not turn them on its own, or a
    # turned reading would turn them twice.
    jpeg = with_orientation(encode_image(photo(), quality=90), 6)
    info = probe(jpeg)
    by_simplejpeg = load_gray(jpeg, info)
    monkeypatch.setattr(images, "_simplejpeg_gray", lambda *_: None)
    assert np.array_equal(load_gray(jpeg, info), by_simplejpeg)


def test_adversarial_images_under_a_tag_attribute_nothing_they_may_not() -> None:
    # The turned read is a second chance to verify: only a MAC that verifies names a
    # tenant, and of every adversarial kind (bench.adversarial) only its own payload.
    decoder = Decoder(Keyring(SEED_KEYS))
    rng = np.random.default_rng(13)
    verified = 0
    for index in range(240):
        image, allowed = _case(index % len(KINDS), rng)
        if not isinstance(image, bytes):
            image = encode_image(cv2.cvtColor(np.asarray(image), cv2.COLOR_GRAY2BGR), quality=90)
        obs = decoder.decode(with_orientation(image, int(rng.integers(2, 9))))
        if obs.status is Status.VERIFIED:
            verified += 1
            assert obs.tenant is not None and obs.payload is not None
            assert (obs.tenant, obs.payload.camera, obs.payload.seq) in allowed
    assert verified > 0  # genuine codewords among them did reach the verifier
