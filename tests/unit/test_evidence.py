"""Evidence: no received frame leaves as pixels, whatever its verdict; a hash and a
pixelated thumbnail are all that is kept (a verified canary's proof is its payload)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import skimage.data
from exif import stored_turned, with_orientation
from fresh_imports import loaded_after

from canarywatch.incidents.evidence import (
    KEPT,
    THUMBNAIL_CELL_PIXELS,
    THUMBNAIL_CELLS,
    Evidence,
    EvidenceError,
    collect_evidence,
    pixelate,
    write_evidence,
)
from canarywatch.markers import Decoder, FrameSpec, Keyring, Status, encode_image, render_frame
from canarywatch.verdicts import Verdict

NOT_VERIFIED = [Verdict.FOREIGN, Verdict.FORGED, Verdict.DEGRADED, Verdict.UNDECODABLE]
COLUMNS, ROWS = THUMBNAIL_CELLS


def photo_jpeg(name: str = "astronaut", quality: int = 95) -> bytes:
    """A real photograph (a person's face) standing in for a stranger's home."""
    image = getattr(skimage.data, name)()
    bgr = cv2.cvtColor(image, cv2.COLOR_RGB2BGR) if image.ndim == 3 else image
    ok, encoded = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, quality])
    assert ok
    return encoded.tobytes()


def canary_jpeg(keyring: Keyring, seq: int = 1) -> bytes:
    spec = FrameSpec(tenant="acme-7", camera=1, seq=seq, time=100.0)
    return encode_image(render_frame(spec, keyring.key("acme-7")))


def decoded(thumbnail: bytes) -> np.ndarray:
    image = cv2.imdecode(np.frombuffer(thumbnail, np.uint8), cv2.IMREAD_UNCHANGED)
    assert image is not None and image.ndim == 2, "thumbnails are single-channel grayscale"
    return image


def cells_of(image: np.ndarray) -> np.ndarray:
    """(rows, columns, cell, cell) view of a thumbnail."""
    size = THUMBNAIL_CELL_PIXELS
    return image.reshape(ROWS, size, COLUMNS, size).swapaxes(1, 2)


@pytest.mark.parametrize("verdict", list(Verdict))
def test_no_frame_is_kept_whole_whatever_its_verdict(verdict: Verdict, tmp_path: Path) -> None:
    data = photo_jpeg()
    evidence = collect_evidence(data, verdict=verdict, received_at=1_700_000_000.0)
    assert evidence.thumbnail is not None and len(evidence.thumbnail) < len(data) // 20
    files = write_evidence(evidence, tmp_path)
    written = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    assert set(written) == {files.metadata, files.thumbnail}
    # No file holds the original bytes, or even a recognisable slice of them.
    for content in written.values():
        assert data[1000:1064] not in content
    assert evidence.to_dict()["kept"] == KEPT == "hash-and-pixelated-thumbnail"


def test_evidence_has_no_place_for_pixels() -> None:
    with pytest.raises(TypeError):
        Evidence(Verdict.CROSS_TENANT, "0" * 64, 3, 0.0, frame=b"abc")  # type: ignore[call-arg]


def test_a_photo_inside_a_verified_canary_is_not_stored(
    tmp_path: Path, keyring: Keyring, decoder: Decoder
) -> None:
    """A canary shown with a photograph as picture-in-picture (20 % of the frame) still
    verifies: the signature proves the marker, not the photograph beside it."""
    canvas = render_frame(
        FrameSpec(tenant="acme-7", camera=1, seq=7, time=100.0, width=1280, height=720), keyring.key("acme-7")
    )
    photo = cv2.cvtColor(skimage.data.astronaut(), cv2.COLOR_RGB2BGR)
    inset = cv2.resize(photo, (512, 360))  # 20 % of the area, bottom right
    canvas[720 - 360 :, 1280 - 512 :] = inset
    frame = encode_image(canvas, quality=90)
    observation = decoder.decode(frame)
    assert (observation.status, observation.tenant) == (Status.VERIFIED, "acme-7")

    evidence = collect_evidence(frame, verdict=Verdict.CROSS_TENANT, received_at=105.0)
    files = write_evidence(evidence, tmp_path, name="inc-1-occ-1")
    written = b"".join(p.read_bytes() for p in tmp_path.iterdir())
    assert frame not in written and frame[2000:2064] not in written
    metadata = json.loads((tmp_path / files.metadata).read_text())
    assert metadata["kept"] == KEPT and metadata["files"] == {"thumbnail": files.thumbnail}
    # The photograph's corner is 4x4 flat cells at most.
    assert evidence.thumbnail is not None
    cells = cells_of(decoded(evidence.thumbnail).astype(np.float64))
    assert float(cells.std(axis=(2, 3)).max()) <= 1.0


@pytest.mark.parametrize("name", ["astronaut", "chelsea", "coffee", "camera"])
def test_pixelated_thumbnail_has_no_recoverable_detail(name: str) -> None:
    evidence = collect_evidence(photo_jpeg(name), verdict=Verdict.FOREIGN, received_at=0.0)
    assert evidence.thumbnail is not None
    image = decoded(evidence.thumbnail)
    assert image.shape == (ROWS * THUMBNAIL_CELL_PIXELS, COLUMNS * THUMBNAIL_CELL_PIXELS)
    cells = cells_of(image.astype(np.float64))
    # Every cell is flat: nothing inside a cell for a super-resolution model to work on.
    assert float(cells.std(axis=(2, 3)).max()) <= 1.0
    # So the whole image carries at most 16×9 values.
    means = np.round(cells.mean(axis=(2, 3)))
    assert len(np.unique(means)) <= COLUMNS * ROWS
    # High-frequency energy: what a Laplacian sees inside the cells (away from cell edges).
    laplacian = cv2.Laplacian(image.astype(np.float64), cv2.CV_64F)
    interior = cells_of(laplacian)[:, :, 1:-1, 1:-1]
    assert float(np.abs(interior).mean()) < 0.5
    # And it still says something: a photo is not one flat gray.
    assert len(np.unique(means)) > 8


def test_thumbnail_equals_its_own_pixelation() -> None:
    evidence = collect_evidence(photo_jpeg(), verdict=Verdict.FOREIGN, received_at=0.0)
    assert evidence.thumbnail is not None
    image = decoded(evidence.thumbnail)
    again = pixelate(image)
    assert np.abs(again.astype(int) - image.astype(int)).max() <= 1


def test_hash_size_and_dimensions_are_stable() -> None:
    data = photo_jpeg()
    first = collect_evidence(data, verdict=Verdict.FOREIGN, received_at=5.0)
    second = collect_evidence(bytes(data), verdict=Verdict.FOREIGN, received_at=5.0)
    assert first.sha256 == hashlib.sha256(data).hexdigest()
    assert first == second
    assert (first.size, first.width, first.height, first.format) == (len(data), 512, 512, "jpeg")


def test_undecodable_bytes_keep_only_hash_and_size(tmp_path: Path) -> None:
    data = b"<html>502 Bad Gateway</html>"
    evidence = collect_evidence(data, verdict=Verdict.UNDECODABLE, received_at=1.0)
    assert evidence.thumbnail is None
    assert evidence.width is None and evidence.note.startswith("not an image")
    files = write_evidence(evidence, tmp_path)
    assert files.thumbnail is None
    assert [p.name for p in tmp_path.iterdir()] == [files.metadata]


def test_repr_carries_no_pixels(keyring: Keyring) -> None:
    frame = canary_jpeg(keyring)
    text = repr(collect_evidence(frame, verdict=Verdict.CROSS_TENANT, received_at=1.0))
    assert "frame=" not in text and "thumbnail=" not in text and len(text) < 400


def test_references_are_relative_to_base(tmp_path: Path) -> None:
    evidence = collect_evidence(photo_jpeg(), verdict=Verdict.FOREIGN, received_at=0.0)
    files = write_evidence(evidence, tmp_path / "evidence" / "relay", base=tmp_path)
    assert files.metadata == f"evidence/relay/foreign-{evidence.sha256[:16]}.json"
    assert (tmp_path / files.metadata).is_file()
    assert files.thumbnail is not None and (tmp_path / files.thumbnail).is_file()
    with pytest.raises(EvidenceError, match="must contain"):
        write_evidence(evidence, tmp_path / "a", base=tmp_path / "b")


@pytest.mark.parametrize("name", ["../escape", "a/b", "", ".hidden", "x" * 200])
def test_names_cannot_escape_the_directory(name: str, tmp_path: Path) -> None:
    evidence = collect_evidence(b"junk", verdict=Verdict.UNDECODABLE, received_at=0.0)
    with pytest.raises(EvidenceError, match="evidence name"):
        write_evidence(evidence, tmp_path, name=name)


def test_unwritable_directory_is_an_evidence_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    evidence = collect_evidence(b"junk", verdict=Verdict.UNDECODABLE, received_at=0.0)
    with pytest.raises(EvidenceError, match="cannot write evidence") as caught:
        write_evidence(evidence, blocker / "evidence")
    assert isinstance(caught.value.__cause__, OSError)


def test_pixelate_rejects_colour_input() -> None:
    with pytest.raises(ValueError, match="grayscale"):
        pixelate(np.zeros((90, 160, 3), np.uint8))


def test_evidence_of_a_jpeg_does_not_load_opencv() -> None:
    # A viewer pod's first incident must not add OpenCV's ~32 MiB to it, nor turning the
    # thumbnail upright (the frame carries an EXIF orientation).
    head = with_orientation(b"\xff\xd8", 6)
    code = (
        "from canarywatch.incidents.evidence import collect_evidence\n"
        "from canarywatch.markers import FrameSpec, render_frame, encode_image\n"
        "frame = encode_image(render_frame(FrameSpec('acme-7', 1, 2, 100.0), bytes(32)))\n"
        f"frame = {head!r} + frame[2:]\n"
        "evidence = collect_evidence(frame, verdict='foreign', received_at=0.0)\n"
        "assert evidence.thumbnail is not None, evidence.note\n"
    )
    assert loaded_after(code, ("cv2",)) == set()


@pytest.mark.parametrize("orientation", [3, 6, 8])
def test_the_thumbnail_of_a_photo_stored_turned_is_upright(orientation: int) -> None:
    # A phone's photo: pixels stored turned, an EXIF tag saying how to show them (OpenCV
    # applied it when it decoded evidence). A sideways thumbnail misleads whoever reads it.
    upright = cv2.cvtColor(skimage.data.astronaut(), cv2.COLOR_RGB2BGR)[112:400]  # 512x288

    def thumbnail(data: bytes) -> np.ndarray:
        evidence = collect_evidence(data, verdict=Verdict.FOREIGN, received_at=0.0)
        assert evidence.thumbnail is not None, evidence.note
        return decoded(evidence.thumbnail).astype(int)

    stored = encode_image(stored_turned(upright, orientation), quality=95)
    expected = thumbnail(encode_image(upright, quality=95))
    assert int(np.abs(thumbnail(with_orientation(stored, orientation)) - expected).max()) <= 2
    # the photo is not the same whichever way up, so the check above can fail
    assert int(np.abs(thumbnail(stored) - expected).max()) > 60
