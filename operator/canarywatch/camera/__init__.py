"""Canary cameras: live signed canary streams published to an integration.

Names are imported on first use (PEP 562): ``camera.streams``'s ``StreamPublish`` is part
of reading a config, which must not load the renderer's OpenCV and numpy.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from canarywatch.camera.fleet import CameraFleet, CanaryCamera, PushTarget

__all__ = ["CameraFleet", "CanaryCamera", "PushTarget"]


def __getattr__(name: str) -> Any:
    if name not in __all__:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from canarywatch.camera import fleet

    value = getattr(fleet, name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
