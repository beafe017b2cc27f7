"""Canary cameras: live signed canary streams published to an integration."""

from canarywatch.camera.fleet import CameraFleet, CanaryCamera, PushTarget

__all__ = ["CameraFleet", "CanaryCamera", "PushTarget"]
