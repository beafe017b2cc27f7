"""Per-stream judging: decode a received frame, give it a verdict, track sequence state.

A viewer stream is one (tenant, camera, transport, network profile) view through the
integration. Beyond the codec's verdict, the stream remembers the newest sequence
number it has seen of its own camera, so a cache that serves an *older* frame after a
newer one (a replay) is reported as `stale` even while the frame is still young.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Required, TypedDict, Unpack

from canarywatch.markers import Decoder, Observation, Status
from canarywatch.verdicts import Judgement, Verdict, ViewerIdentity, judge
from canarywatch.viewer.decoding import DecodePool, shared_pool

__all__ = ["Arrival", "FrameResult", "StreamJudge", "ViewerStream"]

# Snapshot polls and MJPEG parts may repeat the current frame; only going *back* by
# more than this many frames counts as a replay.
REPLAY_TOLERANCE = 2


@dataclass(frozen=True)
class ViewerStream:
    """Who is looking, through which path, under which network profile."""

    integration: str
    probe: str
    tenant: str
    camera: int | None
    kind: str  # snapshot | mjpeg | thumbnail | probe
    profile: str

    @property
    def key(self) -> str:
        camera = "*" if self.camera is None else str(self.camera)
        return f"{self.integration}/{self.probe}/{self.tenant}/{camera}/{self.kind}/{self.profile}"


@dataclass(frozen=True)
class FrameResult:
    stream: ViewerStream
    verdict: Verdict
    reason: str
    observation: Observation
    received_at: float
    judged_at: float
    decode_seconds: float
    age: float | None
    source: str
    body: bytes = field(repr=False)  # transient: evidence is derived from it, then it is dropped
    meta: Mapping[str, str] = field(default_factory=dict)

    @property
    def verdict_latency(self) -> float | None:
        """Seconds from the frame's capture (the time its verified marker carries) to its
        verdict; None for a frame without a verified capture time."""
        payload = self.observation.payload
        if self.observation.status is not Status.VERIFIED or payload is None:
            return None
        return self.judged_at - payload.time


class Arrival(TypedDict, total=False):
    """How a frame arrived: ``received_at`` (wall clock, when its body was complete),
    the ``source`` path, the ``camera`` (event feeds name it per event, overriding the
    stream's) and the transport's ``meta``."""

    received_at: Required[float]
    source: str
    camera: int | None
    meta: Mapping[str, str] | None


class StreamJudge:
    """Turns one stream's received frames into verdicts."""

    def __init__(
        self,
        decoder: Decoder,
        stream: ViewerStream,
        *,
        max_age: float | None,
        clock: Callable[[], float] = time.time,
        pool: DecodePool | None = None,
    ) -> None:
        self.decoder = decoder
        #: where ``judge_off_loop`` decodes (default: the process's ``shared_pool()``).
        self.pool = pool
        self.stream = stream
        self.max_age = max_age
        self.clock = clock
        self.newest: dict[int, tuple[int, float]] = {}  # camera → (seq, capture time)

    def judge(self, body: bytes, **arrival: Unpack[Arrival]) -> FrameResult:
        """Verdict for one frame, decoded in the calling thread (tools and tests; a viewer
        uses ``judge_off_loop``)."""
        started = time.perf_counter()
        obs = self.decoder.decode(body)
        return self.verdict(obs, time.perf_counter() - started, body, **arrival)

    async def judge_off_loop(self, body: bytes, **arrival: Unpack[Arrival]) -> FrameResult:
        """``judge``, decoding in the decode pool: the event loop goes on receiving the
        other streams' frames meanwhile. The frame's ``received_at`` was stamped on
        arrival, so the time it waited for a worker counts in its detection time."""
        pool = self.pool or shared_pool()
        obs, decode_seconds = await pool.decode(self.decoder, body)
        return self.verdict(obs, decode_seconds, body, **arrival)

    def verdict(
        self, obs: Observation, decode_seconds: float, body: bytes, **arrival: Unpack[Arrival]
    ) -> FrameResult:
        """The result for a frame already observed (decoded, or rejected unread)."""
        received_at = arrival["received_at"]
        camera = arrival.get("camera")
        identity = ViewerIdentity(self.stream.tenant, self.stream.camera if camera is None else camera)
        judgement = judge(obs, identity, now=received_at, max_age=self.max_age)
        judgement = self._replay_check(obs, judgement)
        return FrameResult(
            stream=self.stream,
            verdict=judgement.verdict,
            reason=judgement.reason,
            observation=obs,
            received_at=received_at,
            judged_at=self.clock(),
            decode_seconds=decode_seconds,
            age=judgement.age,
            source=arrival.get("source", ""),
            body=body,
            meta=dict(arrival.get("meta") or {}),
        )

    def _replay_check(self, obs: Observation, judgement: Judgement) -> Judgement:
        if judgement.verdict is not Verdict.OK or obs.status is not Status.VERIFIED or obs.payload is None:
            return judgement
        camera, seq, captured = obs.payload.camera, obs.payload.seq, obs.payload.time
        newest = self.newest.get(camera)
        # older seq *and* older capture time: a replay; a lower seq with a newer time
        # is a camera that restarted its counter
        if newest is not None and seq + REPLAY_TOLERANCE < newest[0] and captured < newest[1]:
            return Judgement(
                Verdict.STALE,
                f"replayed frame: seq {seq} after seq {newest[0]} was already shown",
                judgement.age,
            )
        if newest is None or captured >= newest[1]:
            self.newest[camera] = (seq, captured)
        return judgement
