"""The PagerDuty client: the one delivery path of pages, in both shells.

``PagerDutyClient`` drains an outbox (``incidents.outbox``) in order, retrying 429,
5xx and network errors through ``canarywatch.retrying`` and coalescing a leak storm
into one page. The routing key is never logged and never part of a ``DeliveryResult``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from types import TracebackType
from typing import Any

import aiohttp

from canarywatch.incidents.events import (
    EVENTS_URL,
    InvalidEventError,
    PagerDutyError,
    placeholder_routing_key,
    validate_event,
)
from canarywatch.incidents.outbox import MemoryOutbox, OutboxEntry, OutboxError, OutboxStore
from canarywatch.outbound import outbound_session
from canarywatch.retrying import Backoff, RetryLater, retry

__all__ = ["DeliveryResult", "Outcome", "PagerDutyClient"]

log = logging.getLogger(__name__)

# PagerDuty error bodies end up in logs, DeliveryResult.reason and (via the operator)
# in CR status; cap them so a misbehaving endpoint cannot flood any of those.
_REASON_LIMIT = 300


class Outcome(StrEnum):
    """Delivery results, as counted in ``pagerduty_events_total{action,result}``."""

    DELIVERED = "delivered"  # 2xx: PagerDuty has the event
    REJECTED = "rejected"  # 400 (or another 4xx but 429): not retried, dropped from outbox
    RETRY = "retry"  # one failed attempt that will be retried (reported to on_result only)
    FAILED = "failed"  # attempts exhausted; the event stays in the outbox for the next flush
    DEDUPLICATED = "deduplicated"  # a trigger for an already open dedup_key, coalesced


@dataclass(frozen=True)
class DeliveryResult:
    """What became of one event. Carries no routing key and no payload."""

    outcome: Outcome
    action: str
    dedup_key: str | None
    attempts: int
    status: int | None = None  # last HTTP status; None for network errors or no attempt
    reason: str | None = None  # PagerDuty's message on rejection, last error on failure

    @property
    def delivered(self) -> bool:
        return self.outcome is Outcome.DELIVERED


class PagerDutyClient:
    """Sends events to the Events API v2 through an outbox, in order, at least once.

    ``enqueue`` stores an event and wakes ``run()``, the background loop; ``send`` stores
    an event and delivers everything queued up to and including it, returning its
    result; ``flush`` delivers what is queued now. Nothing overtakes an undelivered
    event, so a ``resolve`` can never reach PagerDuty before its ``trigger``.

    Retries: 429, 5xx, timeouts and connection errors are retried up to ``max_attempts``
    times by ``canarywatch.retrying.retry`` (a 429's ``Retry-After`` is honoured up to
    ``max_delay``); the outbox is told of each attempt before it is made. Then the event
    stays pending and ``run()`` tries again after ``max_delay``. A 400 means the event
    itself is wrong: reported, never retried.

    Dedup: a ``trigger`` whose ``dedup_key`` is already open (triggered, not resolved)
    is coalesced: not stored, not sent, counted as ``deduplicated``. A leak storm of
    thousands of frames therefore pages once. Pending triggers found in the outbox at
    start-up count as open; pass ``open_dedup_keys`` for incidents known to be open from
    elsewhere (incident records, CR status).

    ``on_result(action, result)`` is called for every outcome, including each ``retry``;
    an exception in it is logged and never stops delivery.
    """

    def __init__(
        self,
        *,
        url: str = EVENTS_URL,
        outbox: OutboxStore | None = None,
        timeout: float = 10.0,
        max_attempts: int = 5,
        base_delay: float = 1.0,
        max_delay: float = 60.0,
        on_result: Callable[[str, str], None] | None = None,
        open_dedup_keys: Iterable[str] = (),
    ) -> None:
        if timeout <= 0:
            raise ValueError(f"timeout must be > 0 seconds, got {timeout!r}")
        if max_attempts < 1:
            raise ValueError(f"max_attempts must be >= 1, got {max_attempts!r}")
        if base_delay <= 0 or max_delay < base_delay:
            raise ValueError(
                f"need 0 < base_delay <= max_delay, got base_delay={base_delay!r}, max_delay={max_delay!r}"
            )
        self._url = url
        self._outbox: OutboxStore = outbox if outbox is not None else MemoryOutbox()
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._max_attempts = max_attempts
        self._backoff = Backoff(base_delay, max_delay)
        self._max_delay = max_delay
        self._on_result = on_result
        self._open_keys: set[str] = set(open_dedup_keys)
        for entry in self._outbox.pending():
            self._track_open(entry.event)
        self._lock = asyncio.Lock()  # one delivery at a time keeps the outbox order
        self._wake = asyncio.Event()
        self._closing = asyncio.Event()
        self._waiters: dict[str, asyncio.Future[DeliveryResult]] = {}
        self._session: aiohttp.ClientSession | None = None
        self._run_task: asyncio.Task[Any] | None = None

    @property
    def outbox(self) -> OutboxStore:
        return self._outbox

    @property
    def open_dedup_keys(self) -> frozenset[str]:
        """Keys triggered and not resolved: further triggers for them are coalesced."""
        return frozenset(self._open_keys)

    def enqueue(self, event: Mapping[str, Any]) -> bool:
        """Store ``event`` for ``run()``/``flush()``; False if it was coalesced.

        Raises ``InvalidEventError`` for a schema problem (a bug in the caller: build
        events with ``build_event``), ``OutboxError`` if it cannot be stored, and
        ``PagerDutyError`` after ``close()``.
        """
        return self._admit(event) is not None

    async def send(self, event: Mapping[str, Any]) -> DeliveryResult:
        """Store ``event`` and deliver the outbox up to and including it."""
        entry = self._admit(event)
        if entry is None:
            return DeliveryResult(
                Outcome.DEDUPLICATED, event["event_action"], event.get("dedup_key"), attempts=0
            )
        waiter: asyncio.Future[DeliveryResult] = asyncio.get_running_loop().create_future()
        self._waiters[entry.id] = waiter
        try:
            async with self._lock:
                if not waiter.done():  # run() may have delivered it while we waited
                    await self._drain(until=entry.id)
        finally:
            self._waiters.pop(entry.id, None)
        if waiter.done():
            return waiter.result()
        return DeliveryResult(
            Outcome.FAILED,
            entry.event["event_action"],
            entry.event.get("dedup_key"),
            attempts=0,
            reason="queued behind an undelivered event; kept in the outbox",
        )

    async def flush(self) -> list[DeliveryResult]:
        """Deliver the pending events in order; stops at the first one still failing.

        ``OutboxError`` means an event was delivered but could not be struck from the
        outbox; it will be sent again later, which the ``dedup_key`` makes harmless.
        """
        async with self._lock:
            return await self._drain(until=None)

    async def run(self) -> None:
        """Deliver enqueued events until ``close()`` (or cancellation)."""
        if self._run_task is not None:
            raise PagerDutyError("run() is already running for this client")
        self._run_task = asyncio.current_task()
        try:
            while not self._closing.is_set():
                self._wake.clear()
                try:
                    stuck = any(r.outcome is Outcome.FAILED for r in await self.flush())
                except OutboxError:
                    log.exception("PagerDuty outbox I/O failed; retrying in %ss", self._max_delay)
                    stuck = True
                if stuck:
                    with contextlib.suppress(_Closing):
                        await self._sleep_unless_closing(self._max_delay)
                elif not len(self._outbox):
                    await self._wake.wait()
        finally:
            self._run_task = None

    async def close(self) -> None:
        """Stop ``run()``, let an in-flight attempt finish, release the HTTP session.

        Undelivered events stay in the outbox (and, for ``Outbox``, in its file).
        """
        self._closing.set()
        self._wake.set()
        task = self._run_task
        if task is not None and task is not asyncio.current_task():
            # the attempt in flight ends within its own timeout and is struck from the
            # outbox if delivered; run() stops before the next one
            await asyncio.wait([task], timeout=self._timeout.total)
            task.cancel()
            await asyncio.wait([task])
        async with self._lock:
            if self._session is not None:
                await self._session.close()
                self._session = None

    async def __aenter__(self) -> PagerDutyClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.close()

    def _admit(self, event: Mapping[str, Any]) -> OutboxEntry | None:
        problems = validate_event(event)
        if problems:
            raise InvalidEventError(problems)
        if self._closing.is_set():
            raise PagerDutyError("the PagerDuty client is closed; create a new one")
        action, key = event["event_action"], event.get("dedup_key")
        if action == "trigger" and key in self._open_keys:
            log.debug("coalesced trigger for open dedup_key %r", key)
            self._report(action, Outcome.DEDUPLICATED)
            return None
        entry = self._outbox.append(event)  # first: a key is open only once it is stored
        self._track_open(entry.event)
        self._wake.set()
        return entry

    def _track_open(self, event: Mapping[str, Any]) -> None:
        key = event.get("dedup_key")
        if not isinstance(key, str):
            return  # a trigger without a key always opens a new alert; nothing to coalesce
        if event.get("event_action") == "trigger":
            self._open_keys.add(key)
        elif event.get("event_action") == "resolve":
            self._open_keys.discard(key)

    async def _drain(self, *, until: str | None) -> list[DeliveryResult]:
        results: list[DeliveryResult] = []
        for entry in self._outbox.pending():
            if self._closing.is_set():
                break
            result = await self._deliver(entry)
            results.append(result)
            if result.outcome is not Outcome.FAILED:
                self._outbox.remove(entry.id)
                if result.outcome is Outcome.REJECTED and result.action == "trigger":
                    # Nothing was paged, so a later trigger for this key must not be dropped.
                    self._open_keys.discard(result.dedup_key or "")
            waiter = self._waiters.get(entry.id)
            if waiter is not None and not waiter.done():
                waiter.set_result(result)
            if result.outcome is Outcome.FAILED or entry.id == until:
                break  # FAILED: keep order; nothing may overtake an undelivered event
        return results

    async def _deliver(self, entry: OutboxEntry) -> DeliveryResult:
        action = entry.event["event_action"]
        key = entry.event.get("dedup_key")
        placeholder = placeholder_routing_key(str(entry.event["routing_key"]), self._url)
        if placeholder is not None:
            log.error("PagerDuty %s for %r not sent: %s", action, key, placeholder)
            self._report(action, Outcome.REJECTED)
            return DeliveryResult(Outcome.REJECTED, action, key, 0, None, placeholder)
        session = self._get_session()
        made = 0  # attempts made
        last = _Unanswered(0, "not attempted")

        async def attempt(number: int) -> DeliveryResult:
            nonlocal made, last
            await self._outbox.attempting(entry, number)
            made = number
            try:
                # Not following redirects: the event carries the routing key, and Events v2
                # never redirects; a 3xx is reported as a rejection naming the status.
                async with session.post(
                    self._url, json=entry.event, timeout=self._timeout, allow_redirects=False
                ) as response:
                    status = response.status
                    body = await response.read()
                    retry_after = _retry_after_seconds(response.headers.get("Retry-After"))
            except (aiohttp.ClientError, TimeoutError) as exc:
                detail = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
                last = _Unanswered(None, _truncate(detail))
                raise last from exc
            if 200 <= status < 300:
                log.info("PagerDuty accepted %s for %r", action, key)
                self._report(action, Outcome.DELIVERED)
                return DeliveryResult(Outcome.DELIVERED, action, key, number, status)
            reason = _describe_error(status, body)
            if status != 429 and status < 500:
                log.error("PagerDuty rejected %s for %r: %s", action, key, reason)
                self._report(action, Outcome.REJECTED)
                return DeliveryResult(Outcome.REJECTED, action, key, number, status, reason)
            last = _Unanswered(status, reason, retry_after=retry_after)
            raise last

        try:
            return await retry(
                attempt,
                backoff=self._backoff,
                max_attempts=self._max_attempts,
                what=f"PagerDuty {action} for {key!r}",
                sleep=self._sleep_unless_closing,
                on_retry=lambda _n, _error, _delay: self._report(action, Outcome.RETRY),
            )
        except (_Unanswered, _Closing):
            pass
        log.error(
            "PagerDuty %s for %r still undelivered after %d attempts (%s); kept in outbox",
            action,
            key,
            made,
            last.detail,
        )
        self._report(action, Outcome.FAILED)
        return DeliveryResult(Outcome.FAILED, action, key, made, last.status, last.detail)

    def _get_session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = outbound_session()
        return self._session

    async def _sleep_unless_closing(self, seconds: float) -> None:
        """Sleep; ``_Closing`` if ``close()`` cut the sleep short."""
        try:
            async with asyncio.timeout(seconds):
                await self._closing.wait()
        except TimeoutError:
            return
        raise _Closing

    def _report(self, action: str, outcome: Outcome) -> None:
        if self._on_result is None:
            return
        try:
            self._on_result(action, outcome.value)
        except Exception:
            # A metrics bug must never cost a page.
            log.exception("on_result hook failed for %s/%s", action, outcome.value)


class _Unanswered(RetryLater):
    """An attempt PagerDuty did not settle (429, 5xx, no answer): worth another try."""

    def __init__(self, status: int | None, detail: str, *, retry_after: float | None = None) -> None:
        super().__init__(detail, retry_after=retry_after)
        self.status = status


class _Closing(Exception):
    """``close()`` interrupted a wait between attempts."""


def _retry_after_seconds(header: str | None) -> float | None:
    if header is None:
        return None
    try:
        seconds = float(header)
    except ValueError:
        return None  # the HTTP-date form is not worth parsing for a capped hint
    return seconds if math.isfinite(seconds) and seconds >= 0 else None


def _describe_error(status: int, body: bytes) -> str:
    try:
        parsed = json.loads(body)
    except ValueError:
        parsed = None
    if isinstance(parsed, dict):
        parts = [str(parsed.get(name)) for name in ("status", "message") if parsed.get(name)]
        errors = parsed.get("errors")
        if isinstance(errors, list):
            parts += [str(error) for error in errors]
        if parts:
            return _truncate(f"HTTP {status}: {'; '.join(parts)}")
    text = body.decode(errors="replace").strip()
    return _truncate(f"HTTP {status}: {text}" if text else f"HTTP {status}")


def _truncate(text: str) -> str:
    return text if len(text) <= _REASON_LIMIT else f"{text[: _REASON_LIMIT - 3]}..."
