"""How a hub viewer receives frames: async iterators of ``ReceivedFrame``.

One class (and module) per integration path a hub uses, each sending its requests
through a ``Shaper`` (so it sees the network its profile describes, and announces it):

- ``SnapshotPoller`` (``snapshot``): ``GET`` a snapshot URL every ``interval_s``.
- ``MjpegReader`` (``mjpeg``): hold a ``multipart/x-mixed-replace`` stream open, one
  frame per part (``multipart`` parses it, pure).
- ``EventFeedReader`` (``events``): poll an event feed (``?since=<id>``) and fetch each
  new event's thumbnail, the path of the Wyze-class leak.
- ``AuthzProber`` (``authz``): ask for *other* tenants' resources with the viewer's own
  credentials; the only right answers are 401/403/404.
- ``HlsReader`` (``hls``): a master/media playlist, the variant a player on the hub's
  link picks, each new segment decoded (PyAV, off the event loop, keyframes only by
  default: ``video.Sampling``) into frames judged like snapshots. Another viewer (a
  hub protocol handed an HLS URL) reuses it with a ``RenderedRequest`` for the URL.
- ``RtspReader`` (``rtsp``): FFmpeg's RTSP client over TCP (Basic/Digest from the URL's
  userinfo) in a thread per connection, sampled frames judged like snapshots.
- ``Mp4Reader`` (``mp4``): an HTTP progressive MP4, a live fragmented MP4 fed to FFmpeg
  as it arrives (``feed``, bounded both ways) or a file read whole, sampled frames.
- ``HlsReader(low_latency=True)`` (``llhls``): Low-Latency HLS, part by part with
  blocking playlist reloads (``_HLS_msn``/``_HLS_part``).
- ``WhepReader`` (``whep``): WebRTC over WHEP (aiortc): the SDP offer POSTed with the
  viewer's headers (a Bearer token), the track's frames sampled (two a second by
  default) and judged like snapshots.

What they share, because a monitor must outlive the thing it monitors:

- Network errors and timeouts are counted (``errors``, ``last_error``) and retried with
  capped exponential backoff (``canarywatch.retrying.Backoff``, in ``base``); they are
  never raised.
- Answers other than success are yielded as frames with an empty body and the status
  (and the JSON ``error`` code in ``meta`` when the integration sends one), so the
  caller can tell "integration disabled" (a 503) from "no frame yet" (a 404).
- Loops stop promptly on cancellation and close what they hold open. Iterate them in a
  task and cancel it, or wrap ``frames()`` in ``contextlib.aclosing`` when breaking out
  of the loop early; either closes the open response at once.
"""

from canarywatch.viewer.transports.authz import ACCESS_GRANTED, DENIED_STATUSES, AuthzProber
from canarywatch.viewer.transports.base import (
    DEFAULT_MAX_BODY_BYTES,
    FrameKind,
    ReceivedFrame,
    TransportOptions,
)
from canarywatch.viewer.transports.events import EventFeedReader
from canarywatch.viewer.transports.hls import HlsReader
from canarywatch.viewer.transports.mjpeg import MjpegReader
from canarywatch.viewer.transports.mp4 import Mp4Reader
from canarywatch.viewer.transports.multipart import (
    MultipartParser,
    MultipartPart,
    OversizedPart,
    boundary_from_content_type,
)
from canarywatch.viewer.transports.rtsp import RtspReader
from canarywatch.viewer.transports.snapshot import SnapshotPoller
from canarywatch.viewer.transports.whep import WhepReader

__all__ = [
    "ACCESS_GRANTED",
    "DEFAULT_MAX_BODY_BYTES",
    "DENIED_STATUSES",
    "AuthzProber",
    "EventFeedReader",
    "FrameKind",
    "HlsReader",
    "MjpegReader",
    "Mp4Reader",
    "MultipartParser",
    "MultipartPart",
    "OversizedPart",
    "ReceivedFrame",
    "RtspReader",
    "SnapshotPoller",
    "TransportOptions",
    "WhepReader",
    "boundary_from_content_type",
]
