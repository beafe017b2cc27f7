"""Small modules, one idea each: no module of the package grows past 600 lines (the
rule was broken on main unnoticed once, by a benchmark that grew with its features)."""

from __future__ import annotations

from pathlib import Path

import canarywatch

MAX_LINES = 600


def test_no_module_is_longer_than_the_rule() -> None:
    package = Path(canarywatch.__file__).parent
    too_long = {
        str(path.relative_to(package)): count
        for path in sorted(package.rglob("*.py"))
        if (count := len(path.read_text(encoding="utf-8").splitlines())) > MAX_LINES
    }
    assert too_long == {}, f"split these modules (over {MAX_LINES} lines): {too_long}"
