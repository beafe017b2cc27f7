"""charts/canarywatch/README.md is what the bitnami readme-generator writes from the
``## @param`` comments of values.yaml (``make chart-readme``): a changed value or comment
without a regenerated README fails here. The generator is the npm package pinned by
hack/readme-generator/package-lock.json, installed by hack/install-readme-generator.sh;
without it this test skips on a developer machine and fails under CI."""

from __future__ import annotations

import difflib
import os
import shutil
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "support"))

from availability import unavailable

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "charts" / "canarywatch"


def generator() -> Path:
    tools = Path(os.environ.get("CANARYWATCH_TOOLS_DIR", REPO / ".cache" / "tools"))
    binary = tools / "readme-generator" / "node_modules" / ".bin" / "readme-generator"
    if not binary.exists() or shutil.which("node") is None:
        unavailable(f"{binary} not found: run hack/install-readme-generator.sh (needs node and npm)")
    return binary


def test_the_chart_readme_is_generated_from_the_values(tmp_path: Path) -> None:
    readme = tmp_path / "README.md"
    shutil.copy(CHART / "README.md", readme)
    result = subprocess.run(
        [str(generator()), "--values", str(CHART / "values.yaml"), "--readme", str(readme)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    committed = (CHART / "README.md").read_text().splitlines()
    generated = readme.read_text().splitlines()
    diff = "\n".join(difflib.unified_diff(committed, generated, "committed", "generated", lineterm=""))
    assert not diff, f"charts/canarywatch/README.md is out of date: run `make chart-readme`\n{diff}"


def test_the_readme_documents_every_section() -> None:
    text = (CHART / "README.md").read_text()
    for section in ("Global parameters", "Agent pods", "Network policy", "Egress proxy", "PagerDuty"):
        assert f"### {section}" in text
    assert "kubectl apply --server-side --force-conflicts -f charts/canarywatch/crds/" in text
