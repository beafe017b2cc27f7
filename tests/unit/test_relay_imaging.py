"""The relay's renditions: sizes, aspect ratio, and failures as errors, not crashes."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from canarywatch.relay.imaging import (
    TranscodeError,
    looks_like_jpeg,
    make_low_variant,
    make_thumbnail,
)


def jpeg(width: int, height: int) -> bytes:
    image = np.full((height, width, 3), (40, 90, 200), dtype=np.uint8)
    # Texture, so that quality visibly changes the encoded size.
    image[::2, ::3] = 255
    ok, buffer = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 95])
    assert ok
    return buffer.tobytes()


def size_of(data: bytes) -> tuple[int, int]:
    image = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), cv2.IMREAD_COLOR)
    assert image is not None
    return image.shape[1], image.shape[0]


def test_jpeg_sniff() -> None:
    assert looks_like_jpeg(jpeg(8, 8))
    assert not looks_like_jpeg(b"\x89PNG\r\n")
    assert not looks_like_jpeg(b"")


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ((1920, 1080), (320, 180)),
        ((640, 480), (240, 180)),
        ((400, 100), (320, 80)),
        ((64, 36), (64, 36)),
    ],
)
def test_low_variant_fits_the_box_without_upscaling(
    source: tuple[int, int], expected: tuple[int, int]
) -> None:
    assert size_of(make_low_variant(jpeg(*source), quality=30)) == expected


def test_low_variant_is_smaller_than_a_high_quality_encode_of_the_same_size() -> None:
    source = jpeg(320, 180)
    assert len(make_low_variant(source, quality=20)) < len(source)


def test_thumbnail_width_and_aspect() -> None:
    assert size_of(make_thumbnail(jpeg(1280, 720), width=320)) == (320, 180)
    assert size_of(make_thumbnail(jpeg(100, 50), width=320)) == (100, 50)


def test_corrupt_jpeg_raises_transcode_error() -> None:
    with pytest.raises(TranscodeError):
        make_low_variant(b"\xff\xd8\xff" + b"garbage" * 10, quality=30)
    with pytest.raises(TranscodeError):
        make_thumbnail(b"\xff\xd8\xff", width=320)
