"""Network profiles, client hints and the shaper.

Profiles, hints and netem commands are pure. The shaper is exercised over loopback
against a tiny aiohttp server with a fake clock: everything the profile adds (latency,
pacing, stalls, lost requests) is fake time, real I/O adds none, so elapsed times and
measurements are exact and no assertion depends on the machine's speed.
"""

from __future__ import annotations

import random
import shlex
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from faketime import FakeTime
from multidict import CIMultiDict

from canarywatch.viewer.network import (
    EXTREME,
    GOOD,
    MIN_THROUGHPUT_SAMPLE_BYTES,
    POOR,
    STREAM_STALL_UNIT_BYTES,
    NetworkEstimate,
    NetworkProfile,
    ProfileError,
    Shaper,
    client_hints,
    effective_connection_type,
    netem_commands,
)

WHERE = "probe.networkProfiles[2]"

# -- profiles -----------------------------------------------------------------------


@pytest.mark.parametrize(("name", "preset"), [("good", GOOD), ("poor", POOR), ("Extreme", EXTREME)])
def test_presets_by_name(name: str, preset: NetworkProfile) -> None:
    assert NetworkProfile.from_spec(name, where=WHERE) is preset


def test_presets_are_ordered_by_severity() -> None:
    assert not GOOD.shapes_anything
    assert POOR.bandwidth_bps is not None and EXTREME.bandwidth_bps is not None
    assert EXTREME.bandwidth_bps < POOR.bandwidth_bps
    assert EXTREME.latency_s > POOR.latency_s > 0
    assert EXTREME.loss > POOR.loss > 0
    assert EXTREME.stall_probability > POOR.stall_probability > 0


def test_explicit_mapping_with_units() -> None:
    profile = NetworkProfile.from_spec(
        {
            "name": "hub-wifi",
            "bandwidth": "500kbit",
            "latency": "300ms",
            "jitter": 0.15,
            "loss": "2%",
            "stall": {"probability": 0.05, "seconds": "2s"},
            "lossTimeout": "4s",
        },
        where=WHERE,
    )
    assert profile == NetworkProfile(
        name="hub-wifi",
        bandwidth_bps=500_000,
        latency_s=0.3,
        jitter_s=0.15,
        loss=0.02,
        stall_probability=0.05,
        stall_s=2.0,
        loss_timeout_s=4.0,
    )


@pytest.mark.parametrize(
    ("raw", "bps"),
    [
        ("2mbit", 2e6),
        ("1.5Mbit/s", 1.5e6),
        ("64000bit", 64_000),
        (64_000, 64_000),
        ("unlimited", None),
        (None, None),
    ],
)
def test_bandwidth_forms(raw: object, bps: float | None) -> None:
    assert NetworkProfile.from_spec({"bandwidth": raw}, where=WHERE).bandwidth_bps == bps


def test_empty_mapping_is_an_unshaped_custom_profile() -> None:
    profile = NetworkProfile.from_spec({}, where=WHERE)
    assert profile.name == "custom"
    assert not profile.shapes_anything


@pytest.mark.parametrize(
    ("spec", "field", "says"),
    [
        ("lossy", WHERE, "accepted: good, poor, extreme"),
        (42, WHERE, "preset name or a mapping"),
        ({"latency": "fast"}, f"{WHERE}.latency", '"300ms"'),
        ({"latency": -1}, f"{WHERE}.latency", ">= 0"),
        ({"jitter": True}, f"{WHERE}.jitter", "duration"),
        ({"bandwidth": "500kbps"}, f"{WHERE}.bandwidth", "bytes to tc"),
        ({"bandwidth": 0}, f"{WHERE}.bandwidth", "at least 1 bit"),
        ({"loss": 2}, f"{WHERE}.loss", 'write "2%"'),
        ({"loss": "150%"}, f"{WHERE}.loss", "0% and 100%"),
        ({"stall": {"probability": 0.1}}, f"{WHERE}.stall.seconds", "required"),
        (
            {"stall": {"probability": 0.1, "seconds": 1, "every": 3}},
            f"{WHERE}.stall.every",
            "probability, seconds",
        ),
        ({"stall": "often"}, f"{WHERE}.stall", "mapping"),
        ({"lossTimeout": 0}, f"{WHERE}.lossTimeout", "> 0"),
        ({"lateny": "300ms"}, f"{WHERE}.lateny", "accepted: bandwidth, jitter, latency"),
    ],
)
def test_errors_name_the_field_and_what_is_accepted(spec: object, field: str, says: str) -> None:
    with pytest.raises(ProfileError) as caught:
        NetworkProfile.from_spec(spec, where=WHERE)  # type: ignore[arg-type]
    assert caught.value.field == field
    assert str(caught.value).startswith(f"{field}: ")
    assert says in str(caught.value)


def test_profile_error_is_a_value_error() -> None:
    assert issubclass(ProfileError, ValueError)


# -- client hints ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("rtt_s", "downlink_bps", "ect"),
    [
        (None, None, None),
        (0.005, 10e6, "4g"),
        (0.269, 701e3, "4g"),
        (0.270, None, "3g"),
        (0.100, 700e3, "3g"),
        (0.100, 70e3, "2g"),
        (1.400, None, "2g"),
        (None, 50e3, "slow-2g"),
        (2.000, 10e6, "slow-2g"),
    ],
)
def test_effective_type_follows_the_wicg_thresholds(
    rtt_s: float | None, downlink_bps: float | None, ect: str | None
) -> None:
    assert effective_connection_type(rtt_s=rtt_s, downlink_bps=downlink_bps) == ect


def test_hints_are_rounded_and_capped_like_browsers() -> None:
    assert client_hints(NetworkEstimate(rtt_s=0.312, downlink_bps=487_000)) == {
        "ECT": "3g",
        "Downlink": "0.475",
        "RTT": "300",
    }
    assert client_hints(NetworkEstimate(rtt_s=9.0, downlink_bps=80e6)) == {
        "ECT": "slow-2g",
        "Downlink": "10",
        "RTT": "3000",
    }


def test_only_measured_hints_are_sent() -> None:
    assert client_hints(NetworkEstimate()) == {}
    assert client_hints(NetworkEstimate(rtt_s=0.01)) == {"ECT": "4g", "RTT": "0"}


# -- tc netem ---------------------------------------------------------------------------


def test_netem_commands_for_poor_in_a_namespace() -> None:
    lines = [shlex.join(argv) for argv in netem_commands(POOR, interface="veth1", namespace="viewer-a")]
    ns = "ip netns exec viewer-a"
    assert lines == [
        f"{ns} tc qdisc replace dev veth1 root netem delay 300ms 150ms loss 2%",
        f"{ns} ip link add ifb0 type ifb",
        f"{ns} ip link set ifb0 up",
        f"{ns} tc qdisc replace dev veth1 handle ffff: ingress",
        f"{ns} tc filter replace dev veth1 parent ffff: matchall action mirred egress redirect dev ifb0",
        f"{ns} tc qdisc replace dev ifb0 root netem rate 500000bit",
    ]


def test_netem_commands_without_bandwidth_need_no_ifb() -> None:
    profile = NetworkProfile(name="lag", latency_s=0.0125)
    assert netem_commands(profile) == [
        ["tc", "qdisc", "replace", "dev", "eth0", "root", "netem", "delay", "12.5ms"]
    ]
    assert netem_commands(GOOD) == []


@pytest.mark.parametrize("kwargs", [{"interface": "eth0; reboot"}, {"namespace": "a b"}, {"ifb": "x" * 16}])
def test_netem_refuses_names_that_are_not_names(kwargs: dict[str, str]) -> None:
    with pytest.raises(ValueError):
        netem_commands(POOR, **kwargs)


# -- the shaper over loopback --------------------------------------------------------------


@dataclass
class Origin:
    """A loopback server with a fixed body; records what it was asked."""

    server: TestServer
    seen: list[CIMultiDict[str]] = field(default_factory=list)

    def url(self, path: str = "/body") -> str:
        return str(self.server.make_url(path))


@pytest.fixture
async def origin() -> AsyncIterator[Origin]:
    state: list[CIMultiDict[str]] = []

    async def body(request: web.Request) -> web.Response:
        state.append(CIMultiDict(request.headers))
        size = int(request.query.get("size", "20000"))
        return web.Response(body=b"x" * size, content_type="application/octet-stream")

    async def stream(request: web.Request) -> web.StreamResponse:
        state.append(CIMultiDict(request.headers))
        response = web.StreamResponse()
        await response.prepare(request)
        for _ in range(int(request.query.get("chunks", "3"))):
            await response.write(b"y" * int(request.query.get("size", "10000")))
        await response.write_eof()
        return response

    app = web.Application()
    app.router.add_get("/body", body)
    app.router.add_get("/stream", stream)
    async with TestServer(app) as server:
        yield Origin(server, state)


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as client:
        yield client


def shaper_for(profile: NetworkProfile, fake: FakeTime, seed: int = 7) -> Shaper:
    return Shaper(profile, rng=random.Random(seed), clock=fake.clock, sleep=fake.sleep)


async def test_bandwidth_paces_the_body_and_is_measured(
    origin: Origin, session: aiohttp.ClientSession
) -> None:
    fake = FakeTime()
    shaper = shaper_for(NetworkProfile(name="slow", bandwidth_bps=80_000), fake)
    response = await shaper.request(session, "GET", origin.url(), headers={}, timeout=10)
    assert response.status == 200 and len(response.body) == 20_000
    # 20 000 bytes at 80 kbit/s take two seconds, however the reads were chunked.
    assert response.elapsed == pytest.approx(2.0)
    assert shaper.estimate.downlink_bps == pytest.approx(80_000)
    assert shaper.client_hints()["Downlink"] == "0.075"


async def test_latency_varies_within_the_jitter_and_becomes_the_rtt(
    origin: Origin, session: aiohttp.ClientSession
) -> None:
    fake = FakeTime()
    shaper = shaper_for(NetworkProfile(name="lag", latency_s=0.3, jitter_s=0.1), fake)
    elapsed = [
        (await shaper.request(session, "GET", origin.url("/body?size=10"), headers={}, timeout=10)).elapsed
        for _ in range(20)
    ]
    assert all(0.2 <= e <= 0.4 for e in elapsed)
    assert len(set(elapsed)) > 1
    assert shaper.estimate.rtt_s == pytest.approx(sum(elapsed) / len(elapsed), abs=0.05)
    # Tiny bodies are no evidence of throughput.
    assert shaper.estimate.downlink_bps is None
    assert set(shaper.client_hints()) == {"ECT", "RTT"}


async def test_first_request_has_no_hints_and_later_ones_carry_the_measurement(
    origin: Origin, session: aiohttp.ClientSession
) -> None:
    fake = FakeTime()
    shaper = shaper_for(NetworkProfile(name="slow", bandwidth_bps=400_000, latency_s=0.5), fake)
    await shaper.request(session, "GET", origin.url(), headers={"Authorization": "Bearer t"}, timeout=10)
    await shaper.request(session, "GET", origin.url(), headers={"Authorization": "Bearer t"}, timeout=10)
    first, second = origin.seen
    assert not {"ECT", "Downlink", "RTT"} & set(first)
    assert second["ECT"] == "3g"
    assert second["Downlink"] == "0.4"
    assert second["RTT"] == "500"
    assert second["Authorization"] == "Bearer t"


async def test_headers_the_caller_set_win_over_measured_hints(
    origin: Origin, session: aiohttp.ClientSession
) -> None:
    fake = FakeTime()
    shaper = shaper_for(NetworkProfile(name="lag", latency_s=0.8), fake)
    for _ in range(2):
        await shaper.request(session, "GET", origin.url(), headers={"ect": "4g"}, timeout=10)
    assert origin.seen[1].getall("ECT") == ["4g"]
    assert origin.seen[1]["RTT"] == "800"


async def test_hints_can_be_switched_off(origin: Origin, session: aiohttp.ClientSession) -> None:
    fake = FakeTime()
    shaper = Shaper(POOR, rng=random.Random(1), clock=fake.clock, sleep=fake.sleep, send_client_hints=False)
    for _ in range(2):
        await shaper.request(session, "GET", origin.url(), headers={}, timeout=30)
    assert shaper.estimate.rtt_s is not None
    assert not {"ECT", "Downlink", "RTT"} & set(origin.seen[-1])


async def test_good_profile_over_loopback_is_4g(origin: Origin, session: aiohttp.ClientSession) -> None:
    shaper = Shaper(GOOD)  # real clock: loopback is what is being measured
    size = MIN_THROUGHPUT_SAMPLE_BYTES * 4
    for _ in range(3):
        await shaper.request(session, "GET", origin.url(f"/body?size={size}"), headers={}, timeout=10)
    assert shaper.client_hints()["ECT"] == "4g"
    assert origin.seen[-1]["ECT"] == "4g"


async def test_a_lost_request_never_reaches_the_server_and_times_out(
    origin: Origin, session: aiohttp.ClientSession
) -> None:
    fake = FakeTime()
    shaper = shaper_for(NetworkProfile(name="lossy", loss=1.0, loss_timeout_s=3.0), fake)
    with pytest.raises(TimeoutError, match="lost"):
        await shaper.request(session, "GET", origin.url(), headers={}, timeout=10)
    assert origin.seen == []
    assert fake.now == pytest.approx(1003.0)


async def test_a_lost_request_waits_for_the_request_timeout_by_default(
    origin: Origin, session: aiohttp.ClientSession
) -> None:
    fake = FakeTime()
    shaper = shaper_for(NetworkProfile(name="lossy", loss=1.0), fake)
    with pytest.raises(TimeoutError):
        await shaper.request(session, "GET", origin.url(), headers={}, timeout=7)
    assert fake.now == pytest.approx(1007.0)


async def test_loss_rate_is_roughly_the_profiles(origin: Origin, session: aiohttp.ClientSession) -> None:
    fake = FakeTime()
    shaper = shaper_for(NetworkProfile(name="lossy", loss=0.25), fake, seed=3)
    lost = 0
    for _ in range(200):
        try:
            await shaper.request(session, "GET", origin.url("/body?size=10"), headers={}, timeout=1)
        except TimeoutError:
            lost += 1
    assert 30 <= lost <= 70
    assert len(origin.seen) == 200 - lost


async def test_a_stall_delays_the_body(origin: Origin, session: aiohttp.ClientSession) -> None:
    fake = FakeTime()
    profile = NetworkProfile(name="stally", bandwidth_bps=160_000, stall_probability=1.0, stall_s=2.0)
    response = await shaper_for(profile, fake).request(session, "GET", origin.url(), headers={}, timeout=10)
    assert response.elapsed == pytest.approx(1.0 + 2.0)  # 20 kB at 160 kbit/s, plus the stall


async def test_a_stall_longer_than_the_timeout_times_out(
    origin: Origin, session: aiohttp.ClientSession
) -> None:
    fake = FakeTime()
    profile = NetworkProfile(name="stally", stall_probability=1.0, stall_s=5.0)
    with pytest.raises(TimeoutError, match="stall"):
        await shaper_for(profile, fake).request(session, "GET", origin.url(), headers={}, timeout=1.5)
    assert fake.now == pytest.approx(1001.5)


async def test_a_body_over_the_cap_is_cut_short_and_flagged(
    origin: Origin, session: aiohttp.ClientSession
) -> None:
    shaper = Shaper(GOOD)
    capped = await shaper.request(
        session, "GET", origin.url("/body?size=100000"), headers={}, timeout=10, max_body_bytes=1000
    )
    assert capped.truncated and capped.body == b""  # nobody decodes a part of a frame: not kept
    exact = await shaper.request(
        session, "GET", origin.url("/body?size=1000"), headers={}, timeout=10, max_body_bytes=1000
    )
    assert not exact.truncated and len(exact.body) == 1000


async def test_stream_paces_chunks_and_stalls_per_unit(
    origin: Origin, session: aiohttp.ClientSession
) -> None:
    fake = FakeTime()
    chunk, chunks = 16_000, 12  # 192 kB: two stall units
    profile = NetworkProfile(
        name="s", bandwidth_bps=1_280_000, stall_probability=1.0, stall_s=0.5, latency_s=0.1
    )
    shaper = shaper_for(profile, fake)
    received = 0
    async with shaper.stream(
        session, "GET", origin.url(f"/stream?chunks={chunks}&size={chunk}"), headers={}, timeout=5
    ) as stream:
        assert stream.status == 200
        async for data in stream:
            received += len(data)
    assert received == chunk * chunks
    stalls = received // STREAM_STALL_UNIT_BYTES
    transfer = received * 8 / 1_280_000
    assert fake.now - 1000.0 == pytest.approx(0.1 + transfer + stalls * 0.5)
    # Streams give RTT samples but no throughput samples (a camera's frame rate is not the link's).
    assert shaper.estimate.rtt_s == pytest.approx(0.1)
    assert shaper.estimate.downlink_bps is None


async def test_stream_stall_beyond_the_idle_timeout_times_out(
    origin: Origin, session: aiohttp.ClientSession
) -> None:
    fake = FakeTime()
    profile = NetworkProfile(name="s", stall_probability=1.0, stall_s=10.0)
    shaper = shaper_for(profile, fake)
    with pytest.raises(TimeoutError):
        async with shaper.stream(
            session,
            "GET",
            origin.url(f"/stream?chunks=4&size={STREAM_STALL_UNIT_BYTES}"),
            headers={},
            timeout=2,
        ) as stream:
            async for _ in stream:
                pass
