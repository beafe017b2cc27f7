"""Camera JPEGs without OpenCV: simplejpeg's bands of MCU rows joined behind one header
with a restart marker between bands give the pixels of the frame encoded whole, and a
corrupt byte costs its band only."""

from __future__ import annotations

import re
import struct

import cv2
import numpy as np
import pytest
import simplejpeg
from fresh_imports import loaded_after

from canarywatch.markers import Decoder, FrameSpec, Keyring, Status, encode_image, render_frame
from canarywatch.markers.images import probe
from canarywatch.markers.jpeg import MCU_ROWS, encode_jpeg, subsampling

SIZES = [(1280, 720), (640, 360), (320, 180), (333, 187), (64, 36)]


def _frame(keyring: Keyring, width: int, height: int) -> np.ndarray:
    spec = FrameSpec("acme-7", 2, 77, 1_795_000_000.0, width, height)
    return render_frame(spec, keyring.key("acme-7"))


def _restart_interval(data: bytes) -> int:
    dri = data.index(b"\xff\xdd")
    return int(struct.unpack_from(">HH", data, dri + 2)[1])


@pytest.mark.parametrize("quality", [80, 95])
@pytest.mark.parametrize("size", SIZES)
def test_rows_joined_with_restart_markers_decode_to_the_whole_frames_pixels(
    keyring: Keyring, size: tuple[int, int], quality: int
) -> None:
    frame = _frame(keyring, *size)
    step = MCU_ROWS[subsampling(quality)]
    joined = encode_jpeg(frame, quality=quality, band_height=step)
    whole = encode_jpeg(frame, quality=quality)
    assert b"\xff\xdd" not in whole
    # strict: libjpeg's warnings (a bad restart marker, data left over) are errors
    ours = simplejpeg.decode_jpeg(joined, colorspace="BGR", strict=True)
    assert np.array_equal(ours, simplejpeg.decode_jpeg(whole, colorspace="BGR", strict=True))
    assert np.array_equal(ours, cv2.imdecode(np.frombuffer(joined, np.uint8), cv2.IMREAD_COLOR))
    rows = -(-size[1] // step)
    assert _restart_interval(joined) == -(-size[0] // step)  # MCUs in a row
    markers = sum(joined.count(bytes((0xFF, 0xD0 + n))) for n in range(8))
    assert markers == rows - 1
    info = probe(joined)
    assert (info.width, info.height, info.scans, info.mcu_height) == (*size, 1, step)


@pytest.mark.parametrize("quality", [80, 95])
@pytest.mark.parametrize("size", SIZES)
def test_a_band_repeating_the_one_before_is_encoded_as_it_would_be_alone(
    keyring: Keyring, size: tuple[int, int], quality: int
) -> None:
    """A module row spans several MCU rows of the same pixels; their entropy-coded data
    is reused, and must be exactly what encoding each band alone gives."""
    frame = _frame(keyring, *size)
    sampling = subsampling(quality)
    step = MCU_ROWS[sampling]
    alone = [
        _scan_data(
            simplejpeg.encode_jpeg(np.ascontiguousarray(frame[y : y + step]), quality, "BGR", sampling)
        )
        for y in range(0, size[1], step)
    ]
    # markers are never in coded data (a 0xFF there is stuffed with 0x00)
    assert _split_restarts(_scan_data(encode_jpeg(frame, quality=quality, band_height=step))) == alone
    if size == (1280, 720):
        assert len(set(alone)) < len(alone)  # the case this is about: repeated bands


def _scan_data(jpeg: bytes) -> bytes:
    sos = jpeg.rindex(b"\xff\xda")
    (length,) = struct.unpack_from(">H", jpeg, sos + 2)
    return jpeg[sos + 2 + length : -2]


def _split_restarts(data: bytes) -> list[bytes]:
    return re.split(rb"\xff[\xd0-\xd7]", data)


@pytest.mark.parametrize(("quality", "mcu"), [(80, 16), (95, 8)])
def test_camera_jpegs_restart_every_mcu_row(keyring: Keyring, quality: int, mcu: int) -> None:
    body = encode_image(_frame(keyring, 1280, 720), quality=quality, restart_rows=True)
    assert _restart_interval(body) == 1280 // mcu  # the MCUs of one row: what the reduced read cuts at


@pytest.mark.parametrize("band", [16, 80])
def test_a_corrupt_byte_costs_one_band_of_rows(keyring: Keyring, band: int) -> None:
    frame = _frame(keyring, 1280, 720)
    body = bytearray(encode_jpeg(frame, quality=80, band_height=band))
    clean = cv2.imdecode(np.frombuffer(bytes(body), np.uint8), cv2.IMREAD_COLOR)
    start = body.index(b"\xff\xd1")  # the end of band 1, the start of band 2
    end = body.index(b"\xff\xd2", start)
    body[(start + end) // 2 : (start + end) // 2 + 8] = bytes(8)
    damaged = cv2.imdecode(np.frombuffer(bytes(body), np.uint8), cv2.IMREAD_COLOR)
    differs = np.flatnonzero((damaged != clean).any(axis=(1, 2)))
    assert differs.size and differs.min() >= 2 * band - 1 and differs.max() <= 3 * band  # chroma smoothing
    # and the frame still verifies: the ECC corrects a band, not garbage to the bottom
    assert Decoder(keyring).decode(bytes(body)).status is Status.VERIFIED


def test_png_still_encodes(keyring: Keyring) -> None:
    frame = _frame(keyring, 320, 180)
    png = encode_image(frame, "png")
    assert np.array_equal(cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_COLOR), frame)
    with pytest.raises(ValueError, match="format must be jpeg or png"):
        encode_image(frame, "gif")


def test_a_camera_renders_and_encodes_without_opencv() -> None:
    code = (
        "from canarywatch.camera import CanaryCamera\n"
        "cam = CanaryCamera('acme-7', 1, bytes(32), width=640, height=360)\n"
        "assert cam.next_frame(1_795_000_000.0).startswith(b'\\xff\\xd8')\n"
    )
    loaded = loaded_after(code, ("cv2", "av"))
    assert not loaded, f"a camera loaded {loaded}"
