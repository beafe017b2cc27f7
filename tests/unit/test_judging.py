"""Per-stream judging: verdicts from real frames, replays, camera restarts."""

from canarywatch.markers import Decoder, FrameSpec, Keyring, encode_image, render_frame
from canarywatch.verdicts import Verdict
from canarywatch.viewer.judging import StreamJudge, ViewerStream

T0 = 1_800_000_000.0
STREAM = ViewerStream("int", "probe", "acme-7", 0, "snapshot", "good")


def frame(keyring: Keyring, seq: int, t: float, tenant: str = "acme-7", camera: int = 0) -> bytes:
    return encode_image(render_frame(FrameSpec(tenant, camera, seq, t, 320, 180), keyring.key(tenant)))


def test_verdicts_per_frame(keyring: Keyring, decoder: Decoder) -> None:
    judge = StreamJudge(decoder, STREAM, max_age=10)
    assert judge.judge(frame(keyring, 1, T0), received_at=T0 + 1).verdict is Verdict.OK
    other = judge.judge(frame(keyring, 1, T0, tenant="bravo-2"), received_at=T0 + 1)
    assert other.verdict is Verdict.CROSS_TENANT and other.observation.tenant == "bravo-2"
    assert judge.judge(frame(keyring, 2, T0, camera=1), received_at=T0 + 1).verdict is Verdict.MISROUTED
    assert judge.judge(frame(keyring, 3, T0), received_at=T0 + 30).verdict is Verdict.STALE
    assert judge.judge(b"", received_at=T0).verdict is Verdict.UNDECODABLE


def test_replayed_frame_is_stale_even_when_young(keyring: Keyring, decoder: Decoder) -> None:
    judge = StreamJudge(decoder, STREAM, max_age=10)
    assert judge.judge(frame(keyring, 10, T0 + 5), received_at=T0 + 5.1).verdict is Verdict.OK
    assert (
        judge.judge(frame(keyring, 10, T0 + 5), received_at=T0 + 5.3).verdict is Verdict.OK
    )  # same frame again
    replay = judge.judge(frame(keyring, 4, T0 + 2), received_at=T0 + 5.5)
    assert replay.verdict is Verdict.STALE and "replayed" in replay.reason


def test_camera_restarting_its_counter_is_not_a_replay(keyring: Keyring, decoder: Decoder) -> None:
    judge = StreamJudge(decoder, STREAM, max_age=10)
    assert judge.judge(frame(keyring, 500, T0), received_at=T0 + 0.1).verdict is Verdict.OK
    assert judge.judge(frame(keyring, 1, T0 + 2), received_at=T0 + 2.1).verdict is Verdict.OK


def test_event_thumbnails_carry_their_own_camera(keyring: Keyring, decoder: Decoder) -> None:
    feed = ViewerStream("int", "probe", "acme-7", None, "thumbnail", "good")
    judge = StreamJudge(decoder, feed, max_age=None)
    assert judge.judge(frame(keyring, 1, T0, camera=1), received_at=T0 + 99, camera=1).verdict is Verdict.OK
    assert (
        judge.judge(frame(keyring, 1, T0, camera=1), received_at=T0 + 99, camera=0).verdict
        is Verdict.MISROUTED
    )


def test_capture_to_verdict_latency_comes_from_the_verified_capture_time(
    keyring: Keyring, decoder: Decoder
) -> None:
    judge = StreamJudge(decoder, STREAM, max_age=10, clock=lambda: T0 + 2.5)
    assert judge.judge(frame(keyring, 1, T0), received_at=T0 + 2).verdict_latency == 2.5
    # a leaked frame's capture time is attested too; an unreadable one has none
    assert judge.judge(frame(keyring, 1, T0 + 1, tenant="bravo-2"), received_at=T0 + 2).verdict_latency == 1.5
    assert judge.judge(b"not a frame", received_at=T0 + 2).verdict_latency is None
