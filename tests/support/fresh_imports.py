"""What a fresh interpreter has imported after running a snippet: the tests that keep
heavy libraries (OpenCV, PyAV) out of a pod's process ask it this way."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterable


def loaded_after(code: str, modules: Iterable[str]) -> set[str]:
    """Which of ``modules`` are in ``sys.modules`` once ``code`` ran in a new interpreter
    (``code`` failing fails the test)."""
    wanted = sorted(modules)
    probe = f"{code}\nimport sys\nprint(','.join(m for m in {wanted!r} if m in sys.modules))\n"
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=120, check=True
    )
    return {m for m in out.stdout.strip().split(",") if m}
