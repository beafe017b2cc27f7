"""A viewer whose JPEG frames verify never loads OpenCV (~30 MiB of a viewer pod's memory).

The common verdict path — probe the header, the reduced read of the message's rows (or
the whole reduced frame), the full-resolution fast read when that does not verify — runs
on libjpeg-turbo through simplejpeg and NumPy; OpenCV is imported by the robust read and
by other image formats only. The frames are rendered here (rendering uses OpenCV) and
decoded in a fresh interpreter, so this process's imports cannot hide a regression.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from canarywatch.markers import FrameSpec, Keyring, encode_image, render_frame

NOW = 1_795_000_000.5

_DECODE = """
import json, pathlib, sys
from canarywatch.markers import Decoder, Keyring
keyring = Keyring.from_json(pathlib.Path(sys.argv[1]).read_text())
decoder = Decoder(keyring)
seen = []
for path in sys.argv[2:]:
    obs = decoder.decode(pathlib.Path(path).read_bytes())
    seen.append([obs.status.value, obs.tenant, obs.path, "cv2" in sys.modules])
print(json.dumps(seen))
"""


def _decode_elsewhere(keyring: Keyring, tmp_path: Path, bodies: list[bytes]) -> list[list[object]]:
    ring = tmp_path / "keyring.json"
    ring.write_text(keyring.to_json())
    paths = []
    for i, body in enumerate(bodies):
        paths.append(tmp_path / f"frame-{i}.jpg")
        paths[-1].write_bytes(body)
    out = subprocess.run(
        [sys.executable, "-c", _DECODE, str(ring), *map(str, paths)],
        check=True,
        capture_output=True,
        text=True,
        timeout=120,
    ).stdout
    seen: list[list[object]] = json.loads(out)
    return seen


@pytest.mark.parametrize(("w", "h"), [(1280, 720), (320, 180)])
def test_jpeg_verdicts_on_the_reduced_and_fast_reads_do_not_import_opencv(
    keyring: Keyring, tmp_path: Path, w: int, h: int
) -> None:
    frame = render_frame(FrameSpec("acme-7", 3, 41, NOW, w, h), keyring.key("acme-7"))
    blemished = frame.copy()  # symbol errors in the message's rows: only the full read corrects them
    blemished[h // 18 : h // 6, w // 32 : w // 6] = (100, 40, 40)
    bodies = [
        encode_image(frame, quality=85),  # plain: the message's rows at 1/2–1/8 scale
        encode_image(frame, quality=80, restart_rows=True),  # as a canary camera publishes it
        encode_image(blemished, quality=85),  # the reduced read fails, the fast read verifies
    ]
    seen = _decode_elsewhere(keyring, tmp_path, bodies)
    assert seen == [
        ["verified", "acme-7", "reduced", False],
        ["verified", "acme-7", "reduced", False],
        ["verified", "acme-7", "fast", False],
    ]


def test_a_letterboxed_jpeg_is_verified_at_reduced_scale_without_opencv(
    keyring: Keyring, tmp_path: Path
) -> None:
    # not 16:9: the whole frame at reduced scale, its uniform bars trimmed
    frame = render_frame(FrameSpec("acme-7", 3, 41, NOW, 640, 360), keyring.key("acme-7"))
    canvas = np.zeros((480, 640, 3), np.uint8)
    canvas[60:420] = frame
    seen = _decode_elsewhere(keyring, tmp_path, [encode_image(canvas, quality=85)])
    assert seen == [["verified", "acme-7", "reduced", False]]


def test_the_robust_read_still_has_opencv(keyring: Keyring, tmp_path: Path) -> None:
    # the other side of the bargain: a rotated frame needs the anchor search, which
    # imports OpenCV on first use and still verifies
    frame = render_frame(FrameSpec("acme-7", 3, 41, NOW, 640, 360), keyring.key("acme-7"))
    rotated = cv2.warpAffine(frame, cv2.getRotationMatrix2D((320, 180), 4.0, 1.0), (640, 360))
    seen = _decode_elsewhere(keyring, tmp_path, [encode_image(rotated, quality=85)])
    assert seen == [["verified", "acme-7", "robust", True]]
