"""One rule for tests whose tools or resources are missing: skip on a laptop, fail in CI."""

from __future__ import annotations

import os
from typing import NoReturn

import pytest

__all__ = ["must_run", "unavailable"]

# Any of these set (and not 0/false) means a missing tool is a failure, never a skip.
REQUIRE_VARIABLES = ("CI", "CANARYWATCH_REQUIRE_CLUSTER", "CANARYWATCH_REQUIRE_CHART_TOOLS")


def must_run() -> bool:
    return any(os.environ.get(var, "") not in ("", "0", "false") for var in REQUIRE_VARIABLES)


def unavailable(message: str) -> NoReturn:
    """Fail under CI (or a CANARYWATCH_REQUIRE_* variable); skip otherwise."""
    if must_run():
        pytest.fail(message, pytrace=False)
    pytest.skip(message)
