"""H.264 segments of camera frames, in MPEG-TS, for the relay's HLS ladder (PyAV).

The relay's only video encoder: a window of one camera's JPEG frames becomes one
self-contained segment (it starts with a keyframe, so a player may join at any
segment) at one rung of the ladder. PyAV is a runtime extra (``canarywatch[video]``),
imported when the first segment is made: a relay that serves no video never loads it.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

from canarywatch.relay.imaging import TranscodeError, decode_jpeg, fit_box

__all__ = ["MPEGTS_CLOCK", "Rung", "encode_segment"]

#: MPEG-TS timestamps count a 90 kHz clock.
MPEGTS_CLOCK = 90_000


@dataclass(frozen=True)
class Rung:
    """One rendition of the ladder: a box the picture fits in, and its bitrate."""

    name: str
    #: the picture is scaled down (never up) to fit this box; None: the camera's size.
    box: tuple[int, int] | None
    bitrate: int


def encode_segment(frames: Sequence[tuple[float, bytes]], rung: Rung, *, start: float) -> bytes:
    """``frames`` (capture or arrival time, JPEG), oldest first, as one MPEG-TS segment
    of H.264 timed from ``start`` (unix seconds); raises ``TranscodeError``."""
    if not frames:
        raise TranscodeError("a segment needs at least one frame")
    try:
        import av  # the video extra; see the module docstring
    except ImportError as error:
        raise TranscodeError("video needs PyAV: pip install 'canarywatch[video]'") from error

    pictures = [decode_jpeg(jpeg) for _, jpeg in frames]
    if rung.box is not None:
        pictures = [fit_box(picture, rung.box) for picture in pictures]
    height, width = pictures[0].shape[:2]
    out = io.BytesIO()
    try:
        with av.open(out, mode="w", format="mpegts") as container:
            stream: Any = container.add_stream("libx264", rate=30)
            stream.width, stream.height = width - width % 2, height - height % 2
            stream.pix_fmt = "yuv420p"
            stream.bit_rate = rung.bitrate
            stream.time_base = Fraction(1, MPEGTS_CLOCK)
            # No B-frames and no lookahead: a live segment is written as frames arrive,
            # and one keyframe opens it (a player joins at any segment).
            stream.options = {"preset": "ultrafast", "tune": "zerolatency", "g": str(len(frames) + 1)}
            last_pts = -1
            for (at, _), picture in zip(frames, pictures, strict=True):
                frame = av.VideoFrame.from_ndarray(picture[: stream.height, : stream.width], format="bgr24")
                pts = max(last_pts + 1, round((at - start) * MPEGTS_CLOCK))
                frame.pts, frame.time_base, last_pts = pts, Fraction(1, MPEGTS_CLOCK), pts
                container.mux(stream.encode(frame))
            container.mux(stream.encode(None))
    except av.FFmpegError as error:
        raise TranscodeError(f"H.264 encoder failed: {error}") from error
    return out.getvalue()


def access_units(segment: bytes) -> tuple[bytes, list[tuple[int, bytes]]]:
    """The H.264 of an MPEG-TS segment: the decoder configuration (SPS/PPS, Annex B;
    may be empty) and each access unit with its timestamp (90 kHz, from the segment's
    start), for RTP. Raises ``TranscodeError``."""
    try:
        import av  # the video extra; see the module docstring
    except ImportError as error:
        raise TranscodeError("video needs PyAV: pip install 'canarywatch[video]'") from error
    units = []
    try:
        container: Any
        with av.open(io.BytesIO(segment), format="mpegts") as container:
            stream = container.streams.video[0]
            extradata = bytes(stream.codec_context.extradata or b"")
            for packet in container.demux(stream):
                if packet.size and packet.pts is not None:
                    units.append((int(packet.pts), bytes(packet)))
    except (av.FFmpegError, IndexError) as error:
        raise TranscodeError(f"cannot read the segment's H.264: {error}") from error
    first = units[0][0] if units else 0
    return extradata, [(pts - first, unit) for pts, unit in units]
