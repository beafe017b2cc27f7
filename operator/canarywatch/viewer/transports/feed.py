"""A response body handed to FFmpeg as it arrives: the event loop feeds chunks, a
decoding thread reads them as a file (PyAV's ``av.open`` takes any object with
``read``), and the frames it decodes come back to the loop.

Both directions are bounded, so a hostile or endless stream costs a fixed amount of
memory: at most ``capacity`` chunks wait for FFmpeg (the loop stops reading the socket
until FFmpeg catches up), and at most ``frames`` decoded frames wait for the loop (the
oldest is dropped: a viewer judges what is shown now, not a backlog).
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import threading
from collections.abc import AsyncGenerator, Callable, Iterator

from canarywatch.viewer.transports.video import DecodedFrame

__all__ = ["ByteFeed", "decoded_in_thread"]

# How often a blocked reader or writer looks at whether the feed was closed.
_POLL_S = 0.05


class ByteFeed:
    """Chunks from the event loop, read by one thread as a non-seekable file."""

    def __init__(self, capacity: int = 8) -> None:
        self._chunks: queue.Queue[bytes | None] = queue.Queue(capacity)
        self._pending = b""
        self._ended = False
        self._closed = threading.Event()

    async def put(self, chunk: bytes) -> None:
        """Queue ``chunk``; waits (without blocking the loop) while the queue is full."""
        while not self._closed.is_set():
            try:
                self._chunks.put_nowait(chunk)
                return
            except queue.Full:
                await asyncio.sleep(_POLL_S)

    def end(self) -> None:
        """The body is complete: FFmpeg reads what is queued, then end of file."""
        try:
            self._chunks.put_nowait(None)
        except queue.Full:
            self._closed.set()  # the reader is behind; it sees the end after the queue

    def close(self) -> None:
        """Stop now: the reader gets end of file at its next read."""
        self._closed.set()

    def read(self, size: int = -1) -> bytes:
        """FFmpeg's read (blocking, in the decoding thread); ``b""`` at the end."""
        while not self._pending:
            if self._ended:
                return b""
            try:
                item = self._chunks.get(timeout=_POLL_S)
            except queue.Empty:
                if self._closed.is_set():
                    return b""
                continue
            if item is None:
                self._ended = True
                return b""
            self._pending = item
        size = len(self._pending) if size < 0 else size
        out, self._pending = self._pending[:size], self._pending[size:]
        return out


async def decoded_in_thread(
    frames: Callable[[], Iterator[DecodedFrame]], *, name: str, backlog: int = 2
) -> AsyncGenerator[DecodedFrame, None]:
    """The frames of ``frames()`` run in a thread of its own, newest first when the
    loop falls behind (at most ``backlog`` wait). Its exception is raised here; closing
    this iterator makes the thread stop posting (the caller ends its input)."""
    loop = asyncio.get_running_loop()
    waiting: asyncio.Queue[DecodedFrame | BaseException | None] = asyncio.Queue()
    stop = threading.Event()

    def post(item: DecodedFrame | BaseException | None) -> None:
        while isinstance(item, DecodedFrame) and waiting.qsize() >= backlog:
            waiting.get_nowait()
        waiting.put_nowait(item)

    def hand_over(item: DecodedFrame | BaseException | None) -> None:
        with contextlib.suppress(RuntimeError):  # the loop closed while FFmpeg read on
            loop.call_soon_threadsafe(post, item)

    def run() -> None:
        item: BaseException | None = None
        try:
            for frame in frames():
                if stop.is_set():
                    return
                hand_over(frame)
        except BaseException as error:  # handed to the loop, raised there
            item = error
        if not stop.is_set():
            hand_over(item)

    thread = threading.Thread(target=run, name=name, daemon=True)
    thread.start()
    try:
        while True:
            item = await waiting.get()
            if item is None:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
