"""Privacy-preserving evidence of a received frame.

No received frame is stored, logged or paged whole, whatever its verdict. A verified
canary signature proves that the *marker* is ours, not that every pixel around it is:
a canary shown with a photograph as picture-in-picture (a compositing cache, a hub's
overlay) is still ``cross_tenant``, and the photograph may be a stranger's bedroom, as
in the Xiaomi/Nest Hub incident. So of every frame canarywatch keeps only

* its SHA-256, size, dimensions and time (to match against the integration's logs);
* a grayscale thumbnail pixelated to at most 16×9 cells, enough to tell "a dark room"
  from "a bright street", not enough to recognise anyone; upright, as a display shows
  it (a JPEG's EXIF orientation applied, ``markers.orientation``);
* and, for a verified canary, what the signature does prove: the payload (tenant,
  camera, seq, time) in the incident record, from which the synthetic frame is
  rendered again: ``canarywatch frame render --keyring K --tenant T --camera C --seq N
  --time T`` (at the probe's frame size).

The rule is enforced where it cannot be bypassed by accident: ``Evidence`` has no field
that could hold frame bytes, so no later code path (files, PagerDuty, logs, CR status)
can find pixels that were never kept. ``Evidence``'s repr carries no pixels either.

Each thumbnail cell is exactly one 8×8 JPEG block. A flat block encodes to its DC
coefficient alone, so the JPEG adds no edges or ringing inside a cell: what is stored
has at most 144 distinct flat cells and no high-frequency content to "enhance".

numpy and the image codecs are imported by the first incident, not with this module:
a viewer pod that sees no leak does not carry them for the evidence's sake.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from canarywatch.files import atomic_write
from canarywatch.verdicts import Verdict

if TYPE_CHECKING:
    import numpy as np

    from canarywatch.markers.images import ImageLimits

__all__ = [
    "KEPT",
    "THUMBNAIL_CELLS",
    "THUMBNAIL_CELL_PIXELS",
    "Evidence",
    "EvidenceError",
    "EvidenceFiles",
    "collect_evidence",
    "pixelate",
    "write_evidence",
]

#: What is kept of every frame (the incident record's and LeakIncident's ``kept``).
KEPT = "hash-and-pixelated-thumbnail"

THUMBNAIL_CELLS = (16, 9)  # columns, rows
# One JPEG block per cell (see the module docstring); changing this breaks that property.
THUMBNAIL_CELL_PIXELS = 8
_THUMBNAIL_QUALITY = 90
# Decoding a 4K frame at full size only to average it into 144 cells wastes time;
# JPEG DCT scaling gets within a few pixels per cell of the same averages.
_MIN_PIXELS_PER_CELL = 4

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


class EvidenceError(Exception):
    """Evidence could not be written (the ``OSError`` is the cause) or a name is invalid."""


@dataclass(frozen=True)
class Evidence:
    """What canarywatch keeps of one received frame: never its pixels.

    ``thumbnail`` is the pixelated grayscale JPEG, absent when the bytes are not a
    decodable image (``note`` says why). Dimensions come from the image header.
    """

    verdict: Verdict
    sha256: str
    size: int
    received_at: float
    format: str | None = None
    width: int | None = None
    height: int | None = None
    thumbnail: bytes | None = field(default=None, repr=False)
    note: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "verdict", Verdict(self.verdict))

    def to_dict(self) -> dict[str, Any]:
        """The metadata as JSON-ready data: never any pixels, thumbnail included."""
        return {
            "verdict": self.verdict.value,
            "sha256": self.sha256,
            "size": self.size,
            "received_at": self.received_at,
            "format": self.format,
            "width": self.width,
            "height": self.height,
            "kept": KEPT,
            "note": self.note,
        }


@dataclass(frozen=True)
class EvidenceFiles:
    """Where ``write_evidence`` put things, as POSIX paths relative to its ``base``."""

    metadata: str
    thumbnail: str | None


def collect_evidence(
    data: bytes,
    *,
    verdict: Verdict,
    received_at: float,
    limits: ImageLimits | None = None,
) -> Evidence:
    """The evidence of one received frame; never raises on the bytes' content.

    ``limits`` bounds what is decoded for the thumbnail (the viewer's decoder limits).
    """
    from canarywatch.markers.images import ImageLimits, ImageRejected, load_gray, probe
    from canarywatch.markers.orientation import oriented

    verdict = Verdict(verdict)
    digest = hashlib.sha256(data).hexdigest()
    limits = limits if limits is not None else ImageLimits()
    try:
        info = probe(data, limits)
    except ImageRejected as error:
        return Evidence(verdict, digest, len(data), received_at, note=f"not an image: {error}")
    try:
        reduce = _reduction(info.width, info.height) if info.format == "jpeg" else 1
        # upright, as a display shows the frame (a phone's photo is often stored turned)
        gray = oriented(load_gray(data, info, reduce=reduce), info.orientation)
        thumbnail: bytes | None = _encode_thumbnail(pixelate(gray))
        note = ""
    except Exception as error:  # ImageRejected, or the codec's own error: still evidence
        thumbnail, note = None, f"no thumbnail: {error}"
    return Evidence(
        verdict,
        digest,
        len(data),
        received_at,
        format=info.format,
        width=info.width,
        height=info.height,
        thumbnail=thumbnail,
        note=note,
    )


def pixelate(
    gray: np.ndarray,
    *,
    cells: tuple[int, int] = THUMBNAIL_CELLS,
    cell_pixels: int = THUMBNAIL_CELL_PIXELS,
) -> np.ndarray:
    """``gray`` averaged into ``cells`` (columns, rows), each cell a flat square block.

    Area averaging, not sampling: a sampled pixel would be a real pixel of the frame.
    """
    import numpy as np

    from canarywatch.markers.area import area_resize

    if gray.ndim != 2 or gray.size == 0:
        raise ValueError(f"pixelate needs a non-empty 2-D grayscale image, got shape {gray.shape}")
    columns, rows = cells
    if columns < 1 or rows < 1 or cell_pixels < 1:
        raise ValueError(f"cells and cell_pixels must be positive, got {cells} and {cell_pixels}")
    averaged = np.rint(area_resize(gray, columns, rows)).astype(np.uint8)
    blocks = np.repeat(np.repeat(averaged, cell_pixels, axis=0), cell_pixels, axis=1)
    return np.ascontiguousarray(blocks, dtype=np.uint8)


def write_evidence(
    evidence: Evidence,
    directory: str | os.PathLike[str],
    *,
    name: str | None = None,
    base: str | os.PathLike[str] | None = None,
) -> EvidenceFiles:
    """Write ``<name>.json`` and the thumbnail into ``directory``.

    ``name`` defaults to ``<verdict>-<first 16 hex of the hash>``, so a frame seen twice
    is stored once. References are relative to ``base`` (default: ``directory``), which
    must contain ``directory``: an incident record or summary stores them and stays
    valid when the whole folder is moved. Each file is written to a temporary sibling
    and renamed, so a reader never sees half a file; files are created 0600 (evidence
    of a leak is sensitive even when pixelated).
    """
    stem = name if name is not None else f"{evidence.verdict.value}-{evidence.sha256[:16]}"
    if not _NAME.match(stem):
        raise EvidenceError(
            f"evidence name {stem[:40]!r} must be 1-128 characters of letters, digits, '.', '_', '-'"
        )
    folder = Path(directory)
    root = Path(base) if base is not None else folder
    try:
        prefix = folder.resolve().relative_to(root.resolve())
    except ValueError:
        raise EvidenceError(f"base {root} must contain the evidence directory {folder}") from None
    thumbnail_ref = None
    try:
        folder.mkdir(parents=True, exist_ok=True)
        if evidence.thumbnail is not None:
            thumbnail_ref = _write(folder, f"{stem}.thumb.jpg", evidence.thumbnail)
        refs = {"thumbnail": _relative(prefix, thumbnail_ref)}
        document = {**evidence.to_dict(), "files": refs}
        metadata_ref = _write(folder, f"{stem}.json", json.dumps(document, indent=2).encode() + b"\n")
    except OSError as error:
        raise EvidenceError(f"cannot write evidence into {folder}: {error}") from error
    return EvidenceFiles(
        metadata=_relative(prefix, metadata_ref) or "",
        thumbnail=refs["thumbnail"],
    )


def _reduction(width: int, height: int) -> int:
    columns, rows = THUMBNAIL_CELLS
    for factor in (8, 4, 2):
        if (
            width // factor >= columns * _MIN_PIXELS_PER_CELL
            and height // factor >= rows * _MIN_PIXELS_PER_CELL
        ):
            return factor
    return 1


def _encode_thumbnail(blocks: np.ndarray) -> bytes:
    import simplejpeg

    return bytes(
        simplejpeg.encode_jpeg(
            blocks[..., None], quality=_THUMBNAIL_QUALITY, colorspace="GRAY", colorsubsampling="Gray"
        )
    )


def _write(folder: Path, filename: str, data: bytes) -> str:
    atomic_write(folder / filename, data)
    return filename


def _relative(prefix: Path, filename: str | None) -> str | None:
    return None if filename is None else (prefix / filename).as_posix()
