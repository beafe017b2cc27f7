"""Damaged and hostile frames become `degraded` or `undecodable`, never `foreign`, and
never cost more than the image limits allow.

A canary cut short by a broken cache (its JPEG ending early, an end-of-image marker
appended) or shown as only its top rows once came out `foreign`: a critical page and
a production switch-off for a broken frame.
"""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import skimage.data

from canarywatch.bench.hostile import progressive_bomb, top_rows, truncated_jpeg
from canarywatch.markers import Decoder, FrameSpec, Keyring, Status, encode_image, render_frame
from canarywatch.markers.damage import scan_damage
from canarywatch.markers.images import ImageLimits, probe
from canarywatch.viewer.transports import MultipartParser, MultipartPart, OversizedPart

SHARES = [0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7]
SIZES = [(1280, 720), (640, 360)]


def _canary(keyring: Keyring, width: int, height: int) -> np.ndarray:
    return render_frame(FrameSpec("acme-7", 1, 2, 1_795_000_000.0, width, height), keyring.key("acme-7"))


@pytest.mark.parametrize("restart_rows", [False, True])
@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("share", SHARES)
def test_a_canary_cut_short_is_never_foreign(
    keyring: Keyring, decoder: Decoder, share: float, size: tuple[int, int], restart_rows: bool
) -> None:
    data = encode_image(_canary(keyring, *size), quality=85, restart_rows=restart_rows)
    obs = decoder.decode(truncated_jpeg(data, share))
    assert obs.status in (Status.DEGRADED, Status.UNDECODABLE, Status.VERIFIED), obs.reason
    if obs.status is Status.VERIFIED:  # the signature survived: that is still proof
        assert obs.tenant == "acme-7"


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("share", [0.1, 0.2, 0.3, 0.4, 0.5, 0.6])
def test_the_top_rows_of_a_canary_are_degraded_not_foreign(
    keyring: Keyring, decoder: Decoder, share: float, size: tuple[int, int]
) -> None:
    obs = decoder.decode(top_rows(_canary(keyring, *size), share))
    assert obs.status is Status.DEGRADED, obs.reason
    assert "canary border" in obs.reason


def test_a_photograph_cut_short_is_undecodable_and_whole_it_is_foreign(decoder: Decoder) -> None:
    photo = cv2.resize(skimage.data.astronaut()[..., ::-1], (1280, 720))
    data = encode_image(np.ascontiguousarray(photo), quality=85)
    assert decoder.decode(data).status is Status.NOT_CANARY
    cut = decoder.decode(truncated_jpeg(data, 0.4))
    assert cut.status is Status.UNDECODABLE and "damaged JPEG scan" in cut.reason
    assert decoder.decode(top_rows(photo, 0.5)).status is Status.NOT_CANARY


def test_a_progressive_jpeg_of_thousands_of_scans_is_rejected_before_decoding(decoder: Decoder) -> None:
    bomb = progressive_bomb()  # ~99 KB, 4096x4096: seconds of CPU per decode
    assert len(bomb) < 100_000
    obs = decoder.decode(bomb)
    assert obs.status is Status.UNDECODABLE
    assert "scans at 4096x4096: above the decode budget" in obs.reason


def test_a_progressive_camera_frame_is_within_the_scan_budget(keyring: Keyring, decoder: Decoder) -> None:
    frame = _canary(keyring, 1280, 720)
    ok, buf = cv2.imencode(".jpg", frame, [cv2.IMWRITE_JPEG_PROGRESSIVE, 1, cv2.IMWRITE_JPEG_QUALITY, 80])
    assert ok
    data = buf.tobytes()
    assert probe(data).scans > 1
    obs = decoder.decode(data)
    assert obs.status is Status.VERIFIED and obs.tenant == "acme-7"


def test_the_scan_budget_shrinks_with_the_frame(keyring: Keyring) -> None:
    big = progressive_bomb(4096, size=1)  # tables, the DC scan and one AC scan
    limits = ImageLimits()
    assert probe(big, limits).scans == 2
    tight = ImageLimits(max_scan_pixels=4096 * 4096)
    with pytest.raises(Exception, match="above the decode budget"):
        probe(big, tight)


def test_a_decode_stops_at_its_time_budget(decoder: Decoder) -> None:
    photo = cv2.resize(skimage.data.astronaut()[..., ::-1], (1920, 1080))
    data = encode_image(np.ascontiguousarray(photo), quality=85)
    obs = decoder.decode(data, budget_s=1e-9)  # over it before the first stage
    assert obs.status is Status.UNDECODABLE and "budget" in obs.reason
    assert decoder.decode(data).status is Status.NOT_CANARY


@pytest.mark.parametrize("chunk_size", [1, 64, 1 << 20])
def test_an_mjpeg_part_announcing_an_absurd_length_is_reported_and_skipped_to_the_next_boundary(
    chunk_size: int,
) -> None:
    good = b"\xff\xd8GOOD\xff\xd9"
    raw = (
        b"--f\r\nContent-Type: image/jpeg\r\nContent-Length: 99999999999999\r\n\r\n"
        + b"\xff\xd8"
        + b"Z" * 3000
        + b"\r\n--f\r\nContent-Length: %d\r\n\r\n" % len(good)
        + good
        + b"\r\n--f\r\n\r\n"
        + good
        + b"\r\n--f--"
    )
    parser = MultipartParser("f", max_part_bytes=1000)
    parts: list[MultipartPart | OversizedPart] = []
    for start in range(0, len(raw), chunk_size):
        parts += parser.feed(raw[start : start + chunk_size])
        assert len(parser._buffer) <= 1000 + chunk_size + 64  # nothing of it is kept
    assert [type(p).__name__ for p in parts] == ["OversizedPart", "MultipartPart", "MultipartPart"]
    assert isinstance(parts[0], OversizedPart) and parts[0].size == 99999999999999
    assert [p.body for p in parts[1:] if isinstance(p, MultipartPart)] == [good, good]


def test_junk_between_header_segments_is_no_damage(decoder: Decoder) -> None:
    # Some cameras pad between segments; libjpeg warns ("extraneous bytes before marker
    # 0xc4") but the pixels are whole: a photograph so padded is still foreign.
    photo = cv2.resize(skimage.data.astronaut()[..., ::-1], (640, 360))
    data = encode_image(np.ascontiguousarray(photo), quality=85)
    table = data.index(b"\xff\xc4")
    padded = data[:table] + b"\x00\x00\x00" + data[table:]
    assert scan_damage(padded) is None
    assert decoder.decode(padded).status is Status.NOT_CANARY
    assert scan_damage(truncated_jpeg(data, 0.5)) is not None


def test_an_mjpeg_part_announcing_an_absurd_length_is_reported_before_its_body() -> None:
    head = b"--f\r\nContent-Type: image/jpeg\r\nContent-Length: 99999999999999\r\n\r\n"
    parser = MultipartParser("f", max_part_bytes=1000)
    parts = parser.feed(head)
    assert [(type(p).__name__, getattr(p, "size", None)) for p in parts] == [
        ("OversizedPart", 99999999999999)
    ]
    assert parser.feed(b"Z" * 5000) == []  # its body is skipped, not reported twice
