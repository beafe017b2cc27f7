"""What a hub's player decides from HLS playlists (viewer.transports.playlists, pure)."""

from __future__ import annotations

import pytest

from canarywatch.viewer.transports.playlists import (
    MasterPlaylist,
    MediaPlaylist,
    PlaylistError,
    Variant,
    blocking_reload_url,
    choose_variant,
    looks_like_playlist,
    new_parts,
    new_segments,
    next_part,
    parse_playlist,
)
from canarywatch.viewer.transports.video import looks_like_video

MASTER = b"""#EXTM3U
#EXT-X-VERSION:3
#EXT-X-STREAM-INF:PROGRAM-ID=1,BANDWIDTH=250000,RESOLUTION=320x180
acme_0_low/index.m3u8
#EXT-X-STREAM-INF:PROGRAM-ID=1,BANDWIDTH=1000000,RESOLUTION=640x360
https://cdn.example/acme_0_hi/index.m3u8
"""
MEDIA_TS = b"""#EXTM3U
#EXT-X-VERSION:3
#EXT-X-MEDIA-SEQUENCE:41
#EXT-X-TARGETDURATION:2
#EXTINF:1.000,
41.ts
#EXTINF:1.000,
42.ts?sig=abc
#EXTINF:1.000,
/other/43.ts
"""
MEDIA_FMP4 = b"""#EXTM3U
#EXT-X-VERSION:7
#EXT-X-TARGETDURATION:1
#EXT-X-MEDIA-SEQUENCE:7
#EXT-X-MAP:URI="init.mp4"
#EXTINF:1.0,
seg7.m4s
#EXT-X-ENDLIST
"""


def test_a_master_playlist_lists_its_variants_resolved_against_the_url_that_answered() -> None:
    master = parse_playlist(MASTER, "http://relay/hls/acme_0.m3u8")
    assert isinstance(master, MasterPlaylist)
    assert master.variants == (
        Variant("http://relay/hls/acme_0_low/index.m3u8", 250_000, "320x180"),
        Variant("https://cdn.example/acme_0_hi/index.m3u8", 1_000_000, "640x360"),
    )


def test_a_media_playlist_numbers_its_segments_from_the_media_sequence() -> None:
    media = parse_playlist(MEDIA_TS, "http://relay/hls/acme_0_low/index.m3u8")
    assert isinstance(media, MediaPlaylist) and media.target_duration == 2 and not media.ended
    assert [(s.sequence, s.url) for s in media.segments] == [
        (41, "http://relay/hls/acme_0_low/41.ts"),
        (42, "http://relay/hls/acme_0_low/42.ts?sig=abc"),
        (43, "http://relay/other/43.ts"),
    ]
    assert all(s.init_url is None for s in media.segments)


def test_an_fmp4_segment_carries_its_init_section() -> None:
    media = parse_playlist(MEDIA_FMP4, "http://relay/v/index.m3u8")
    assert isinstance(media, MediaPlaylist) and media.ended
    (segment,) = media.segments
    assert (segment.sequence, segment.url, segment.init_url) == (
        7,
        "http://relay/v/seg7.m4s",
        "http://relay/v/init.mp4",
    )


@pytest.mark.parametrize("body", [b"", b"\xff\xd8\xff\xe0 a JPEG", b"<html>login</html>", b"\xff\xfe#EXTM3U"])
def test_what_is_not_a_playlist_is_refused_with_a_reason(body: bytes) -> None:
    with pytest.raises(PlaylistError):
        parse_playlist(body, "http://relay/x.m3u8")


@pytest.mark.parametrize(
    ("downlink_bps", "picked"),
    [(None, 1_000_000), (10_000_000, 1_000_000), (1_250_000, 1_000_000), (1_000_000, 500_000),
     (400_000, 250_000), (100_000, 250_000)],
)  # fmt: skip
def test_a_player_picks_the_best_variant_its_link_carries_and_falls_to_the_lowest(
    downlink_bps: float | None, picked: int
) -> None:
    # 80 % of the link goes to video: 1 Mbit/s carries the 500 kbit/s rung, not 1 Mbit/s
    variants = (Variant("lo", 250_000), Variant("hi", 1_000_000), Variant("mid", 500_000))
    assert choose_variant(variants, downlink_bps=downlink_bps).bandwidth == picked


def test_a_player_joins_at_the_live_edge_then_takes_every_new_segment() -> None:
    media = parse_playlist(MEDIA_TS, "http://relay/a/index.m3u8")
    assert isinstance(media, MediaPlaylist)
    assert [s.sequence for s in new_segments(media, None)] == [43]
    assert [s.sequence for s in new_segments(media, 41)] == [42, 43]
    assert new_segments(media, 43) == []
    # the stream restarted (sequence went back): join at the live edge again
    assert [s.sequence for s in new_segments(media, 900)] == [43]


def test_playlists_and_video_are_told_from_images_by_type_or_first_bytes() -> None:
    assert looks_like_playlist(b"#EXTM3U\n") and looks_like_playlist(b"x", "application/vnd.apple.mpegURL")
    assert not looks_like_playlist(b"\xff\xd8\xff", "image/jpeg")
    ts = bytes([0x47] + [0] * 187) * 3
    assert looks_like_video(ts) and looks_like_video(b"\x00\x00\x00\x18ftypisom")
    assert looks_like_video(b"", "video/mp4") and not looks_like_video(b"\xff\xd8\xff\xe0", "image/jpeg")


LOW_LATENCY = b"""#EXTM3U
#EXT-X-VERSION:9
#EXT-X-TARGETDURATION:2
#EXT-X-PART-INF:PART-TARGET=0.5
#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,PART-HOLD-BACK=1.5
#EXT-X-MEDIA-SEQUENCE:10
#EXT-X-MAP:URI="init.mp4"
#EXT-X-PART:DURATION=0.5,URI="10.0.m4s",INDEPENDENT=YES
#EXT-X-PART:DURATION=0.5,URI="10.1.m4s"
#EXTINF:1.0,
10.m4s
#EXT-X-PART:DURATION=0.5,URI="11.0.m4s",INDEPENDENT=YES
#EXT-X-PART:DURATION=0.5,URI="11.1.m4s?t=x"
#EXT-X-PRELOAD-HINT:TYPE=PART,URI="11.2.m4s"
"""


def test_a_low_latency_playlist_lists_its_parts_with_the_map_and_the_server_control() -> None:
    media = parse_playlist(LOW_LATENCY, "http://relay/ll/acme/index.m3u8?token=t")
    assert isinstance(media, MediaPlaylist)
    assert media.part_target == 0.5 and media.can_block_reload
    assert media.preload_hint == "http://relay/ll/acme/11.2.m4s"
    # the segment in progress is no segment yet; its parts are listed, with the map
    assert [s.sequence for s in media.segments] == [10]
    assert [(p.key, p.independent, p.closes_segment) for p in media.parts] == [
        ((10, 0), True, False),
        ((10, 1), False, True),
        ((11, 0), True, False),
        ((11, 1), False, False),
    ]
    assert {p.init_url for p in media.parts} == {"http://relay/ll/acme/init.mp4"}
    assert media.parts[-1].url == "http://relay/ll/acme/11.1.m4s?t=x"


def test_a_playlist_without_parts_is_no_low_latency_playlist() -> None:
    media = parse_playlist(MEDIA_FMP4, "http://relay/x/index.m3u8")
    assert isinstance(media, MediaPlaylist)
    assert media.parts == () and media.part_target is None and not media.can_block_reload
    assert new_parts(media, None) == []


def test_a_low_latency_player_joins_at_the_newest_independent_part_then_takes_each_new_one() -> None:
    media = parse_playlist(LOW_LATENCY, "http://relay/ll/acme/index.m3u8")
    assert isinstance(media, MediaPlaylist)
    assert [p.key for p in new_parts(media, None)] == [(11, 0), (11, 1)]
    assert [p.key for p in new_parts(media, (10, 1))] == [(11, 0), (11, 1)]
    assert new_parts(media, (11, 1)) == []
    # the stream restarted (sequence went backwards): join at the live edge again
    assert [p.key for p in new_parts(media, (40, 2))] == [(11, 0), (11, 1)]


def test_a_blocking_reload_asks_for_the_part_after_the_last_one_seen() -> None:
    media = parse_playlist(LOW_LATENCY, "http://relay/ll/acme/index.m3u8")
    assert isinstance(media, MediaPlaylist)
    by_key = {p.key: p for p in media.parts}
    assert next_part(by_key[(11, 1)]) == (11, 2)
    assert next_part(by_key[(10, 1)]) == (11, 0)  # the last part of a complete segment
    url = blocking_reload_url("http://relay/ll/index.m3u8?token=a%2Fb&_HLS_msn=3", (11, 2))
    assert url == "http://relay/ll/index.m3u8?token=a%2Fb&_HLS_msn=11&_HLS_part=2"


def test_the_map_applies_to_the_parts_of_a_first_segment_still_being_written() -> None:
    body = b"""#EXTM3U
#EXT-X-VERSION:9
#EXT-X-TARGETDURATION:1
#EXT-X-PART-INF:PART-TARGET=0.2
#EXT-X-MAP:URI="init.mp4"
#EXT-X-PART:DURATION=0.2,URI="p0.m4s",INDEPENDENT=YES
#EXT-X-PART:DURATION=0.2,URI="p1.m4s"
"""
    media = parse_playlist(body, "http://relay/ll/index.m3u8")
    assert isinstance(media, MediaPlaylist) and media.segments == ()
    assert [p.init_url for p in media.parts] == ["http://relay/ll/init.mp4"] * 2
