"""No ``asyncio.wait_for`` in the package: on Python 3.11 it drops the waiting task's
own cancellation when the awaited thing finishes in the same loop pass (fixed in 3.12),
so a viewer, a page retry or a reconcile told to stop went on. ``asyncio.timeout``
keeps it; ``tasks.reap`` and ``tasks.cancel_within`` stop helper tasks."""

from __future__ import annotations

import re
from pathlib import Path

import canarywatch

CALL = re.compile(r"\basyncio\.wait_for\(|\bfrom asyncio import\b[^\n]*\bwait_for\b")


def test_the_package_never_waits_with_asyncio_wait_for() -> None:
    package = Path(canarywatch.__file__).parent
    found = [
        f"{path.relative_to(package)}:{number}"
        for path in sorted(package.rglob("*.py"))
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if CALL.search(line)
    ]
    assert found == [], f"use asyncio.timeout instead of asyncio.wait_for at {found}"
