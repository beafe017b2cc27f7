"""Where received frames are decoded: worker threads, never the event loop.

A viewer process serves every stream of every tenant it watches, its ``/metrics`` and
its reports from one event loop. Decoding is CPU work (a few ms per frame, up to the
image limits' bound for a hostile one), so it runs in a small pool of threads (OpenCV
and numpy release the GIL while they work): a frame that costs seconds delays the
streams waiting for a worker, never the loop that receives everyone's frames, stamps
their arrival time and answers ``/metrics``.

What bounds one frame: the decoder's image limits (bytes, pixels, JPEG scans × pixels)
before any pixel is decoded, then ``budget_s`` of decoding, checked between stages.
"""

from __future__ import annotations

import asyncio
import functools
import os
import time
from concurrent.futures import ThreadPoolExecutor

from canarywatch.markers import Decoder, Observation

__all__ = ["DEFAULT_DECODE_BUDGET_S", "DecodePool", "shared_pool"]

#: A frame's decoding budget. The costliest frames the limits admit (a 4096×4096 photo
#: through every read) take ~0.4 s on one core; the margin is for a busy machine.
DEFAULT_DECODE_BUDGET_S = 5.0


class DecodePool:
    """A bounded pool of decoding threads shared by the streams of one process."""

    def __init__(self, workers: int | None = None, *, budget_s: float = DEFAULT_DECODE_BUDGET_S) -> None:
        if budget_s <= 0:
            raise ValueError(f"budget_s must be > 0, got {budget_s}")
        self.workers = workers or max(2, min(8, os.cpu_count() or 2))
        self.budget_s = budget_s
        self._executor = ThreadPoolExecutor(self.workers, thread_name_prefix="canarywatch-decode")
        #: frames submitted and not yet decoded (waiting for a worker or being decoded).
        self.pending = 0

    async def decode(self, decoder: Decoder, body: bytes) -> tuple[Observation, float]:
        """The observation of ``body`` and the seconds its decoding took (queueing aside)."""
        loop = asyncio.get_running_loop()
        self.pending += 1
        try:
            return await loop.run_in_executor(self._executor, self._timed, decoder, body)
        finally:
            self.pending -= 1

    def _timed(self, decoder: Decoder, body: bytes) -> tuple[Observation, float]:
        started = time.perf_counter()
        obs = decoder.decode(body, budget_s=self.budget_s)
        return obs, time.perf_counter() - started

    def close(self) -> None:
        """Stop taking work; decodes under way finish (each within its budget)."""
        self._executor.shutdown(wait=False, cancel_futures=True)


@functools.cache
def shared_pool() -> DecodePool:
    """The process's pool (created on first use): one set of decoding threads for all
    of a process's viewers, so a hostile stream competes for them with the others
    instead of multiplying them."""
    return DecodePool()
