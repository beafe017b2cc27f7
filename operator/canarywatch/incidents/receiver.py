"""A local PagerDuty Events API v2 receiver: the page target of ``canarywatch demo`` and
the test oracle of the PagerDuty client.

It answers ``POST /v2/enqueue`` the way PagerDuty documents it: 202 with
``{status, message, dedup_key}`` for a valid event, 400 with ``{status, message,
errors}`` otherwise. Validation is ``pagerduty.validate_event``, the very function the
sender uses, so the two cannot disagree about the schema.

Accepted events are kept in order (``events``) and folded into alerts with PagerDuty's
de-duplication rules (``alerts``): a trigger for an open ``dedup_key`` joins that alert,
a trigger after a resolve opens a new one, and acknowledge/resolve without an open
alert are dropped. "One leak storm, one page" is therefore checkable as one alert.

Failures are scripted: ``script(429, 500, "timeout")`` makes the next three requests
answer 429, then 500, then hang until the client gives up; later requests are handled
normally again. A scripted 2xx means "handle this one normally".
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import uuid
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Any, Literal

from aiohttp import web

from canarywatch.incidents.pagerduty import PagerDutyError, validate_event
from canarywatch.serving import ServedApp, http_base_url

__all__ = [
    "ENQUEUE_PATH",
    "Alert",
    "EventsReceiver",
    "ReceivedRequest",
    "ReceiverError",
    "ScriptedResponse",
    "serve",
]

log = logging.getLogger(__name__)

ENQUEUE_PATH = "/v2/enqueue"

ScriptedResponse = int | Literal["timeout"]

_ERROR_BODIES: dict[int, dict[str, str]] = {
    400: {"status": "invalid event", "message": "Event object is invalid"},
    429: {
        "status": "throttle event",
        "message": "Requests for this service are arriving too quickly. Please retry later.",
    },
    504: {"status": "timeout", "message": "Gateway timeout"},
}
_SERVER_ERROR_BODY = {"status": "error", "message": "Internal server error"}


class ReceiverError(PagerDutyError):
    """The receiver could not start, or was used before ``start()``."""


@dataclass(frozen=True)
class ReceivedRequest:
    """One request as seen by the receiver, accepted or not.

    ``answer`` is the HTTP status sent, or ``"timeout"`` for a request that was left
    hanging on purpose. ``body`` is the parsed JSON (``None`` if it did not parse).
    """

    answer: ScriptedResponse
    body: object


@dataclass
class Alert:
    """A PagerDuty alert as the receiver models it: one per open ``dedup_key``."""

    dedup_key: str
    summary: str
    severity: str
    status: Literal["triggered", "acknowledged", "resolved"] = "triggered"
    triggers: int = 1  # trigger events folded into this alert

    @property
    def is_open(self) -> bool:
        return self.status != "resolved"


class EventsReceiver:
    """An Events API v2 endpoint on ``host:port`` (port 0 picks a free port).

    Use as ``async with EventsReceiver() as receiver: … receiver.url …`` or with
    ``start()``/``stop()``. With ``record_path``, every accepted event is also appended
    to that JSON-lines file, routing key masked to its last four characters.
    ``hang_seconds`` bounds a scripted ``"timeout"`` (``stop()`` ends it early).
    """

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        record_path: str | Path | None = None,
        responses: Iterable[ScriptedResponse] = (),
        hang_seconds: float = 30.0,
    ) -> None:
        self.host = host
        self._requested_port = port
        self.record_path = Path(record_path) if record_path is not None else None
        self._hang_seconds = hang_seconds
        self._script: deque[ScriptedResponse] = deque()
        self.script(*responses)
        self.events: list[dict[str, Any]] = []
        self.requests: list[ReceivedRequest] = []
        self.alerts: list[Alert] = []
        self._accepted = asyncio.Condition()
        self._stopping = asyncio.Event()
        self._served: ServedApp | None = None

    def script(self, *responses: ScriptedResponse) -> None:
        """Queue answers for the next requests: HTTP statuses or ``"timeout"``."""
        for response in responses:
            if response != "timeout" and not (isinstance(response, int) and 200 <= response <= 599):
                raise ValueError(f"scripted response {response!r}: use an HTTP status 200-599 or 'timeout'")
            self._script.append(response)

    @property
    def port(self) -> int:
        if self._served is None:
            raise ReceiverError("the receiver is not running; call start() first")
        return self._served.port

    @property
    def url(self) -> str:
        """The enqueue URL to hand to ``PagerDutyClient(url=…)``."""
        return f"{http_base_url(self.host, self.port)}{ENQUEUE_PATH}"

    def open_alert(self, dedup_key: str) -> Alert | None:
        return next((a for a in self.alerts if a.dedup_key == dedup_key and a.is_open), None)

    async def wait_for_events(self, count: int, *, timeout: float = 5.0) -> list[dict[str, Any]]:
        """Wait until ``count`` events were accepted; raises ``TimeoutError`` otherwise."""
        async with self._accepted:
            async with asyncio.timeout(timeout):
                await self._accepted.wait_for(lambda: len(self.events) >= count)
        return list(self.events)

    async def start(self) -> None:
        if self._served is not None:
            raise ReceiverError("the receiver is already running")
        app = web.Application()
        app.router.add_post(ENQUEUE_PATH, self._enqueue)
        # shutdown_timeout: a hanging scripted request is released by _stopping, so
        # nothing legitimate needs long; the 60 s default would stall every test.
        try:
            self._served = await ServedApp.start(
                app, self.host, self._requested_port, shutdown_timeout=2.0, access_log=None
            )
        except OSError as exc:
            raise ReceiverError(f"cannot listen on {self.host}:{self._requested_port}: {exc}") from exc
        self._stopping.clear()
        log.info("PagerDuty Events v2 receiver listening on %s", self.url)

    async def stop(self) -> None:
        if self._served is None:
            return
        self._stopping.set()
        await self._served.stop()
        self._served = None

    async def __aenter__(self) -> EventsReceiver:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.stop()

    async def _enqueue(self, request: web.Request) -> web.StreamResponse:
        scripted = self._script.popleft() if self._script else None
        raw = await request.read()
        body: object = None
        parsed = True
        try:
            body = json.loads(raw)
        except ValueError:  # includes undecodable bytes
            parsed = False
        if scripted == "timeout":
            self.requests.append(ReceivedRequest("timeout", body))
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._hang_seconds):
                    await self._stopping.wait()
            return _error(504)
        if isinstance(scripted, int) and not 200 <= scripted < 300:
            self.requests.append(ReceivedRequest(scripted, body))
            return _error(scripted)
        if not parsed:
            self.requests.append(ReceivedRequest(400, None))
            return _error(
                400,
                status="Unrecognized object",
                message="Event object format is unrecognized",
                errors=["JSON parse error"],
            )
        problems = validate_event(body)
        if problems:
            self.requests.append(ReceivedRequest(400, body))
            return _error(400, errors=problems)
        assert isinstance(body, dict)  # validate_event accepted it, so it is an object
        dedup_key = body.get("dedup_key") or uuid.uuid4().hex
        self.requests.append(ReceivedRequest(202, body))
        self._apply(body, dedup_key)
        self._record(body)
        # What a page says, never its routing key (a credential) nor anything else.
        payload = body.get("payload") or {}
        log.info(
            "accepted %s %s [%s] %s",
            body["event_action"],
            dedup_key,
            payload.get("severity", "-"),
            payload.get("summary", ""),
        )
        async with self._accepted:
            self.events.append(body)
            self._accepted.notify_all()
        return web.json_response(
            {"status": "success", "message": "Event processed", "dedup_key": dedup_key},
            status=202,
        )

    def _apply(self, event: dict[str, Any], dedup_key: str) -> None:
        alert = self.open_alert(dedup_key)
        action = event["event_action"]
        if action == "trigger":
            if alert is not None:
                alert.triggers += 1
            else:
                payload = event["payload"]
                self.alerts.append(Alert(dedup_key, payload["summary"], payload["severity"]))
        elif alert is not None:
            alert.status = "acknowledged" if action == "acknowledge" else "resolved"
        # PagerDuty drops acknowledge/resolve without an open alert; so do we.

    def _record(self, event: dict[str, Any]) -> None:
        if self.record_path is None:
            return
        # The routing key is a credential; a recording is for reading, not for replay.
        masked = {**event, "routing_key": f"****{event['routing_key'][-4:]}"}
        line = {"received_at": datetime.now(UTC).isoformat(), "event": masked}
        with self.record_path.open("a", encoding="utf-8") as handle:
            handle.write(json.dumps(line, ensure_ascii=False) + "\n")


def _error(http_status: int, /, **fields: Any) -> web.Response:
    body = {**_ERROR_BODIES.get(http_status, _SERVER_ERROR_BODY), **fields}
    return web.json_response(body, status=http_status)


async def serve(
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    record_path: str | Path | None = None,
    on_ready: Callable[[EventsReceiver], None] | None = None,
) -> None:
    """Run a receiver until cancelled; ``on_ready`` gets it once it listens.

    Meant for ``asyncio.run(serve(port=N, on_ready=lambda r: print(r.url)))`` behind a
    ``canarywatch pd-receiver`` command; Ctrl-C cancels it and stops the server.
    """
    async with EventsReceiver(host=host, port=port, record_path=record_path) as receiver:
        if on_ready is not None:
            on_ready(receiver)
        await asyncio.Event().wait()
