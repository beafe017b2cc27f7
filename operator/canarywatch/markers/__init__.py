"""The canary marker codec: render signed frames, read them back (pure: no I/O).

Public surface::

    Keyring            per-tenant keys (JSON format, `generate`)
    FrameSpec, render_frame, encode_image
    FrameRenderer      one camera's frames, with what never changes drawn once
    Decoder, Observation, Status
    ImageLimits        size caps applied before any pixel is decoded

Names are imported on first use (PEP 562): the operator needs the keyring and the
observation types, not the ~30 MiB of OpenCV and numpy that rendering and decoding load.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from canarywatch.markers.decode import Decoder
    from canarywatch.markers.images import ImageLimits
    from canarywatch.markers.keyring import Keyring, KeyringError
    from canarywatch.markers.observation import Observation, Status
    from canarywatch.markers.payload import Payload
    from canarywatch.markers.render import FrameRenderer, FrameSpec, encode_image, render_frame

_HOMES = {
    "Decoder": "decode",
    "FrameRenderer": "render",
    "FrameSpec": "render",
    "ImageLimits": "images",
    "Keyring": "keyring",
    "KeyringError": "keyring",
    "Observation": "observation",
    "Payload": "payload",
    "Status": "observation",
    "encode_image": "render",
    "render_frame": "render",
}

__all__ = [
    "Decoder",
    "FrameRenderer",
    "FrameSpec",
    "ImageLimits",
    "Keyring",
    "KeyringError",
    "Observation",
    "Payload",
    "Status",
    "encode_image",
    "render_frame",
]


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        # Submodules (`markers.ecc`) are attributes once imported; anything else is an error.
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{home}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
