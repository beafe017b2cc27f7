"""The reference relay with live canary cameras pushing to it, for the video-path tests:
camera 0 of each tenant sends a signed frame every ``interval`` seconds until the
context ends (the relay stops with it)."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Sequence
from typing import Any

from canarywatch.camera import CameraFleet, CanaryCamera, PushTarget
from canarywatch.markers import Keyring
from canarywatch.relay import RelayConfig, RelayHandle, run_relay

__all__ = ["relay_with_canaries"]


@contextlib.asynccontextmanager
async def relay_with_canaries(
    keyring: Keyring, tenants: Sequence[str], *, interval: float = 0.25, warm_up: float = 1.5, **settings: Any
) -> AsyncIterator[RelayHandle]:
    """Tokens are ``token-<tenant>``; ``settings`` go to ``RelayConfig``."""
    config = RelayConfig(tenants={t: f"token-{t}" for t in tenants}, admin_token="admin", **settings)
    handle = await run_relay(config)
    cameras = [CanaryCamera(t, 0, keyring.key(t), width=320, height=180) for t in tenants]
    targets = {
        (t, 0): PushTarget(
            "PUT", f"{handle.base_url}/v3/devices/{t}/0/frame", {"Authorization": f"Bearer token-{t}"}
        )
        for t in tenants
    }
    task = asyncio.create_task(CameraFleet(cameras, fps=1 / interval, clock=time.time).run_push(targets))
    try:
        await asyncio.sleep(warm_up)  # a complete segment window or two
        yield handle
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await handle.stop()
