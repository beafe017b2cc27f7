"""Pull ingest: poll cameras that serve snapshots instead of pushing frames."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

import aiohttp

from canarywatch.httpclient import client_session
from canarywatch.relay.config import PullSource
from canarywatch.relay.imaging import looks_like_jpeg
from canarywatch.relay.service import Relay

__all__ = ["pulling"]

logger = logging.getLogger(__name__)

# A camera that takes longer than this to hand over one snapshot is as good as down.
_FETCH_TIMEOUT_SECONDS = 10.0


@contextlib.asynccontextmanager
async def pulling(relay: Relay) -> AsyncIterator[None]:
    """Poll every configured pull source while the context is open."""
    sources = relay.config.pull_sources
    if not sources:
        yield
        return
    timeout = aiohttp.ClientTimeout(total=_FETCH_TIMEOUT_SECONDS)
    async with client_session(timeout=timeout) as session:
        tasks = [
            asyncio.create_task(_poll(relay, session, source), name=f"pull {source.url}")
            for source in sources
        ]
        try:
            yield
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)


async def _poll(relay: Relay, session: aiohttp.ClientSession, source: PullSource) -> None:
    interval = source.interval_seconds or relay.config.pull_interval_seconds
    failing = False
    while not relay.closing:
        # A disabled or crashed integration does not ingest, whichever way frames come.
        if relay.refusal() is None:
            problem = await _pull_once(relay, session, source)
            if problem is not None:
                relay.state.counters.pull_failures += 1
                if not failing:
                    # Log the transition only: a camera that is down stays down for a
                    # while, and one line per poll would drown everything else.
                    logger.warning("pulling %s failed: %s", source.url, problem)
            elif failing:
                logger.info("pulling %s works again", source.url)
            failing = problem is not None
        await asyncio.sleep(interval)


async def _pull_once(relay: Relay, session: aiohttp.ClientSession, source: PullSource) -> str | None:
    """Fetch and ingest one snapshot; the reason it failed, or None."""
    limit = relay.config.max_frame_bytes
    body = bytearray()
    try:
        async with session.get(source.url, headers=dict(source.headers)) as response:
            if response.status != 200:
                return f"HTTP {response.status}"
            async for chunk in response.content.iter_chunked(64 * 1024):
                body += chunk
                # Stop reading as soon as the cap is passed: a broken camera that
                # streams forever must not fill the relay's memory.
                if len(body) > limit:
                    return f"body exceeds max_frame_bytes {limit}"
    except (aiohttp.ClientError, TimeoutError) as error:
        return f"{type(error).__name__}: {error}"
    frame = bytes(body)
    if not looks_like_jpeg(frame):
        return "body is not a JPEG"
    await relay.ingest(source.tenant, source.camera, frame, pulled=True)
    return None
