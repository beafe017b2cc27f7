"""The operator does not load the image stack: it needs keyrings and observation types,
not OpenCV and numpy (~30 MiB per process). A subprocess, so other tests' imports do not
hide a regression."""

from __future__ import annotations

import subprocess
import sys

import pytest

import canarywatch.markers

HEAVY = ("cv2", "numpy", "reedsolo")


@pytest.mark.parametrize(
    "module", ["canarywatch.controller.main", "canarywatch.verdicts", "canarywatch.markers.keyring"]
)
def test_importing_does_not_load_the_image_stack(module: str) -> None:
    loaded = _loaded_by(module, HEAVY)
    assert loaded == "", f"importing {module} loaded {loaded}"


def _loaded_by(module: str, heavy: tuple[str, ...]) -> str:
    """Which of ``heavy`` a fresh interpreter has loaded after importing ``module``."""
    code = f"import sys, {module}; print(','.join(m for m in {heavy!r} if m in sys.modules))"
    return subprocess.run(
        [sys.executable, "-c", code], check=True, capture_output=True, text=True, timeout=120
    ).stdout.strip()


def test_the_markers_package_resolves_its_names_on_first_use() -> None:
    from canarywatch.markers import Decoder, Status, ecc
    from canarywatch.markers.decode import Decoder as DecodeDecoder
    from canarywatch.markers.observation import Status as ObservationStatus

    assert Decoder is DecodeDecoder and Status is ObservationStatus and ecc.CODEWORD_BYTES > 0
    assert set(canarywatch.markers.__all__) <= set(dir(canarywatch.markers))
    with pytest.raises(AttributeError, match="no attribute 'Nope'"):
        _ = canarywatch.markers.Nope  # type: ignore[attr-defined]


@pytest.mark.parametrize("module", ["canarywatch.viewer.runner", "canarywatch.standalone.pipeline"])
def test_a_viewer_loads_ffmpeg_and_playlists_only_when_it_watches_video(module: str) -> None:
    # PyAV (FFmpeg's libraries) and m3u8 are imported by the first video stream only: a
    # snapshot-only viewer pod keeps its memory.
    loaded = _loaded_by(module, ("av", "m3u8"))
    assert loaded == "", f"importing {module} loaded {loaded}"
