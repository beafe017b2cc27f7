"""What a hub's player decides from HLS playlists (viewer.transports.playlists, pure)."""

from __future__ import annotations

import pytest

from canarywatch.viewer.transports.playlists import (
    MasterPlaylist,
    MediaPlaylist,
    PlaylistError,
    Variant,
    choose_variant,
    looks_like_playlist,
    new_segments,
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
