"""Video → the frames a viewer judges: demux and decode with PyAV (FFmpeg), sampled.

Blocking by nature (FFmpeg decodes on the calling thread), so the transports call these
functions in a worker thread (``asyncio.to_thread``) and the event loop keeps serving
every other stream. PyAV and OpenCV are imported on first use: a viewer that only polls
snapshots never loads them.

Decode cost is bounded per stream by ``Sampling``: by default only keyframes are decoded
(FFmpeg skips the others without decoding them; a canary camera's marker is in every
frame, so one per GOP proves whose frames the path shows), at most ``max_frames`` per
call, frames spaced at least ``min_interval_s`` apart by presentation time, and frames
wider than ``max_width`` scaled down in FFmpeg before they are converted.

Each sampled frame is handed on as a JPEG at quality 95 (``DecodedFrame.image``), so the
verdict path, the evidence and the metrics treat it exactly as a snapshot.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "DEFAULT_SAMPLING",
    "DecodedFrame",
    "Sampling",
    "UndecodableVideo",
    "convert_frame",
    "decode_video",
    "iter_frames",
    "looks_like_video",
]

_JPEG_QUALITY = 95


class UndecodableVideo(Exception):
    """FFmpeg could not open, demux or decode the video (the reason, short).

    ``status``: the server's refusal when FFmpeg opened a URL itself (401, 403, 404...);
    ``network``: the connection failed or timed out (nothing was refused or decoded)."""

    def __init__(self, reason: str, *, status: int | None = None, network: bool = False) -> None:
        super().__init__(reason)
        self.status = status
        self.network = network


@dataclass(frozen=True)
class Sampling:
    """Which decoded frames are judged (and so what decoding costs)."""

    #: decode keyframes only (FFmpeg's ``skip_frame=NONKEY``): one frame per GOP.
    keyframes_only: bool = True
    #: at most this many frames per call (a segment, a chunk of a stream).
    max_frames: int = 4
    #: frames closer than this (presentation time, seconds) to the last one are skipped.
    min_interval_s: float = 0.0
    #: frames wider than this are scaled down before conversion (the marker reads at 320).
    max_width: int = 1280

    def __post_init__(self) -> None:
        if self.max_frames < 1:
            raise ValueError(f"max_frames must be >= 1, got {self.max_frames}")
        if self.min_interval_s < 0:
            raise ValueError(f"min_interval_s must be >= 0, got {self.min_interval_s}")
        if self.max_width < 64:
            raise ValueError(f"max_width must be >= 64, got {self.max_width}")


DEFAULT_SAMPLING = Sampling()


@dataclass(frozen=True)
class DecodedFrame:
    """One sampled frame, as a JPEG the verdict path decodes like any snapshot."""

    image: bytes = field(repr=False)
    width: int
    height: int
    #: presentation time in seconds (None when the stream has none).
    pts_s: float | None
    keyframe: bool


def looks_like_video(body: bytes, content_type: str = "") -> bool:
    """Video by its content type or its first bytes: MPEG-TS sync bytes, an ISO BMFF
    box (MP4/fMP4), FLV or Matroska/WebM."""
    media_type = content_type.split(";", 1)[0].strip().lower()
    if media_type.startswith("video/"):
        return True
    if len(body) > 376 and body[0] == body[188] == body[376] == 0x47:
        return True
    return (
        body[4:8] in (b"ftyp", b"styp", b"moof", b"moov")
        or body[:3] == b"FLV"
        or body[:4] == b"\x1aE\xdf\xa3"
    )


def decode_video(
    data: bytes, *, sampling: Sampling = DEFAULT_SAMPLING, container_format: str | None = None
) -> list[DecodedFrame]:
    """The sampled frames of a complete piece of video (an HLS segment, with its init
    section prepended for fMP4; a short MP4). Raises ``UndecodableVideo``."""
    if not data:
        raise UndecodableVideo("empty body")
    return list(iter_frames(io.BytesIO(data), sampling=sampling, container_format=container_format))


def iter_frames(
    source: Any,
    *,
    sampling: Sampling = DEFAULT_SAMPLING,
    container_format: str | None = None,
    options: dict[str, str] | None = None,
    timeout_s: float | None = None,
    limit: int | None = None,
) -> Iterator[DecodedFrame]:
    """Sampled frames of ``source`` as they are decoded, at most ``limit`` (default
    ``sampling.max_frames``; 0 = until the stream ends). Blocking: run it in a thread."""
    import av  # lazily: only video viewers load FFmpeg

    cap = sampling.max_frames if limit is None else limit
    try:
        timeout = None if timeout_s is None else (timeout_s, timeout_s)
        container = av.open(source, mode="r", format=container_format, options=options or {}, timeout=timeout)
    except (av.FFmpegError, OSError, ValueError) as error:
        raise _undecodable(error) from None
    try:
        streams = container.streams.video
        if not streams:
            raise UndecodableVideo("no video stream")
        stream = streams[0]
        if sampling.keyframes_only:
            stream.codec_context.skip_frame = "NONKEY"
        stream.thread_type = "AUTO"
        produced = 0
        last_pts: float | None = None
        for frame in _decoded(container, stream):
            pts_s = (
                None if frame.pts is None or stream.time_base is None else float(frame.pts * stream.time_base)
            )
            if (
                last_pts is not None
                and pts_s is not None
                and sampling.min_interval_s > 0
                and 0 <= pts_s - last_pts < sampling.min_interval_s
            ):
                continue
            last_pts = pts_s
            yield convert_frame(frame, pts_s, sampling.max_width)
            produced += 1
            if cap and produced >= cap:
                return
        if produced == 0:
            raise UndecodableVideo("no decodable frame")
    finally:
        container.close()


def _decoded(container: Any, stream: Any) -> Iterator[Any]:
    import av

    try:
        for packet in container.demux(stream):
            try:
                yield from packet.decode()
            except av.InvalidDataError:
                continue  # one corrupt packet: the next keyframe recovers
    except (av.FFmpegError, OSError) as error:
        raise _undecodable(error) from None


def convert_frame(frame: Any, pts_s: float | None, max_width: int) -> DecodedFrame:
    """A decoded ``av.VideoFrame`` as the JPEG the verdict path judges, scaled down to
    ``max_width``. Blocking (the scaling and the JPEG): run it in a thread."""
    import cv2

    width, height = frame.width, frame.height
    if width > max_width:
        height = max(2, round(height * max_width / width / 2) * 2)
        width = max_width
    image = frame.to_ndarray(format="bgr24", width=width, height=height)
    ok, encoded = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, _JPEG_QUALITY])
    if not ok:
        raise UndecodableVideo("frame could not be converted")
    return DecodedFrame(encoded.tobytes(), width, height, pts_s, bool(frame.key_frame))


def _undecodable(error: BaseException) -> UndecodableVideo:
    import av.error

    statuses = {
        av.error.HTTPBadRequestError: 400,
        av.error.HTTPUnauthorizedError: 401,
        av.error.HTTPForbiddenError: 403,
        av.error.HTTPNotFoundError: 404,
        av.error.HTTPTooManyRequestsError: 429,
    }
    status = next((code for kind, code in statuses.items() if isinstance(error, kind)), None)
    if status is None and isinstance(error, av.error.HTTPServerError):
        status = 500
    network = isinstance(error, (ConnectionError, TimeoutError, av.error.EOFError)) and status is None
    return UndecodableVideo(_reason(error), status=status, network=network)


def _reason(error: BaseException) -> str:
    # FFmpeg's messages can carry the URL (and so its credentials): keep the type and
    # FFmpeg's short error string only.
    strerror = getattr(error, "strerror", None)
    return f"{type(error).__name__}: {strerror}" if strerror else type(error).__name__
