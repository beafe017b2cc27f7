"""The reduced-scale read is a shortcut, never a different answer.

A JPEG is first decoded at 1/2–1/8 scale (of a baseline JPEG only the rows that hold the
signed message); only a message whose MAC verifies is concluded there. Everything else —
including every non-ok verdict — comes from the full-resolution decode, so the reduced
read can neither attribute differently nor make a damaged canary look foreign.
"""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np
import pytest

from canarywatch.bench.degradations import DEGRADATIONS, Degradation, samples
from canarywatch.markers import Decoder, FrameSpec, Keyring, Status, encode_image, render_frame
from canarywatch.markers import decode as decode_module
from canarywatch.markers import reduced as reduced_module
from canarywatch.markers.images import DCT_SCALE_FLAGS, ImageRejected, Probe, load_gray_top, probe, top_rows
from canarywatch.markers.reduced import reduced_scale
from canarywatch.markers.restarts import mcu_rows

NOW = 1_795_000_000.5
PER_DEGRADATION = 40


@pytest.fixture
def decodes(monkeypatch: pytest.MonkeyPatch) -> list[tuple[int, int]]:
    """(scale, rows) of every decode the decoder performs, in order."""
    calls: list[tuple[int, int]] = []
    real, real_top = decode_module.load_gray, reduced_module.load_gray_top

    def spy(data: bytes, info: Any, *, reduce: int = 1) -> np.ndarray:
        calls.append((reduce, info.height))
        return real(data, info, reduce=reduce)

    def spy_top(data: bytes, info: Any, *, reduce: int) -> np.ndarray | None:
        calls.append((reduce, info.height))
        return real_top(data, info, reduce=reduce)

    monkeypatch.setattr(decode_module, "load_gray", spy)
    monkeypatch.setattr(reduced_module, "load_gray", spy)
    monkeypatch.setattr(reduced_module, "load_gray_top", spy_top)
    return calls


def _canary(keyring: Keyring, tenant: str = "acme-7", w: int = 1280, h: int = 720) -> np.ndarray:
    return render_frame(FrameSpec(tenant, 3, 41, NOW, w, h), keyring.key(tenant))


@pytest.mark.parametrize("degradation", DEGRADATIONS, ids=lambda d: d.name)
def test_reduced_decode_agrees_with_full_decode(keyring: Keyring, degradation: Degradation) -> None:
    with_reduced, full_only = Decoder(keyring), Decoder(keyring, reduced_path=False)
    batch = samples(degradation, keyring, PER_DEGRADATION, seed=sum(map(ord, degradation.name)) + 5)
    for s in batch:
        assert isinstance(s.received, bytes)
        got, reference = with_reduced.decode(s.received), full_only.decode(s.received)
        if got.path == "reduced":
            assert got.status is Status.VERIFIED
            assert (reference.status, reference.tenant, reference.payload) == (
                Status.VERIFIED,
                got.tenant,
                got.payload,
            )
        else:  # fell back: the answer is the full decode's, whatever it is
            assert got == reference


# the top rows down to the last MCU row holding a message module's centre (at 1280x720
# module row 10's centre is block row 52 at 1/8 scale, in MCU row 26: 27 rows of 16 px)
@pytest.mark.parametrize(
    ("w", "h", "scale", "top"),
    [(1920, 1080, 8, 640), (1280, 720, 8, 432), (640, 360, 4, 224), (320, 180, 2, 112)],
)
def test_a_clean_frame_is_judged_on_the_reduced_decode_of_its_top_rows_alone(
    keyring: Keyring, decodes: list[tuple[int, int]], w: int, h: int, scale: int, top: int
) -> None:
    obs = Decoder(keyring).decode(encode_image(_canary(keyring, "bravo-2", w, h)))
    assert (obs.status, obs.tenant, obs.path, obs.confidence) == (Status.VERIFIED, "bravo-2", "reduced", 1.0)
    assert decodes == [(scale, top)]


@pytest.mark.parametrize(
    ("w", "h", "fmt", "scale"),
    [
        (1920, 1080, "jpeg", 8),
        (1280, 720, "jpeg", 8),
        (1279, 720, "jpeg", 4),  # 1/8 would leave modules under 5 px
        (640, 360, "jpeg", 4),
        (320, 180, "jpeg", 2),
        (319, 180, "jpeg", 1),
        (1280, 200, "jpeg", 2),  # the height decides: 1/4 would leave 50 rows for 18 modules
        (1280, 720, "png", 1),  # only libjpeg scales while it decodes
    ],
)
def test_the_scale_is_chosen_from_the_header(w: int, h: int, fmt: str, scale: int) -> None:
    assert reduced_scale(Probe(fmt, w, h)) == scale


def test_a_symbol_error_falls_back_to_full_resolution_and_is_corrected(
    keyring: Keyring, decodes: list[tuple[int, int]]
) -> None:
    frame = _canary(keyring)
    frame[40:120, 40:200] = (100, 40, 40)  # paint over data modules: symbol errors
    obs = Decoder(keyring).decode(encode_image(frame))
    assert decodes == [(8, 432), (1, 720)]
    assert (obs.status, obs.tenant, obs.path) == (Status.VERIFIED, "acme-7", "fast")
    assert obs.confidence < 1.0


def test_a_forged_frame_is_called_forged_only_after_a_full_decode(decodes: list[tuple[int, int]]) -> None:
    stranger = Keyring.generate(["acme-7"])
    obs = Decoder(Keyring.generate(["acme-7", "bravo-2"])).decode(encode_image(_canary(stranger)))
    assert obs.status is Status.FORGED and obs.tenant is None
    assert decodes == [(8, 432), (1, 720)] and obs.path == "fast"


def test_content_is_called_not_a_canary_only_after_a_full_decode(
    keyring: Keyring, decodes: list[tuple[int, int]]
) -> None:
    rng = np.random.default_rng(3)
    noise = cv2.GaussianBlur(rng.integers(0, 256, (720, 1280, 3), dtype=np.uint8), (0, 0), 4)
    obs = Decoder(keyring).decode(encode_image(noise))
    assert obs.status in (Status.NOT_CANARY, Status.DEGRADED, Status.UNDECODABLE)
    assert decodes == [(8, 432), (1, 720)]


def test_png_and_small_jpegs_are_decoded_once_at_full_resolution(
    keyring: Keyring, decodes: list[tuple[int, int]]
) -> None:
    decoder = Decoder(keyring)
    assert decoder.decode(encode_image(_canary(keyring), "png")).status is Status.VERIFIED
    assert decoder.decode(encode_image(_canary(keyring, w=160, h=90))).status is Status.VERIFIED
    assert decodes == [(1, 720), (1, 90)]


# -- the top rows: the frame header claims only the rows that hold the message ----------


@pytest.mark.parametrize(
    ("w", "h", "top"), [(1920, 1080, 160), (1280, 720, 160), (640, 360, 160), (320, 180, 112)]
)
def test_a_camera_jpeg_is_verified_from_the_mcu_rows_it_samples_alone(
    keyring: Keyring, decodes: list[tuple[int, int]], w: int, h: int, top: int
) -> None:
    # a restart marker after every MCU row: only the 10 rows holding a message module's
    # centre are decoded (all 7 at 320x180, where a module is smaller than an MCU row)
    body = encode_image(_canary(keyring, "bravo-2", w, h), restart_rows=True)
    reference = Decoder(keyring, reduced_path=False).decode(body)
    decodes.clear()
    obs = Decoder(keyring).decode(body)
    assert (obs.status, obs.tenant, obs.path) == (Status.VERIFIED, "bravo-2", "reduced")
    assert (obs.payload, obs.width, obs.height) == (reference.payload, w, h)
    assert decodes == [(reduced_scale(probe(body)), top)]


def _gray_jpeg(frame: np.ndarray, *params: int) -> bytes:
    return bytes(cv2.imencode(".jpg", cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY), list(params))[1].tobytes())


def test_the_top_rows_decode_to_the_pixels_of_the_whole_frame(keyring: Keyring) -> None:
    frame = _canary(keyring)
    for body, mcu in (
        (encode_image(frame), 16),  # 4:2:0, no restart markers
        (encode_image(frame, restart_rows=True), 16),
        (encode_image(frame, quality=95), 8),  # OpenCV writes 4:4:4 above q90 (8-px MCU rows)
        (_gray_jpeg(frame), 8),  # one component: not interleaved, a block per MCU
        (_gray_jpeg(frame, cv2.IMWRITE_JPEG_RST_INTERVAL, 7), 8),  # an interval that is not a row
    ):
        cut = top_rows(body, probe(body), 441)
        assert cut is not None
        top, rows = cut
        assert rows == -(-441 // mcu) * mcu
        whole = cv2.imdecode(np.frombuffer(body, np.uint8), cv2.IMREAD_GRAYSCALE)
        for scale in (1, 2, 8):
            gray = load_gray_top(top, Probe("jpeg", 1280, rows), reduce=scale)
            assert gray is not None
            reduced = cv2.imdecode(np.frombuffer(body, np.uint8), DCT_SCALE_FLAGS[scale])
            assert np.array_equal(gray, (whole if scale == 1 else reduced)[: rows // scale])


@pytest.mark.parametrize(
    ("params", "mcu"),
    [
        ([cv2.IMWRITE_JPEG_RST_INTERVAL, 80], 16),  # 4:2:0, a marker per MCU row (a camera's)
        ([cv2.IMWRITE_JPEG_RST_INTERVAL, 40], 16),  # two intervals per row
        (
            [
                cv2.IMWRITE_JPEG_SAMPLING_FACTOR,
                cv2.IMWRITE_JPEG_SAMPLING_FACTOR_444,
                cv2.IMWRITE_JPEG_RST_INTERVAL,
                160,
            ],
            8,
        ),
    ],
)
def test_stacked_mcu_rows_decode_to_the_pixels_of_those_rows_of_the_whole_frame(
    keyring: Keyring, params: list[int], mcu: int
) -> None:
    body = cv2.imencode(".jpg", _canary(keyring), params)[1].tobytes()
    info = probe(body)
    assert (info.mcu_height, info.restart_interval) == (mcu, params[-1])
    rows = (0, 3, 4, 9, 20, 26)
    stacked = mcu_rows(body, info, rows)
    assert stacked is not None
    for scale in (1, 2, 8):
        gray = load_gray_top(stacked, Probe("jpeg", 1280, len(rows) * mcu), reduce=scale)
        whole = cv2.imdecode(np.frombuffer(body, np.uint8), DCT_SCALE_FLAGS[scale])
        step = mcu // scale
        assert gray is not None and gray.shape[0] == len(rows) * step
        expected = np.concatenate([whole[r * step : (r + 1) * step] for r in rows])
        assert np.array_equal(gray, expected)


def test_mcu_rows_are_cut_only_where_restart_intervals_fall_on_row_boundaries(keyring: Keyring) -> None:
    frame = _canary(keyring)
    plain = encode_image(frame)  # no restart markers
    uneven = cv2.imencode(".jpg", frame, [cv2.IMWRITE_JPEG_RST_INTERVAL, 7])[1].tobytes()
    tiny = cv2.imencode(".jpg", frame, [cv2.IMWRITE_JPEG_RST_INTERVAL, 1])[1].tobytes()  # 80 per row
    camera = encode_image(frame, restart_rows=True)
    for body in (plain, uneven, tiny):
        assert mcu_rows(body, probe(body), (1, 2)) is None
    assert mcu_rows(camera, probe(camera), (44,)) is None  # the last row ends the scan: not cut
    assert mcu_rows(camera, probe(camera), (1, 2)) is not None


@pytest.mark.parametrize("damage", ["drop-marker", "renumber-marker", "truncate-scan"])
def test_a_camera_jpeg_with_broken_restart_markers_is_a_verdict_never_a_wrong_one(
    keyring: Keyring, damage: str
) -> None:
    body = bytearray(encode_image(_canary(keyring, "bravo-2"), restart_rows=True))
    markers = [i for i in range(len(body) - 1) if body[i] == 0xFF and 0xD0 <= body[i + 1] <= 0xD7]
    if damage == "drop-marker":
        del body[markers[5] : markers[5] + 2]
    elif damage == "renumber-marker":
        body[markers[5] + 1] = 0xD0 + (body[markers[5] + 1] + 3 - 0xD0) % 8
    else:
        body = body[: markers[8]] + b"\xff\xd9"
    obs = Decoder(keyring).decode(bytes(body))
    reference = Decoder(keyring, reduced_path=False).decode(bytes(body))
    assert obs.status in (Status.VERIFIED, Status.DEGRADED, Status.UNDECODABLE)
    if obs.status is Status.VERIFIED:
        assert obs.tenant == "bravo-2" and obs.payload == reference.payload
    else:
        assert obs == reference


def test_a_letterboxed_frame_is_verified_inside_its_bars_at_reduced_scale(
    keyring: Keyring, decodes: list[tuple[int, int]]
) -> None:
    # not 16:9, so not an untouched canary: the whole frame at 1/4, the bars trimmed
    canvas = np.zeros((480, 640, 3), np.uint8)
    canvas[60:420] = _canary(keyring, "bravo-2", 640, 360)
    obs = Decoder(keyring).decode(encode_image(canvas, quality=70))
    assert (obs.status, obs.tenant, obs.path) == (Status.VERIFIED, "bravo-2", "reduced")
    assert decodes == [(4, 480)]
    # a 4:3 photograph is not concluded there: decoded again at full resolution
    decodes.clear()
    rng = np.random.default_rng(5)
    photo = cv2.GaussianBlur(rng.integers(0, 256, (480, 640, 3), dtype=np.uint8), (0, 0), 3)
    assert Decoder(keyring).decode(encode_image(photo)).status is not Status.VERIFIED
    assert decodes == [(4, 480), (1, 480)]


def test_progressive_jpegs_are_decoded_whole_at_reduced_scale(
    keyring: Keyring, decodes: list[tuple[int, int]]
) -> None:
    frame = _canary(keyring)
    progressive = cv2.imencode(".jpg", frame, [cv2.IMWRITE_JPEG_PROGRESSIVE, 1])[1].tobytes()
    assert top_rows(progressive, probe(progressive), 440) is None
    obs = Decoder(keyring).decode(progressive)
    assert (obs.status, obs.tenant, obs.path) == (Status.VERIFIED, "acme-7", "reduced")
    assert decodes == [(8, 720)]
    whole = encode_image(frame)
    assert top_rows(whole, probe(whole), 720) is None  # nothing to save


def test_a_remembered_header_is_used_only_for_frames_that_start_with_its_bytes(keyring: Keyring) -> None:
    # a stream's header is walked once; any byte of it that differs is a different header
    body = encode_image(_canary(keyring), restart_rows=True)
    info = probe(body)
    cut = top_rows(body, info, 441)
    assert cut is not None
    sof = info.frame_header
    dri = body.find(b"\xff\xdd")
    other_interval = body[: dri + 4] + bytes((0, 7)) + body[dri + 6 :]
    for _ in range(2):  # the second time from the remembered headers
        assert (probe(body).height, probe(body).restart_interval) == (720, 80)
        assert probe(cut[0]).height == cut[1]
        assert probe(other_interval).restart_interval == 7
        assert probe(body[: sof + 11] + bytes((0x11,)) + body[sof + 12 :]).mcu_height == 8  # luma 1x1
        with pytest.raises(ImageRejected, match="no end-of-image"):
            probe(body[:-2])  # same header, truncated: still rejected


def test_a_single_scan_frame_costs_one_scan_whatever_follows_it(keyring: Keyring) -> None:
    # libjpeg decodes no second scan of a frame whose first scan holds every component:
    # such a frame is not counted against the scan budget, and repeats of its scan are
    # neither decoded nor able to change what was
    body = encode_image(_canary(keyring))
    sos = body.find(b"\xff\xda")
    repeated = body[:sos] + body[sos:-2] * 100 + b"\xff\xd9"  # over the 64-scan budget
    assert probe(repeated).scans == 1 and probe(repeated).mcu_height == 16
    obs = Decoder(keyring).decode(repeated)
    assert (obs.status, obs.tenant) == (Status.VERIFIED, "acme-7")
    progressive = cv2.imencode(".jpg", _canary(keyring), [cv2.IMWRITE_JPEG_PROGRESSIVE, 1])[1].tobytes()
    assert probe(progressive).scans > 1 and probe(progressive).mcu_height == 0


def test_a_header_with_zero_sampling_factors_is_a_verdict_not_a_crash(keyring: Keyring) -> None:
    body = bytearray(encode_image(_canary(keyring), restart_rows=True))
    sof = body.find(b"\xff\xc0")
    for component in range(3):  # vertical sampling factor 0 for every component
        body[sof + 11 + 3 * component] &= 0xF0
    assert top_rows(bytes(body), probe(bytes(body)), 440) is None
    assert Decoder(keyring).decode(bytes(body)).status is Status.UNDECODABLE


def test_a_damaged_top_falls_back_to_the_whole_frame(
    keyring: Keyring, decodes: list[tuple[int, int]]
) -> None:
    frame = _canary(keyring)
    frame[40:120, 40:200] = (100, 40, 40)  # symbol errors in the message's rows
    obs = Decoder(keyring).decode(encode_image(frame, restart_rows=True))
    assert (obs.status, obs.tenant, obs.path) == (Status.VERIFIED, "acme-7", "fast")
    assert decodes == [(8, 160), (1, 720)]  # the 10 sampled MCU rows, then the whole frame


def test_a_corrupt_byte_in_the_top_rows_falls_back_and_still_verifies(
    keyring: Keyring, decodes: list[tuple[int, int]]
) -> None:
    body = bytearray(encode_image(_canary(keyring), restart_rows=True))
    # zeros amid the fourth MCU row's entropy-coded data (between the restart markers that
    # end rows three and four, a row the reduced read samples): libjpeg loses the rest of
    # the row, across message modules
    start = body.find(b"\xff\xd2")
    middle = (start + body.find(b"\xff\xd3", start)) // 2
    body[middle : middle + 8] = bytes(8)
    obs = Decoder(keyring).decode(bytes(body))
    assert decodes[0] == (8, 160) and len(decodes) == 2  # the sampled rows' read did not verify
    assert (obs.status, obs.tenant, obs.path) == (Status.VERIFIED, "acme-7", "fast")


def test_a_forged_camera_jpeg_is_called_forged_only_after_a_full_decode(
    decodes: list[tuple[int, int]],
) -> None:
    stranger = Keyring.generate(["acme-7"])
    obs = Decoder(Keyring.generate(["acme-7"])).decode(encode_image(_canary(stranger), restart_rows=True))
    assert obs.status is Status.FORGED and obs.path == "fast"
    assert decodes == [(8, 160), (1, 720)]


def test_camera_jpegs_at_any_quality_agree_with_full_decode(keyring: Keyring) -> None:
    rng = np.random.default_rng(13)
    with_reduced, full_only = Decoder(keyring), Decoder(keyring, reduced_path=False)
    tenants = list(keyring)
    for _ in range(40):
        w, h = [(1280, 720), (640, 360), (320, 180)][int(rng.integers(0, 3))]
        tenant = tenants[int(rng.integers(0, len(tenants)))]
        spec = FrameSpec(tenant, int(rng.integers(0, 65536)), int(rng.integers(0, 2**32)), NOW, w, h)
        body = encode_image(
            render_frame(spec, keyring.key(tenant)), quality=int(rng.integers(10, 96)), restart_rows=True
        )
        got, reference = with_reduced.decode(body), full_only.decode(body)
        assert reference.status is Status.VERIFIED
        if got.path == "reduced":
            assert (got.tenant, got.payload) == (reference.tenant, reference.payload)
        else:
            assert got == reference
