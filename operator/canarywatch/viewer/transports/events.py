"""``EventFeedReader``: poll an event feed (``?since=<id>``) and fetch each new event's
thumbnail, the path of the Wyze-class leak."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Unpack
from urllib.parse import parse_qsl, urlencode, urljoin, urlsplit, urlunsplit

import aiohttp

from canarywatch.viewer.http import RenderedRequest
from canarywatch.viewer.transports.base import (
    NETWORK_ERRORS,
    FrameKind,
    ReceivedFrame,
    Transport,
    TransportOptions,
    check_interval,
    same_origin,
)

__all__ = ["MAX_PENDING_THUMBNAILS", "THUMBNAIL_ATTEMPTS", "EventFeedReader"]

#: Polls on which an unreachable thumbnail is tried before it is reported and dropped.
THUMBNAIL_ATTEMPTS = 3
#: Unreachable thumbnails waiting for their next try; beyond it they are reported at once.
MAX_PENDING_THUMBNAILS = 64


@dataclass(frozen=True)
class _FeedEvent:
    event_id: int
    camera: str
    time: str
    thumbnail: str


class EventFeedReader(Transport):
    """Polls an event feed and yields each new event's thumbnail (kind ``thumbnail``,
    meta ``event_id``, ``camera``, ``event_time``).

    The feed answers a JSON list (or ``{"events": [...]}``) of ``{id, camera, time,
    thumbnail}`` with integer ids, oldest first, and takes ``since=<last id>``.
    Relative thumbnail URLs are resolved against ``base_url`` (default: the feed URL).
    The feed's headers (its credentials) go only to thumbnails on the feed's own
    origin; a thumbnail elsewhere (a signed CDN URL) is fetched without them. A
    thumbnail that cannot be fetched (network error) is tried again on the next
    ``THUMBNAIL_ATTEMPTS - 1`` polls while the feed moves on, then reported as a frame
    of status 0 with ``meta["problem"] == "thumbnail_unreachable"``.
    """

    def __init__(
        self,
        session: aiohttp.ClientSession,
        feed: RenderedRequest,
        *,
        interval_s: float,
        base_url: str | None = None,
        since: int = 0,
        **options: Unpack[TransportOptions],
    ) -> None:
        super().__init__(session, **options)
        check_interval(interval_s)
        self.feed = feed
        self.interval_s = interval_s
        self.base_url = base_url or feed.url
        #: the newest event id handled; the next poll asks for events after it.
        self.since = since
        #: feed answers or events that could not be understood (skipped).
        self.malformed = 0
        #: thumbnails given up on after ``THUMBNAIL_ATTEMPTS`` network errors (reported).
        self.unreachable = 0
        self._retry: dict[int, tuple[_FeedEvent, int]] = {}  # event id → (event, failed attempts)

    async def frames(self) -> AsyncIterator[ReceivedFrame]:
        feed = self.feed
        failures = 0
        while True:
            try:
                response = await self._fetch(
                    feed.method,
                    _with_query(feed.url, since=str(self.since)),
                    headers=feed.headers,
                    body=feed.body,
                )
                if response.status != 200 or response.truncated:
                    yield self._answer(FrameKind.THUMBNAIL, response, source=feed.source, success=False)
                else:
                    for event in [*self._retries_due(), *self._parse(response.body)]:
                        thumbnail = await self._thumbnail_or_problem(event)
                        # Advanced before the thumbnail is handed over (a consumer that
                        # stops here has seen it); an unreachable one is retried apart.
                        self.since = max(self.since, event.event_id)
                        if thumbnail is not None:
                            yield thumbnail
            except NETWORK_ERRORS as error:
                failures += 1
                self._record_error(error, feed.source)
                await self._back_off(failures, self.interval_s)
                continue
            failures = 0
            await self._sleep(self.interval_s)

    def _retries_due(self) -> list[_FeedEvent]:
        return [event for event, _ in self._retry.values()]

    async def _thumbnail_or_problem(self, event: _FeedEvent) -> ReceivedFrame | None:
        """The event's thumbnail; None while an unreachable one is still being retried,
        then a frame that reports it (``meta["problem"] == "thumbnail_unreachable"``).

        One event's thumbnail must not hold up the feed: the events after it are
        fetched meanwhile (the 2024 leak was in the thumbnails of *other* events).
        """
        try:
            frame = await self._thumbnail(event)
        except NETWORK_ERRORS as error:
            self._record_error(error, urlsplit(urljoin(self.base_url, event.thumbnail)).path)
            _, attempts = self._retry.pop(event.event_id, (event, 0))
            if attempts + 1 < THUMBNAIL_ATTEMPTS and len(self._retry) < MAX_PENDING_THUMBNAILS:
                self._retry[event.event_id] = (event, attempts + 1)
                return None
            self.unreachable += 1
            return self._frame(
                FrameKind.THUMBNAIL,
                source=urlsplit(urljoin(self.base_url, event.thumbnail)).path,
                status=0,
                body=b"",
                headers={},
                success=False,
                extra={**_event_meta(event), "problem": "thumbnail_unreachable"},
            )
        self._retry.pop(event.event_id, None)
        return frame

    async def _thumbnail(self, event: _FeedEvent) -> ReceivedFrame:
        url = urljoin(self.base_url, event.thumbnail)
        headers = self.feed.headers if same_origin(url, self.feed.url) else {}
        response = await self._fetch("GET", url, headers=headers)
        return self._answer(
            FrameKind.THUMBNAIL,
            response,
            source=urlsplit(url).path,
            success=response.status == 200,
            extra=_event_meta(event),
        )

    def _parse(self, body: bytes) -> list[_FeedEvent]:
        try:
            document = json.loads(body)
        except ValueError:
            self.malformed += 1
            return []
        if isinstance(document, dict):
            document = document.get("events")
        if not isinstance(document, list):
            self.malformed += 1
            return []
        events = []
        for item in document:
            event = _feed_event(item)
            if event is None:
                self.malformed += 1
            elif event.event_id > self.since:  # a feed that ignores `since` repeats itself
                events.append(event)
        return sorted(events, key=lambda e: e.event_id)


def _event_meta(event: _FeedEvent) -> dict[str, str]:
    return {"event_id": str(event.event_id), "camera": event.camera, "event_time": event.time}


def _feed_event(item: object) -> _FeedEvent | None:
    if not isinstance(item, dict):
        return None
    raw_id, thumbnail = item.get("id"), item.get("thumbnail")
    if isinstance(raw_id, str) and raw_id.isdigit():
        raw_id = int(raw_id)
    if not isinstance(raw_id, int) or isinstance(raw_id, bool) or raw_id < 0:
        return None
    if not isinstance(thumbnail, str) or not thumbnail:
        return None
    camera, event_time = item.get("camera", ""), item.get("time", "")
    return _FeedEvent(raw_id, str(camera), str(event_time), thumbnail)


def _with_query(url: str, **params: str) -> str:
    """``url`` with ``params`` set in its query (replacing any existing value)."""
    parts = urlsplit(url)
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k not in params]
    query.extend(params.items())
    return urlunsplit(parts._replace(query=urlencode(query)))
