"""The loop every viewer stream runs: received frame → verdict → handler."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable

from canarywatch.metrics import Metrics
from canarywatch.viewer.judging import FrameResult, StreamJudge
from canarywatch.viewer.transports import ReceivedFrame

__all__ = ["judge_frames"]

log = logging.getLogger(__name__)


async def judge_frames(
    frames: AsyncIterator[ReceivedFrame],
    judge: StreamJudge,
    *,
    metrics: Metrics,
    handle: Callable[[FrameResult], Awaitable[object]],
) -> None:
    """Judge every frame of one stream until it ends or is cancelled.

    Non-success answers are counted as viewer errors (`disabled` for the 503 of a
    switched-off integration); one frame that fails to be handled never stops the stream.
    """
    stream = judge.stream
    async for frame in frames:
        if frame.status != 200 or not frame.body:
            kind = "disabled" if frame.status == 503 else f"http_{frame.status // 100}xx"
            metrics.record_viewer_error(
                integration=stream.integration, probe=stream.probe, tenant=stream.tenant, kind=kind
            )
            continue
        camera_text = frame.meta.get("camera", "")
        try:
            result = judge.judge(
                frame.body,
                received_at=frame.received_at,
                source=frame.source,
                camera=int(camera_text) if camera_text.isdigit() else None,
                meta=frame.meta,
            )
            await handle(result)
        except Exception:  # one bad frame must never stop a viewer
            log.exception("viewer stream %s failed to handle a frame", stream.key)
