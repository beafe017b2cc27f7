"""The canary marker codec: render signed frames, read them back (pure: no I/O).

Public surface::

    Keyring            per-tenant keys (JSON format, `generate`)
    FrameSpec, render_frame, encode_image
    Decoder, Observation, Status
    ImageLimits        size caps applied before any pixel is decoded
"""

from canarywatch.markers.decode import Decoder, Observation, Status
from canarywatch.markers.images import ImageLimits
from canarywatch.markers.keyring import Keyring, KeyringError
from canarywatch.markers.payload import Payload
from canarywatch.markers.render import FrameSpec, encode_image, render_frame

__all__ = [
    "Decoder",
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
