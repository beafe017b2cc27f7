"""The relay's Low-Latency HLS playlists (relay.ladder, pure), read back by the viewer's
own parser: parts of the listed segments and of the one in progress, all independent,
blocking reloads announced, the part being written hinted."""

from __future__ import annotations

from canarywatch.relay.ladder import listed_windows, low_latency_playlist, master_playlist, part_windows
from canarywatch.viewer.transports.playlists import MasterPlaylist, MediaPlaylist, next_part, parse_playlist

SEGMENT = 2.0


def test_a_low_latency_playlist_lists_complete_parts_up_to_now_and_hints_the_next() -> None:
    now = 1000.6  # window 500 in progress, its part 1 being written (parts of 0.5 s)
    segments = listed_windows(first_frame_at=990.0, now=now, segment_seconds=SEGMENT, count=2)
    windows = part_windows(segments, now=now, segment_seconds=SEGMENT, per_segment=4)
    assert segments == range(498, 500) and windows.parts == range(498 * 4, 2001)
    media = parse_playlist(
        low_latency_playlist(windows, segment_seconds=SEGMENT).encode(), "http://r/low/ll.m3u8"
    )
    assert isinstance(media, MediaPlaylist) and media.can_block_reload and media.part_target == 0.5
    assert [s.sequence for s in media.segments] == [498, 499]
    assert all(p.independent for p in media.parts)
    assert [p.key for p in media.parts][-2:] == [(499, 3), (500, 0)]
    assert media.parts[-1].url == "http://r/low/p2000.ts"
    assert media.preload_hint == "http://r/low/p2001.ts"
    # a player that saw the last part asks for the next one: part 1 of segment 500
    assert next_part(media.parts[-1]) == (500, 1) and next_part(media.parts[-2]) == (500, 0)


def test_before_the_first_segment_completes_the_parts_of_the_first_are_listed() -> None:
    now = 1001.2  # the camera's first frame came at 1000.1: window 500, parts 2000 and 2001 done
    segments = listed_windows(first_frame_at=1000.1, now=now, segment_seconds=SEGMENT, count=3)
    windows = part_windows(segments, now=now, segment_seconds=SEGMENT, per_segment=4)
    media = parse_playlist(
        low_latency_playlist(windows, segment_seconds=SEGMENT).encode(), "http://r/low/ll.m3u8"
    )
    assert isinstance(media, MediaPlaylist) and media.segments == ()
    assert [p.key for p in media.parts] == [(500, 0), (500, 1)]


def test_the_low_latency_master_playlist_points_at_each_rungs_low_latency_playlist() -> None:
    master = parse_playlist(master_playlist(media="ll.m3u8").encode(), "http://r/hls/ll.m3u8")
    assert isinstance(master, MasterPlaylist)
    assert {v.url for v in master.variants} == {"http://r/hls/high/ll.m3u8", "http://r/hls/low/ll.m3u8"}
