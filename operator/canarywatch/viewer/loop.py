"""The loop every viewer stream runs: received frame → verdict → handler."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable

from canarywatch.markers import Observation, Status
from canarywatch.metrics import Metrics
from canarywatch.viewer.judging import Arrival, FrameResult, StreamJudge
from canarywatch.viewer.transports import ACCESS_GRANTED, ReceivedFrame

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

    Every 200 answer is a frame with a verdict: an empty body or one over the size cap
    (not read) is ``undecodable`` like any other broken frame. Other answers are counted
    as viewer errors (``disabled`` for the 503 of a switched-off integration,
    ``http_4xx``…), and so are answers that carry no frame at all (``meta["problem"]``:
    a stream that ended without a part, a thumbnail that could not be fetched, video that
    could not be decoded; ``access_granted``: another tenant's stream served to an
    authorization probe and not decodable, also logged as a warning). Frames
    are decoded off the event loop (``StreamJudge.judge_off_loop``); one frame that fails
    to be handled never stops the stream.
    """
    stream = judge.stream
    async for frame in frames:
        problem = frame.meta.get("problem")
        if frame.status != 200 or problem:
            status_kind = "disabled" if frame.status == 503 else f"http_{frame.status // 100}xx"
            kind = problem or status_kind
            if kind == ACCESS_GRANTED:
                log.warning(
                    "viewer %s was granted %s (tenant %s camera %s) but could not decode it: %s",
                    stream.key,
                    frame.source,
                    frame.meta.get("target_tenant", "?"),
                    frame.meta.get("target_camera", "?"),
                    frame.meta.get("undecodable", ""),
                )
            metrics.record_viewer_error(
                integration=stream.integration,
                probe=stream.probe,
                tenant=stream.tenant,
                path=stream.kind,
                network_profile=stream.profile,
                kind=kind,
            )
            continue
        camera_text = frame.meta.get("camera", "")
        arrival: Arrival = {
            "received_at": frame.received_at,
            "source": frame.source,
            "camera": int(camera_text) if camera_text.isdigit() else None,
            "meta": frame.meta,
        }
        try:
            if frame.meta.get("skipped") == "oversized":
                result = judge.verdict(_oversized(frame), 0.0, b"", **arrival)
            else:
                result = await judge.judge_off_loop(frame.body, **arrival)
            await handle(result)
        except Exception:  # one bad frame must never stop a viewer
            log.exception("viewer stream %s failed to handle a frame", stream.key)


def _oversized(frame: ReceivedFrame) -> Observation:
    size = frame.meta.get("part_bytes") or frame.meta.get("body_bytes") or "?"
    limit = frame.meta.get("limit_bytes", "?")
    return Observation(
        Status.UNDECODABLE, reason=f"body of {size} bytes over the {limit}-byte cap (not read)"
    )
