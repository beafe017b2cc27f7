"""The relay's behaviour, independent of HTTP: ingest, viewing, events, operations.

The aiohttp handlers in ``app`` authenticate, parse and format; everything a viewer
can observe (which frame, which rendition, which events) is decided here, by the
caches and the fault decisions in ``faults``.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable, Mapping
from dataclasses import dataclass
from typing import Any

from canarywatch.relay import faults
from canarywatch.relay.auth import TokenBook
from canarywatch.relay.caches import SnapshotCache, ThumbnailCache, Variant, VariantCache
from canarywatch.relay.config import Fault, RelayConfig
from canarywatch.relay.events import DeviceRegistry, EventLog, raises_event
from canarywatch.relay.frames import Frame, FrameStore
from canarywatch.relay.grants import StreamGrant, StreamGrants
from canarywatch.relay.hints import Quality
from canarywatch.relay.imaging import TranscodeError, make_low_variant, make_thumbnail
from canarywatch.relay.ladder import PartWindows, listed_windows, part_windows, window_of
from canarywatch.relay.state import Phase, RelayState
from canarywatch.relay.video import Rung, encode_segment

__all__ = ["FeedItem", "Refusal", "RefusalKind", "Relay", "Served"]

logger = logging.getLogger(__name__)

# Frames kept per camera for video segments: the windows a playlist lists, at up to
# 30 fps for 2 s segments (a camera sending faster loses its oldest frames first).
_HISTORY_FRAMES = 256
# A few windows of every rung of every camera; older segments are no longer listed.
_MAX_SEGMENTS = 4096


class RefusalKind(enum.StrEnum):
    """The ``error`` code of a 503, so clients can tell a kill switch from a crash."""

    DISABLED = "integration_disabled"
    OUTAGE = "outage"


@dataclass(frozen=True)
class Refusal:
    """Why tenant-facing endpoints answer 503 right now."""

    kind: RefusalKind
    message: str
    retry_after_seconds: float | None = None
    detail: dict[str, Any] | None = None


@dataclass(frozen=True)
class Served:
    """The bytes a viewer gets, with the sequence number of the frame they came from."""

    jpeg: bytes
    seq: int
    quality: Quality


@dataclass(frozen=True)
class FeedItem:
    event_id: int
    camera: str
    time: float


class Relay:
    """One multi-tenant camera relay: frame origin, caches, events and admin state."""

    def __init__(self, config: RelayConfig, *, clock: Callable[[], float] = time.time) -> None:
        self.config = config
        self.clock = clock
        self.tokens = TokenBook(config.tenants, config.admin_token)
        self.state = RelayState(fault=config.fault, recovery_window_seconds=config.wyze_window_seconds)
        self.frames = FrameStore(history=_HISTORY_FRAMES)
        self._snapshots = SnapshotCache()
        self._variants = VariantCache()
        self._thumbnails = ThumbnailCache()
        self._devices = DeviceRegistry()
        self._events = EventLog(retention=config.event_retention)
        self._segments: OrderedDict[Hashable, bytes] = OrderedDict()
        self._encoding: dict[Hashable, asyncio.Future[bytes | None]] = {}
        self.grants = StreamGrants(lifetime_seconds=config.stream_url_seconds)
        #: ``rtsp://host:port`` of the relay's RTSP server once it listens (None: none).
        self.rtsp_url: str | None = None
        self._closing = False

    @property
    def closing(self) -> bool:
        return self._closing

    def close(self) -> None:
        """Stop serving streams; called on application shutdown."""
        self._closing = True
        self.frames.wake_all()

    # -- availability ---------------------------------------------------------

    def refusal(self) -> Refusal | None:
        """None while tenant endpoints may serve; otherwise the 503's reason."""
        record = self.state.kill_record
        if record is not None:
            return Refusal(
                kind=RefusalKind.DISABLED,
                message=f"integration disabled by {record.actor}: {record.reason}",
                detail={"disabled_by": record.actor, "disabled_at": record.at},
            )
        now = self.clock()
        if self.state.phase(now) is Phase.OUTAGE:
            remaining = self.state.outage_remaining(now)
            return Refusal(
                kind=RefusalKind.OUTAGE,
                message="relay is down (simulated outage)",
                retry_after_seconds=remaining,
            )
        return None

    # -- cameras ---------------------------------------------------------------

    async def ingest(self, tenant: str, camera: str, jpeg: bytes, *, pulled: bool = False) -> Frame:
        """Accept a camera's frame; raises an event (with thumbnail) when one is due."""
        frame = self.frames.publish(tenant, camera, jpeg, now=self.clock())
        counters = self.state.counters
        counters.frames_ingested += 1
        if pulled:
            counters.frames_pulled += 1
        device = self._devices.device_for(tenant, camera)
        if raises_event(frame.seq, self.config.event_every_frames):
            try:
                thumbnail = await asyncio.to_thread(make_thumbnail, jpeg, width=self.config.thumbnail_width)
            except TranscodeError as error:
                # The frame is still served as is; only its event is lost.
                counters.transcode_failures += 1
                logger.warning("no event for %s/%s seq %d: %s", tenant, camera, frame.seq, error)
                return frame
            event = self._events.append(device.device_id, time=frame.received_at, seq=frame.seq)
            # No await between logging the event and caching its thumbnail: a feed can
            # never list an event whose thumbnail is not there yet.
            self._thumbnails.put(device.device_id, event.event_id, thumbnail)
            counters.events_raised += 1
        return frame

    # -- viewers ---------------------------------------------------------------

    def snapshot_frame(self, tenant: str, camera: str) -> Frame | None:
        """What ``live.jpg`` shows: the latest frame through the snapshot cache."""
        ttl = faults.snapshot_ttl(
            self.state.fault,
            ttl=self.config.snapshot_ttl_seconds,
            stale_ttl=self.config.stale_ttl_seconds,
        )
        return self._snapshots.read_through(
            (tenant, camera),
            now=self.clock(),
            ttl=ttl,
            load=lambda: self.frames.latest(tenant, camera),
        )

    async def render(self, frame: Frame, quality: Quality) -> Served:
        """The rendition of ``frame`` a viewer asked for; raises ``TranscodeError``."""
        if quality is Quality.ORIGINAL:
            return Served(frame.jpeg, frame.seq, quality)
        key = faults.variant_cache_key(self.state.fault, frame.tenant, frame.camera)
        variant = self._variants.lookup(key, frame)
        if variant is None:
            try:
                jpeg = await asyncio.to_thread(
                    make_low_variant, frame.jpeg, quality=self.config.low_variant_quality
                )
            except TranscodeError:
                self.state.counters.transcode_failures += 1
                raise
            self.state.counters.transcodes += 1
            variant = Variant.of(frame, jpeg)
            self._variants.store(key, variant)
        self.state.counters.low_variants_served += 1
        return Served(variant.jpeg, variant.source_seq, quality)

    # -- video (the HLS ladder) ----------------------------------------------------

    def video_windows(self, tenant: str, camera: str) -> range | None:
        """The segment windows a media playlist of the camera lists now; None for a
        camera that has sent nothing (or nothing the relay still holds)."""
        recent = self.frames.recent(tenant, camera)
        if not recent:
            return None
        return listed_windows(
            first_frame_at=recent[0].received_at,
            now=self.clock(),
            segment_seconds=self.config.hls_segment_seconds,
            count=self.config.hls_playlist_segments,
        )

    def video_parts(self, tenant: str, camera: str) -> PartWindows | None:
        """The segments and Low-Latency parts a playlist of the camera lists now."""
        windows = self.video_windows(tenant, camera)
        if windows is None:
            return None
        return part_windows(
            windows,
            now=self.clock(),
            segment_seconds=self.config.hls_segment_seconds,
            per_segment=self.config.hls_parts_per_segment,
        )

    async def video_segment(self, tenant: str, camera: str, rung: Rung, window: int) -> bytes | None:
        """Segment ``window`` of the camera at ``rung``, through the segment cache; None
        when the window is not listed (too old, not complete) or its frames are gone.
        Raises ``TranscodeError``."""
        windows = self.video_windows(tenant, camera)
        if windows is None or window not in windows:
            return None
        return await self._media(tenant, camera, rung, window, seconds=self.config.hls_segment_seconds)

    async def video_part(self, tenant: str, camera: str, rung: Rung, part: int) -> bytes | None:
        """Low-Latency part ``part`` (a global part number), like ``video_segment``."""
        windows = self.video_parts(tenant, camera)
        if windows is None or part not in windows.parts:
            return None
        seconds = self.config.hls_segment_seconds / self.config.hls_parts_per_segment
        return await self._media(tenant, camera, rung, part, seconds=seconds, part=True)

    async def _media(
        self, tenant: str, camera: str, rung: Rung, window: int, *, seconds: float, part: bool = False
    ) -> bytes | None:
        key = faults.segment_cache_key(
            self.state.fault, tenant, camera, rung=rung.name, window=window, part=part
        )
        segment = self._segments.get(key)
        if segment is None:
            # One encode per key at a time (a single-flight cache): viewers asking for a
            # segment being made wait for it rather than encoding it again.
            pending = self._encoding.get(key)
            if pending is None:
                pending = asyncio.ensure_future(self._encode(tenant, camera, rung, window, seconds))
                self._encoding[key] = pending
                pending.add_done_callback(lambda _: self._encoding.pop(key, None))
            segment = await asyncio.shield(pending)
            if segment is None:
                return None
            self._segments[key] = segment
            while len(self._segments) > _MAX_SEGMENTS:
                self._segments.popitem(last=False)
        self._segments.move_to_end(key)
        self.state.counters.segments_served += 1
        return segment

    async def _encode(
        self, tenant: str, camera: str, rung: Rung, window: int, seconds: float
    ) -> bytes | None:
        frames = self._window_frames(tenant, camera, window, seconds)
        if not frames:
            return None
        try:
            segment = await asyncio.to_thread(encode_segment, frames, rung, start=window * seconds)
        except TranscodeError:
            self.state.counters.transcode_failures += 1
            raise
        self.state.counters.segments_encoded += 1
        return segment

    def _window_frames(
        self, tenant: str, camera: str, window: int, seconds: float
    ) -> list[tuple[float, bytes]]:
        inside = [
            f for f in self.frames.recent(tenant, camera) if window_of(f.received_at, seconds) == window
        ]
        if inside:
            return [(f.received_at, f.jpeg) for f in inside]
        # A quiet window holds the camera's previous picture, as a live segmenter does.
        before = [f for f in self.frames.recent(tenant, camera) if window_of(f.received_at, seconds) < window]
        return [(window * seconds, before[-1].jpeg)] if before else []

    def grant_stream(self, tenant: str, camera: str) -> str:
        """A stream token for the tenant's camera (the hub's URL carries it)."""
        self.state.counters.hub_streams_issued += 1
        return self.grants.issue(tenant, camera, now=self.clock())

    def stream_grant(self, token: str) -> StreamGrant | None:
        return self.grants.resolve(token, now=self.clock())

    def feed(self, tenant: str, *, since: int, limit: int) -> list[FeedItem]:
        """The tenant's events newer than ``since``, oldest first, at most ``limit``."""
        owners = self._owner_map()
        items = []
        for event in self._events.since(since):
            if owners.get(event.device_id) != tenant:
                continue
            camera = self._devices.device(event.device_id).camera
            items.append(FeedItem(event.event_id, camera, event.time))
            if len(items) >= limit:
                break
        return items

    def thumbnail(self, tenant: str, event_id: int) -> bytes | None:
        """The event's thumbnail if the owner map says ``tenant`` owns its device."""
        event = self._events.get(event_id)
        if event is None or self._owner_map().get(event.device_id) != tenant:
            return None
        jpeg = self._thumbnails.get(event.device_id, event_id)
        if jpeg is not None:
            self.state.counters.thumbnails_served += 1
        return jpeg

    def _owner_map(self) -> Mapping[str, str]:
        scrambled = faults.owner_map_is_scrambled(self.state.fault, self.state.phase(self.clock()))
        return self._thumbnails.owners(
            (scrambled, self._devices.version),
            lambda: faults.rebuild_owner_map(self._devices.ownership(), scrambled=scrambled),
        )

    # -- operations ------------------------------------------------------------

    def kill(self, *, actor: str, reason: str) -> bool:
        changed = self.state.kill(actor=actor, reason=reason, now=self.clock())
        if changed:
            logger.warning("integration disabled by %s: %s", actor, reason)
            # Open MJPEG streams must stop now, not at their camera's next frame.
            self.frames.wake_all()
        return changed

    def resume(self) -> bool:
        changed = self.state.resume()
        if changed:
            logger.warning("integration resumed")
        return changed

    def set_fault(self, fault: Fault) -> bool:
        changed = self.state.set_fault(fault)
        if changed:
            logger.warning("fault switched to %s", fault)
            # A new fault is a new deployment of the caching code: start from cold
            # caches so the behaviour observed is the new fault's, not a mix.
            self._flush_caches()
        return changed

    def start_outage(self, seconds: float) -> float:
        """Simulate a crash: 503 for ``seconds``, then recovery with cold caches."""
        until = self.state.start_outage(seconds, now=self.clock())
        logger.warning("simulated outage for %.1f s", seconds)
        self._flush_caches()
        self.frames.wake_all()
        return until

    def _flush_caches(self) -> None:
        self._snapshots.clear()
        self._variants.clear()
        self._segments.clear()
        self._encoding.clear()
        self._thumbnails.invalidate_owners()

    def describe(self) -> dict[str, Any]:
        """The admin state document (``GET /v3/admin/state``)."""
        now = self.clock()
        record = self.state.kill_record
        return {
            "enabled": self.state.enabled,
            "fault": str(self.state.fault),
            "phase": str(self.state.phase(now)),
            "disabled": None
            if record is None
            else {"by": record.actor, "reason": record.reason, "at": record.at},
            "outage": {
                "remaining_seconds": self.state.outage_remaining(now),
                "recovery_ends_at": self.state.recovery_ends_at(),
            },
            "tenants": sorted(self.config.tenants),
            "counters": self.state.counters.as_dict(),
        }
