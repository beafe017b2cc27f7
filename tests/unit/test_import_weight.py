"""The operator does not load the image stack: it needs keyrings and observation types,
not OpenCV and numpy (~30 MiB per process). A subprocess, so other tests' imports do not
hide a regression."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

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


# What a shell imports before it reads its input: the codec (OpenCV, numpy), aiohttp
# and the Kubernetes client are loaded by the command or agent that uses them.
SHELL_HEAVY = ("cv2", "numpy", "av", "aiohttp", "kubernetes", "prometheus_client")


@pytest.mark.parametrize(
    "module", ["canarywatch.cli", "canarywatch.standalone", "canarywatch.standalone.config"]
)
def test_the_command_line_and_the_config_reader_load_no_heavy_module(module: str) -> None:
    loaded = _loaded_by(module, SHELL_HEAVY)
    assert loaded == "", f"importing {module} loaded {loaded}"


@pytest.mark.parametrize(
    "text",
    [
        "integration: {name: x\n",  # not YAML
        "integration: {name: x}\nprobe: {tenants: []}\nextra: 1\n",  # YAML, not a config
    ],
)
def test_a_bad_config_exits_2_before_the_pipeline_is_imported(tmp_path: Path, text: str) -> None:
    # `canarywatch run` on a bad file is an answer in a fraction of a second: the modules
    # it loaded are counted (not timed), the pipeline's ~620 with OpenCV before.
    config = tmp_path / "bad.yaml"
    config.write_text(text)
    code = (
        "import json, sys\n"
        "from canarywatch.cli import main\n"
        f"status = main(['run', '--config', {str(config)!r}])\n"
        f"print(json.dumps([status, len(sys.modules), [m for m in {SHELL_HEAVY!r} if m in sys.modules]]))\n"
    )
    run = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True
    )
    status, modules, heavy = json.loads(run.stdout)
    assert status == 2 and "--config" in run.stderr, run.stderr
    assert heavy == [], f"a bad config loaded {heavy}"
    assert modules < 400, f"{modules} modules loaded to report a bad config"
