"""Hostile answers over loopback: each becomes a verdict or a counted error, never a stall.

Servers here are small aiohttp apps on 127.0.0.1 that answer what an integration (or
someone behind it) can: a frame that takes long to decode, empty and oversized bodies,
an MJPEG part announcing 99 TB, a stream with no part, an unreachable thumbnail. No
assertion is about wall-clock time: what is checked is what was reported, and in which
order; waits are bounded.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
import tracemalloc
from collections.abc import AsyncIterator, Callable
from contextlib import aclosing

import aiohttp
from aiohttp import web
from aiohttp.test_utils import TestServer
from faketime import FakeTime

from canarywatch.bench.hostile import progressive_bomb
from canarywatch.markers import (
    Decoder,
    FrameSpec,
    ImageLimits,
    Keyring,
    Observation,
    encode_image,
    render_frame,
)
from canarywatch.metrics import Metrics
from canarywatch.verdicts import Verdict
from canarywatch.viewer.decoding import DecodePool
from canarywatch.viewer.http import RenderedRequest, RequestTemplate
from canarywatch.viewer.judging import FrameResult, StreamJudge, ViewerStream
from canarywatch.viewer.loop import judge_frames
from canarywatch.viewer.network import GOOD
from canarywatch.viewer.plan import StreamPlan
from canarywatch.viewer.runner import ViewerRunner
from canarywatch.viewer.transports import (
    DEFAULT_MAX_BODY_BYTES,
    EventFeedReader,
    MjpegReader,
    ReceivedFrame,
    SnapshotPoller,
)

ACME, BRAVO = "acme-7", "bravo-2"  # tenants of the conftest keyring
HOSTILE = progressive_bomb(512, size=20_000)  # the bytes the gated decoder holds on


def canary(keyring: Keyring, tenant: str, seq: int = 1) -> bytes:
    spec = FrameSpec(tenant, 0, seq, time.time(), 640, 360)
    return encode_image(render_frame(spec, keyring.key(tenant)))


async def until(predicate: Callable[[], bool], timeout: float) -> None:
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(0.02)


def request(server: TestServer, path: str) -> RenderedRequest:
    return RequestTemplate(url=str(server.make_url(path))).render(tenant=ACME, camera="0", token="")


class GatedDecoder(Decoder):
    """Decodes ``HOSTILE`` only once ``release`` is set (at most ``hold_s``): a frame
    whose decoding takes as long as the test needs, wherever it runs."""

    def __init__(self, keyring: Keyring, *, release: Callable[[], bool], hold_s: float = 8.0) -> None:
        super().__init__(keyring)
        self.release = release
        self.hold_s = hold_s
        self.started = threading.Event()

    def decode(self, data: bytes, *, budget_s: float | None = None) -> Observation:
        if data == HOSTILE:
            self.started.set()
            deadline = time.monotonic() + self.hold_s
            while not self.release() and time.monotonic() < deadline:
                time.sleep(0.005)
        return super().decode(data, budget_s=budget_s)


def _app(keyring: Keyring, decoder: GatedDecoder) -> web.Application:
    """``/hostile.jpg`` for bravo's viewer; ``/leak.jpg`` shows acme's viewer bravo's
    camera, once the hostile frame is being decoded."""

    async def hostile(request: web.Request) -> web.Response:
        return web.Response(body=HOSTILE, content_type="image/jpeg")

    async def leak(request: web.Request) -> web.Response:
        while not decoder.started.is_set():
            await asyncio.sleep(0.01)
        return web.Response(body=canary(keyring, BRAVO), content_type="image/jpeg")

    app = web.Application()
    app.router.add_get("/hostile.jpg", hostile)
    app.router.add_get("/leak.jpg", leak)
    return app


def _plans(server: TestServer) -> list[StreamPlan]:
    plans = []
    for tenant, path in ((BRAVO, "/hostile.jpg"), (ACME, "/leak.jpg")):
        rendered = RequestTemplate(url=str(server.make_url(path))).render(tenant=tenant, camera="0", token="")
        stream = ViewerStream("hubs", "probe", tenant, 0, "snapshot", GOOD.name)
        plans.append(StreamPlan(stream, GOOD, (rendered,), 60.0, 10.0))
    return plans


async def _run(keyring: Keyring, decoder: GatedDecoder, pool: DecodePool) -> list[FrameResult]:
    results: list[FrameResult] = []

    async def handle(result: FrameResult) -> None:
        results.append(result)

    async with TestServer(_app(keyring, decoder)) as server:
        runner = ViewerRunner(_plans(server), decoder=decoder, metrics=Metrics(), handle=handle, pool=pool)
        async with runner.running():
            await until(lambda: len(results) == 2, timeout=30)
    return results


async def test_a_frame_that_takes_long_to_decode_does_not_hold_up_another_tenants_leak(
    keyring: Keyring,
) -> None:
    leaked: list[bool] = []
    decoder = GatedDecoder(keyring, release=lambda: bool(leaked))
    pool = DecodePool(2)
    try:
        results: list[FrameResult] = []

        async def handle(result: FrameResult) -> None:
            results.append(result)
            leaked.append(result.verdict is Verdict.CROSS_TENANT)

        async with TestServer(_app(keyring, decoder)) as server:
            runner = ViewerRunner(
                _plans(server), decoder=decoder, metrics=Metrics(), handle=handle, pool=pool
            )
            async with runner.running():
                await until(lambda: len(results) == 2, timeout=30)
    finally:
        pool.close()
    # The leak was received, judged and handled while bravo's frame was still decoding.
    assert [(r.stream.tenant, r.verdict) for r in results] == [
        (ACME, Verdict.CROSS_TENANT),
        (BRAVO, Verdict.UNDECODABLE),
    ]


async def test_detection_time_includes_the_wait_for_a_free_decoder(keyring: Keyring) -> None:
    pool = DecodePool(1)  # the hostile frame holds the only worker
    decoder = GatedDecoder(keyring, release=lambda: pool.pending >= 2)
    try:
        results = await _run(keyring, decoder, pool)
    finally:
        pool.close()
    by_tenant = {r.stream.tenant: r for r in results}
    leak, hostile = by_tenant[ACME], by_tenant[BRAVO]
    assert leak.verdict is Verdict.CROSS_TENANT
    # Stamped on arrival, while the worker was busy, and judged after it was free: the
    # leak's detection time (judged_at - received_at) covers the wait.
    assert leak.received_at <= hostile.judged_at <= leak.judged_at


# -- empty, oversized, announced-oversized, no parts --------------------------------------------


async def _verdicts(
    frames: AsyncIterator[ReceivedFrame], decoder: Decoder, count: int, metrics: Metrics | None = None
) -> list[FrameResult]:
    judge = StreamJudge(decoder, ViewerStream("hubs", "probe", ACME, 0, "snapshot", "good"), max_age=60)
    results: list[FrameResult] = []

    async def handle(result: FrameResult) -> None:
        results.append(result)

    async with aclosing(frames) as stream:
        task = asyncio.create_task(judge_frames(stream, judge, metrics=metrics or Metrics(), handle=handle))
        try:
            await until(lambda: len(results) >= count, timeout=15)
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
    return results


async def test_empty_and_oversized_snapshots_are_undecodable_verdicts(
    keyring: Keyring, decoder: Decoder
) -> None:
    answers = [b"", b"\xff\xd8" + b"Z" * 200_000, canary(keyring, ACME)]

    async def snapshot(request: web.Request) -> web.Response:
        return web.Response(
            body=answers.pop(0) if len(answers) > 1 else answers[0], content_type="image/jpeg"
        )

    app = web.Application()
    app.router.add_get("/live.jpg", snapshot)
    fake = FakeTime(5000.0)
    async with aiohttp.ClientSession() as session, TestServer(app) as server:
        poller = SnapshotPoller(
            session, request(server, "/live.jpg"), interval_s=1.0, max_body_bytes=100_000, sleep=fake.sleep
        )
        results = await _verdicts(poller.frames(), decoder, 3)
    assert [r.verdict for r in results[:3]] == [Verdict.UNDECODABLE, Verdict.UNDECODABLE, Verdict.OK]
    assert results[0].reason == "empty body"
    assert results[1].reason == "body of 200002 bytes over the 100000-byte cap (not read)"


async def _mjpeg_verdicts(writes: list[bytes], decoder: Decoder, count: int) -> list[FrameResult]:
    """The first ``count`` verdicts of an MJPEG stream that writes ``writes`` and stays open."""

    async def stream(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "multipart/x-mixed-replace; boundary=f"})
        await response.prepare(request)
        for data in writes:
            await response.write(data)
        await asyncio.sleep(30)  # held open, as a camera stream is
        return response

    app = web.Application()
    app.router.add_get("/stream", stream)
    async with aiohttp.ClientSession() as session, TestServer(app) as server:
        reader = MjpegReader(session, request(server, "/stream"), max_part_bytes=100_000)
        return await _verdicts(reader.frames(), decoder, count)


async def test_an_mjpeg_part_announcing_99_tb_is_reported_and_the_stream_goes_on(
    keyring: Keyring, decoder: Decoder
) -> None:
    jpeg = canary(keyring, ACME)
    head = f"--f\r\nContent-Type: image/jpeg\r\nContent-Length: {len(jpeg)}\r\n\r\n"
    writes = [
        b"--f\r\nContent-Type: image/jpeg\r\nContent-Length: 99999999999999\r\n\r\n",
        b"\xff\xd8" + b"Z" * 3000 + b"\r\n",
        head.encode() + jpeg + b"\r\n",
    ]
    results = await _mjpeg_verdicts(writes, decoder, 2)
    assert [r.verdict for r in results] == [Verdict.UNDECODABLE, Verdict.OK]
    assert results[0].reason == "body of 99999999999999 bytes over the 100000-byte cap (not read)"


async def test_an_mjpeg_part_that_never_ends_is_reported_while_it_runs(decoder: Decoder) -> None:
    # 2.5 MiB and counting, no boundary in sight
    writes = [b"--f\r\nContent-Type: image/jpeg\r\n\r\n\xff\xd8", *[b"Z" * (1 << 16)] * 40]
    results = await _mjpeg_verdicts(writes, decoder, 1)
    assert results[0].verdict is Verdict.UNDECODABLE
    assert "over the 100000-byte cap" in results[0].reason


async def test_an_mjpeg_answer_without_a_part_is_counted(decoder: Decoder) -> None:
    async def stream(request: web.Request) -> web.Response:
        return web.Response(body=b"--f--\r\n", content_type="multipart/x-mixed-replace; boundary=f")

    app = web.Application()
    app.router.add_get("/stream", stream)
    metrics = Metrics()

    def empty_streams() -> float:
        labels = {"integration": "hubs", "probe": "probe", "tenant": ACME, "kind": "empty_stream"}
        labels |= {"path": "mjpeg", "network_profile": "good"}
        return metrics.registry.get_sample_value("canarywatch_viewer_errors_total", labels) or 0.0

    fake = FakeTime(5000.0)
    async with aiohttp.ClientSession() as session, TestServer(app) as server:
        reader = MjpegReader(session, request(server, "/stream"), sleep=fake.sleep)
        judge = StreamJudge(decoder, ViewerStream("hubs", "probe", ACME, 0, "mjpeg", "good"), max_age=60)

        async def handle(result: FrameResult) -> None:
            raise AssertionError(f"no frame was sent, got {result.verdict}")

        task = asyncio.create_task(judge_frames(reader.frames(), judge, metrics=metrics, handle=handle))
        try:
            await until(lambda: empty_streams() >= 2, timeout=15)
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
    assert reader.empty_streams >= 2


async def test_many_streams_of_huge_bodies_hold_at_most_one_decodable_body_each() -> None:
    streams, body_mib = 4, 20
    cap = ImageLimits().max_bytes  # a longer body could only be rejected by the decoder
    assert cap == DEFAULT_MAX_BODY_BYTES
    chunk = b"\xff" * (1 << 16)

    async def huge(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "image/jpeg"})  # chunked: no length
        await response.prepare(request)
        for _ in range(body_mib * 16):
            await response.write(chunk)
        return response

    app = web.Application()
    app.router.add_get("/huge.jpg", huge)
    async with aiohttp.ClientSession() as session, TestServer(app) as server:
        pollers = [
            SnapshotPoller(session, request(server, "/huge.jpg"), interval_s=60) for _ in range(streams)
        ]

        async def first(poller: SnapshotPoller) -> ReceivedFrame:
            async with aclosing(poller.frames()) as frames:
                return await anext(frames)

        tracemalloc.start()
        try:
            async with asyncio.timeout(60):
                frames = await asyncio.gather(*(first(p) for p in pollers))
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
    assert all(f.meta["skipped"] == "oversized" and f.body == b"" for f in frames)
    # What is read of a body is dropped once it is over the cap, and the cap is what the
    # decoder accepts: at most one decodable body per stream (plus aiohttp's buffers).
    assert peak < streams * cap * 1.5, peak / cap


# -- event feed ---------------------------------------------------------------------------------


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_an_unreachable_thumbnail_does_not_stop_the_event_feed(keyring: Keyring) -> None:
    jpeg = canary(keyring, ACME)
    dead = f"http://127.0.0.1:{_closed_port()}/t/1.jpg"
    polls = 0

    async def events(request: web.Request) -> web.Response:
        nonlocal polls
        polls += 1
        since = int(request.query.get("since", "0"))
        feed = [
            {"id": 1, "camera": "0", "thumbnail": dead},
            {"id": 2, "camera": "0", "thumbnail": "/t/2.jpg"},
            {"id": 3, "camera": "0", "thumbnail": "/t/3.jpg"},
        ]
        # event 3 appears on the second poll
        return web.json_response([e for e in feed[: 2 if polls == 1 else 3] if int(e["id"]) > since])

    async def thumbnail(request: web.Request) -> web.Response:
        return web.Response(body=jpeg, content_type="image/jpeg")

    app = web.Application()
    app.router.add_get("/events", events)
    app.router.add_get("/t/{n}.jpg", thumbnail)
    fake = FakeTime(5000.0)
    async with aiohttp.ClientSession() as session, TestServer(app) as server:
        reader = EventFeedReader(session, request(server, "/events"), interval_s=1.0, sleep=fake.sleep)
        seen: list[ReceivedFrame] = []
        async with asyncio.timeout(15), aclosing(reader.frames()) as frames:
            async for frame in frames:
                seen.append(frame)
                if len(seen) == 3:
                    break
    assert [(f.meta["event_id"], f.status) for f in seen] == [("2", 200), ("3", 200), ("1", 0)]
    assert seen[2].meta["problem"] == "thumbnail_unreachable"
    assert reader.unreachable == 1 and reader.errors == 3  # tried on three polls, then reported
