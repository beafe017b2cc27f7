"""Small standalone configs for component tests: cameras of a few tenants against one
integration, watched by snapshot viewers on a good network, dry-run policy."""

from __future__ import annotations

from typing import Any

__all__ = ["snapshot_watch"]


def snapshot_watch(
    base: str, tenants: tuple[str, ...], *, camera: dict[str, Any] | None = None, fps: float = 5
) -> dict[str, Any]:
    """``base``'s relay-style device paths; ``camera`` defaults to a PUT of each frame."""
    device = base + "/v3/devices/{tenant}/{camera}"
    bearer = {"Authorization": "Bearer {token}"}
    return {
        "integration": {
            "name": "under-test",
            "camera": camera or {"push": {"method": "PUT", "url": device + "/frame", "headers": bearer}},
            "viewer": {"snapshot": {"url": device + "/live.jpg", "headers": bearer}, "pollInterval": 0.2},
            "policy": {"mode": "dry-run"},
        },
        "probe": {
            "tenants": [{"id": t, "token": f"token-{t}"} for t in tenants],
            "fps": fps,
            "frameSize": {"width": 320, "height": 180},
            "freshnessSeconds": 1,
            "networkProfiles": ["good"],
        },
    }
