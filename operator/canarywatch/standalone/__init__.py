"""Standalone mode: the camera/viewer/incident/kill-switch pipeline without Kubernetes.

Names are imported on first use (PEP 562): reading and validating a config file needs
``standalone.config`` only, so a bad file is reported (exit 2) before the pipeline's
OpenCV, numpy and aiohttp are loaded.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from canarywatch.standalone.config import StandaloneConfig, load_config
    from canarywatch.standalone.fields import ConfigError
    from canarywatch.standalone.pipeline import Pipeline, ResumeRefused, RunResult

_HOMES = {
    "ConfigError": "fields",
    "Pipeline": "pipeline",
    "ResumeRefused": "pipeline",
    "RunResult": "pipeline",
    "StandaloneConfig": "config",
    "load_config": "config",
}

__all__ = ["ConfigError", "Pipeline", "ResumeRefused", "RunResult", "StandaloneConfig", "load_config"]


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{home}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
