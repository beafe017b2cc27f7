"""`canarywatch run` watching RTSP from a real GStreamer RTSP server (Debian's
gir1.2-gst-rtsp-server-1.0, run by ``tests/support/rtsp_server.py``) with per-tenant
users (Basic or Digest) and per-tenant mounts, each re-serving the H.264 RTP an ffmpeg
publisher of a canary camera sends it.

A clean configuration shows each tenant its own camera (``ok``, no incident) with either
authentication; a tenant's publisher fed another tenant's camera is caught as
``cross_tenant`` by that tenant's own RTSP viewer and switched off. The authorization
probe asks for the other tenant's mount with the viewer's own user: refused on a clean
server, caught as ``cross_tenant`` when any user may read, and reported as
``access_granted`` when what it is served cannot be decoded. A viewer on a slow network
gets its RTSP stream through the hub's shaper, at the profile's bandwidth.

Over TLS (``rtsps``, the server given a throwaway PKI): a viewer reads a server whose
certificate it trusts through its relay, which verifies it, and sends nothing to a
server whose certificate does not verify for the URL's host (FFmpeg's own TLS would).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import re
import subprocess
import sys
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from urllib.parse import quote

import aiohttp
import pytest
import yaml
from availability import unavailable
from controlplane import free_port
from tcp_stub import tcp_stub
from tls_servers import throwaway_pkis

from canarywatch.httpclient import client_session
from canarywatch.markers import Decoder, Keyring, Status
from canarywatch.metrics import Metrics
from canarywatch.viewer.http import RenderedRequest
from canarywatch.viewer.judging import StreamJudge, ViewerStream
from canarywatch.viewer.loop import judge_frames
from canarywatch.viewer.network import NetworkProfile, RedirectRefused, ShapedTcpRelay, Shaper
from canarywatch.viewer.transports import ACCESS_GRANTED, AuthzProber, ReceivedFrame, RtspReader
from streaming import Publisher, Rendition, require_binaries, run_monitor, running, spawn, wait_for_port

CLI = [sys.executable, "-m", "canarywatch.cli"]
TENANTS = {"acme": "t-acme", "bravo": "t-bravo"}
SERVER = Path(__file__).parents[1] / "support" / "rtsp_server.py"
SYSTEM_PYTHON = "/usr/bin/python3"

Run = Callable[..., tuple[dict[str, object], list[dict[str, object]]]]


@pytest.fixture(scope="module", autouse=True)
def _servers_installed() -> None:
    require_binaries("ffmpeg")
    check = subprocess.run(
        [SYSTEM_PYTHON, "-c", "import gi; gi.require_version('GstRtspServer', '1.0')"],
        capture_output=True,
        check=False,
        timeout=60,
    )
    if check.returncode != 0:
        unavailable(
            "the GStreamer RTSP server's Python bindings are missing; run hack/install-streaming-servers.sh"
        )


class RtspServer:
    """The GStreamer RTSP server as a thing ``running`` starts and stops."""

    def __init__(self, workdir: Path, config: dict[str, object]) -> None:
        self.workdir, self.config = workdir, config
        self.daemon = None

    def start(self) -> None:
        path = self.workdir / "rtsp.json"
        path.write_text(json.dumps(self.config))
        self.daemon = spawn("rtsp-server", [SYSTEM_PYTHON, str(SERVER), str(path)], self.workdir)
        wait_for_port(int(self.config["port"]), self.daemon)  # type: ignore[call-overload]

    def stop(self) -> None:
        if self.daemon is not None:
            self.daemon.stop(grace=5)


@contextlib.contextmanager
def serving(
    workdir: Path,
    keyring: Keyring,
    *,
    auth: str = "basic",
    fed_by: dict[str, str] | None = None,
    readers: dict[str, list[str]] | None = None,
    launch: dict[str, str] | None = None,
    **options: object,
) -> Iterator[int]:
    """The server with a mount ``/<tenant>/0`` per tenant (read by that tenant, or by
    ``readers``), each fed by a publisher of the tenant's camera 0 (or of ``fed_by``'s),
    or playing its own ``launch`` line; ``options``: more of the server's config
    (``tls``, ``requests_log``); yields the port."""
    port = free_port()
    rtp = {tenant: free_port() for tenant in TENANTS}
    mounts: dict[str, dict[str, object]] = {
        f"/{t}/0": {"rtp_port": rtp[t], "readers": (readers or {}).get(t, [t])} for t in TENANTS
    }
    for tenant, line in (launch or {}).items():
        mounts[f"/{tenant}/0"]["launch"] = line
    server = RtspServer(workdir, {"port": port, "auth": auth, "users": TENANTS, "mounts": mounts, **options})
    publishers = [
        Publisher(
            workdir,
            keyring,
            (fed_by or {}).get(tenant, tenant),
            0,
            [Rendition(f"rtp://127.0.0.1:{rtp[tenant]}", 640, 360, 500, format="rtp")],
            name=f"publish-{tenant}",
        )
        for tenant in TENANTS
        if tenant not in (launch or {})
    ]
    with running(server, *publishers):  # type: ignore[arg-type]
        yield port


@pytest.fixture
def keyring() -> Keyring:
    return Keyring.generate(TENANTS)


@pytest.fixture
def run_rtsp(tmp_path: Path, keyring: Keyring) -> Iterator[Run]:
    keyring_path = tmp_path / "keyring.json"
    keyring_path.write_text(keyring.to_json())

    def run(
        name: str,
        *,
        auth: str = "basic",
        fed_by: dict[str, str] | None = None,
        readers: dict[str, list[str]] | None = None,
        duration: int = 12,
    ) -> tuple[dict[str, object], list[dict[str, object]]]:
        workdir = tmp_path / name
        workdir.mkdir()
        with serving(workdir, keyring, auth=auth, fed_by=fed_by, readers=readers) as port:
            # the token is the whole userinfo, so the probe asks with the viewer's own user
            url = f"rtsp://{{token}}@127.0.0.1:{port}/{{tenant}}/{{camera}}"
            config = {
                "integration": {
                    "name": "gstreamer-rtsp",
                    "camera": {"serve": {"port": 0}},
                    "viewer": {"rtsp": {"url": url}, "authzProbe": {"url": url}},
                    "killSwitch": {"command": {"argv": ["touch", str(workdir / "switched-off")]}},
                },
                "probe": {
                    "keyring": str(keyring_path),
                    "tenants": [{"id": t, "token": f"{t}:{token}"} for t, token in TENANTS.items()],
                    "camerasPerTenant": 1,
                    "fps": 1,
                    "networkProfiles": ["good"],
                    "transports": ["rtsp", "authz"],
                    "freshnessByPath": {"rtsp": 8, "probe": 8},
                },
            }
            (workdir / "monitor.yaml").write_text(yaml.safe_dump(config))
            return run_monitor(workdir / "monitor.yaml", workdir / "out", duration)

    yield run


@pytest.mark.parametrize("auth", ["basic", "digest"])
def test_clean_server_shows_each_tenant_its_own_camera(run_rtsp: Run, auth: str) -> None:
    summary, incidents = run_rtsp(f"clean-{auth}", auth=auth)
    assert incidents == [] and summary["state"] == "Active", summary
    assert summary["by_path"]["rtsp/good"].get("ok", 0) >= 4, summary["by_path"]  # type: ignore[index]
    assert set(summary["verdicts"]) == {"ok"}, summary["verdicts"]  # type: ignore[arg-type]
    # the authorization probe asked for the other tenant's path and was refused: no frame
    assert "probe/good" not in summary["by_path"], summary["by_path"]  # type: ignore[operator]


def test_a_publisher_fed_another_tenants_camera_is_caught(run_rtsp: Run) -> None:
    summary, incidents = run_rtsp("fed-another", auth="digest", fed_by={"bravo": "acme"})
    assert incidents, summary
    first = incidents[0]
    assert first["verdict"] == "cross_tenant" and first["path"] == "rtsp", first
    assert first["viewer_tenant"] == "bravo" and first["observed_tenant"] == "acme", first
    assert summary["state"] == "Suspended", summary


# -- the authorization probe on RTSP ---------------------------------------------------------

#: A stream no viewer can decode: GStreamer's own RTP payload (X-GST), which FFmpeg has
#: no depacketiser for. Served, it is access granted all the same.
UNDECODABLE = (
    "( videotestsrc is-live=true ! video/x-raw,width=64,height=48,framerate=5/1 ! rtpgstpay name=pay0 pt=96 )"
)


def test_a_server_that_lets_any_user_read_is_caught_by_the_authorization_probe(run_rtsp: Run) -> None:
    # the "any authenticated user may read" block left on bravo's mount
    summary, incidents = run_rtsp("any-reader", auth="digest", readers={"bravo": ["acme", "bravo"]})
    probed = [i for i in incidents if i["path"] == "probe"]
    assert probed, (summary, incidents)
    assert probed[0]["verdict"] == "cross_tenant", probed[0]
    assert (probed[0]["viewer_tenant"], probed[0]["observed_tenant"]) == ("acme", "bravo"), probed[0]
    assert summary["state"] == "Suspended", summary


def probe_request(port: int, viewer: str, target: str, *, scheme: str = "rtsp") -> RenderedRequest:
    token = f"{viewer}:{TENANTS[viewer]}"
    url = f"{scheme}://{quote(token, safe='')}@127.0.0.1:{port}/{target}/0"
    return RenderedRequest("GET", url, {}, source=f"/{target}/0", tenant=target, camera="0")


def acme_probing_bravo(session: aiohttp.ClientSession, port: int) -> AuthzProber:
    return AuthzProber(session, [probe_request(port, "acme", "bravo")], interval_s=0.5, timeout_s=10)


async def first_probe_frame(prober: AuthzProber, timeout: float = 60) -> ReceivedFrame:
    async with contextlib.aclosing(prober.frames()) as frames:  # type: ignore[type-var]
        return await asyncio.wait_for(anext(frames), timeout)  # type: ignore[arg-type]


@pytest.mark.parametrize("auth", ["basic", "digest"])
async def test_the_authorization_probe_is_refused_another_tenants_path(
    tmp_path: Path, keyring: Keyring, auth: str
) -> None:
    with serving(tmp_path, keyring, auth=auth) as port:
        async with client_session() as session:
            prober = acme_probing_bravo(session, port)
            task = asyncio.create_task(first_probe_frame(prober))
            try:
                for _ in range(300):
                    if prober.answers:
                        break
                    await asyncio.sleep(0.1)
            finally:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
    # logged in as acme (a failed login would be 401), and GStreamer hides the mount
    # acme may not read: 404
    assert prober.answers == {404: 1} and prober.denied == 1, prober.answers


async def test_access_granted_to_an_undecodable_stream_is_reported_not_counted_undecodable(
    tmp_path: Path, keyring: Keyring
) -> None:
    open_to_all = {"bravo": ["acme", "bravo"]}
    with serving(tmp_path, keyring, readers=open_to_all, launch={"bravo": UNDECODABLE}) as port:
        async with client_session() as session:
            prober = acme_probing_bravo(session, port)
            frame = await first_probe_frame(prober)
    assert frame.status == 200 and not frame.body, frame
    assert frame.meta["problem"] == ACCESS_GRANTED, frame.meta
    assert (frame.meta["target_tenant"], frame.meta["target_camera"]) == ("bravo", "0")
    # through the viewer's loop: an access_granted error, no undecodable frame
    metrics = Metrics()
    stream = ViewerStream("gstreamer-rtsp", "canaries", "acme", None, "probe", "good")

    async def once() -> AsyncIterator[ReceivedFrame]:
        yield frame

    async def ignore(_: object) -> None:
        raise AssertionError("an access_granted answer is not a frame to judge")

    judge = StreamJudge(Decoder(keyring), stream, max_age=8.0)
    await judge_frames(once(), judge, metrics=metrics, handle=ignore)
    labels = {
        "integration": "gstreamer-rtsp",
        "probe": "canaries",
        "tenant": "acme",
        "path": "probe",
        "network_profile": "good",
    }
    assert metrics.sample("canarywatch_viewer_errors_total", {**labels, "kind": ACCESS_GRANTED}) == 1
    assert metrics.sample("canarywatch_frames_total", {**labels, "verdict": "undecodable"}) is None


# -- the network profile on RTSP -------------------------------------------------------------


async def test_an_rtsp_viewer_on_a_slow_network_is_served_at_its_profiles_bandwidth(
    tmp_path: Path, keyring: Keyring
) -> None:
    """The publisher sends 500 kbit/s; a hub on a 250 kbit/s link must get it at 250
    (and late), as it would over a real slow link, not at loopback speed."""
    bandwidth = 250_000.0
    shaper = Shaper(NetworkProfile("slow", bandwidth_bps=bandwidth, latency_s=0.2))
    with serving(tmp_path, keyring, auth="digest") as port:
        async with client_session() as session:
            request = probe_request(port, "acme", "acme")
            reader = RtspReader(session, request, shaper=shaper, timeout_s=20)
            frames = await asyncio.wait_for(reader.first_frames(3), 120)
    decoder = Decoder(keyring)
    assert len(frames) == 3 and {decoder.decode(f.body).tenant for f in frames} == {"acme"}, frames
    link = reader.link
    assert link is not None, "the RTSP connection did not go through the hub's shaper"
    assert link.delivered_bytes > 30_000 and link.delivery_seconds > 0, link.delivered_bytes
    rate = link.delivered_bytes * 8 / link.delivery_seconds
    assert rate <= 1.1 * bandwidth, rate
    assert (shaper.estimate.rtt_s or 0) >= 0.2  # the hub measured its link on this path


# -- rtsps: the relay opens the TLS connection and verifies the server ---------------------------


@pytest.fixture
def pkis(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Path]:
    return throwaway_pkis(tmp_path, monkeypatch)


def tls_options(pki: Path, log: Path) -> dict[str, object]:
    return {
        "tls": {"cert": str(pki / "server.crt"), "key": str(pki / "server.key")},
        "requests_log": str(log),
    }


def requests_seen(log: Path) -> list[dict[str, object]]:
    """The requests the server read (its own log)."""
    return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []


@pytest.mark.parametrize(
    "profile",
    [NetworkProfile("good"), NetworkProfile("slow", bandwidth_bps=2_000_000, latency_s=0.05)],
    ids=lambda p: p.name,
)
async def test_an_rtsps_stream_is_read_through_the_relay_that_verifies_the_server(
    tmp_path: Path, keyring: Keyring, pkis: dict[str, Path], profile: NetworkProfile
) -> None:
    log = tmp_path / "requests.jsonl"
    with serving(tmp_path, keyring, auth="digest", **tls_options(pkis["trusted"], log)) as port:
        async with client_session() as session:
            request = probe_request(port, "acme", "acme", scheme="rtsps")
            reader = RtspReader(session, request, shaper=Shaper(profile), timeout_s=20)
            frames = await asyncio.wait_for(reader.first_frames(3), 120)
    decoder = Decoder(keyring)
    assert len(frames) == 3 and {decoder.decode(f.body).tenant for f in frames} == {"acme"}, frames
    # shaped or not, the TLS connection is the relay's (FFmpeg's own verifies nothing)
    link = reader.link
    assert link is not None and link.delivered_bytes > 10_000, "rtsps did not go through the relay"
    seen = requests_seen(log)
    # the credentials reached the real server, inside the TLS session
    assert any(r["method"] == "PLAY" and r["authorization"] for r in seen), seen


@pytest.mark.parametrize("pki", ["untrusted", "other_host"])
async def test_an_rtsps_server_whose_certificate_does_not_verify_gets_no_request(
    tmp_path: Path, keyring: Keyring, pkis: dict[str, Path], pki: str, caplog: pytest.LogCaptureFixture
) -> None:
    """An impostor (a certificate from a CA the viewer does not trust, or one for
    another host) is refused before the RTSP session starts: it never reads a request,
    so never the viewer's credentials; the viewer counts an error that names why."""
    log = tmp_path / "requests.jsonl"
    caplog.set_level(logging.WARNING, logger="canarywatch.viewer.transports.rtsp")
    with serving(tmp_path, keyring, auth="basic", **tls_options(pkis[pki], log)) as port:
        async with client_session() as session:
            request = probe_request(port, "acme", "acme", scheme="rtsps")
            reader = RtspReader(session, request, timeout_s=10)
            frames = await asyncio.wait_for(reader.first_frames(1), 60)
    assert frames == [], frames
    assert requests_seen(log) == []
    assert reader.errors == 1 and reader.last_error == "SSLCertVerificationError on /acme/0", (
        reader.last_error
    )
    warning = "\n".join(r.getMessage() for r in caplog.records)
    reason = {"untrusted": "unable to get local issuer certificate", "other_host": "IP address mismatch"}[pki]
    assert "certificate did not verify" in warning and "no request was sent" in warning, warning
    assert reason in warning, warning


# -- redirects: credentials never follow one -------------------------------------------------


@contextlib.asynccontextmanager
async def redirecting_server(location: str) -> AsyncIterator[tuple[int, list[bytes]]]:
    """The attacker: an RTSP server on 127.0.0.1 that answers OPTIONS and then redirects
    DESCRIBE to ``location`` (no userinfo: FFmpeg would keep the first URL's
    credentials); yields its port and the request heads it read."""
    heads: list[bytes] = []

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(OSError, asyncio.IncompleteReadError):
            while head := await reader.readuntil(b"\r\n\r\n"):
                heads.append(head)
                cseq = next((line for line in head.split(b"\r\n") if line.lower().startswith(b"cseq:")), b"")
                if head.startswith(b"OPTIONS"):
                    reply = (
                        b"RTSP/1.0 200 OK\r\n" + cseq + b"\r\nPublic: OPTIONS, DESCRIBE, SETUP, PLAY\r\n\r\n"
                    )
                else:
                    reply = (
                        b"RTSP/1.0 302 Found\r\n" + cseq + b"\r\nLocation: " + location.encode() + b"\r\n\r\n"
                    )
                writer.write(reply)
                await writer.drain()
        writer.close()

    async with tcp_stub(answer) as port:
        yield port, heads


@pytest.mark.parametrize(
    "profile",
    # shaped: relayed for its shaping; good: relayed because the URL carries credentials
    [NetworkProfile("lan", latency_s=0.005), NetworkProfile("good")],
    ids=lambda p: p.name,
)
@pytest.mark.parametrize("auth", ["basic", "digest"])
async def test_a_redirect_is_refused_and_the_other_host_gets_no_request(
    tmp_path: Path, keyring: Keyring, auth: str, profile: NetworkProfile, caplog: pytest.LogCaptureFixture
) -> None:
    """A hostile server redirects DESCRIBE to another host (the GStreamer server, which
    acme may read and which logs what it reads). FFmpeg would follow the redirect past
    the relay (and, libavformat 59, log in there with acme's credentials: see the next
    test); the relay closes on the 302
    before FFmpeg reads it, so the other host reads nothing and the viewer counts an
    error that names the redirect (never the URL: it holds the credentials)."""
    log = tmp_path / "requests.jsonl"
    caplog.set_level(logging.DEBUG)
    with serving(tmp_path, keyring, auth=auth, requests_log=str(log)) as port:
        location = f"rtsp://127.0.0.1:{port}/acme/0"
        async with redirecting_server(location) as (hostile, heads), client_session() as session:
            request = probe_request(hostile, "acme", "acme")
            reader = RtspReader(session, request, shaper=Shaper(profile), timeout_s=10)
            frames = await asyncio.wait_for(reader.first_frames(1), 60)
    assert [h.split(b" ", 1)[0] for h in heads] == [b"OPTIONS", b"DESCRIBE"], heads
    assert requests_seen(log) == [], requests_seen(log)
    assert frames == [], frames
    assert reader.errors == 1 and reader.last_error == "RedirectRefused on /acme/0", reader.last_error
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert "redirected (302) to another location: refused, credentials never follow a redirect" in logged
    assert TENANTS["acme"] not in logged, logged


async def test_the_relay_keeps_an_ffmpeg_that_keeps_the_credentials_from_the_redirect(
    tmp_path: Path, keyring: Keyring
) -> None:
    """Debian's ffmpeg (libavformat 59) keeps the first URL's credentials across a
    redirect and logs in to the other host with them (PyAV's newer libavformat may not:
    the relay does not rely on it). Through the relay, the other host reads nothing."""
    log = tmp_path / "requests.jsonl"
    with serving(tmp_path, keyring, auth="basic", requests_log=str(log)) as port:
        async with redirecting_server(f"rtsp://127.0.0.1:{port}/acme/0") as (hostile, heads):
            relay = ShapedTcpRelay(
                Shaper(NetworkProfile("good")), "127.0.0.1", hostile, refuse_redirects=True
            )
            async with relay as (host, relay_port):
                ffmpeg = await asyncio.create_subprocess_exec(
                    *["ffmpeg", "-nostdin", "-v", "error", "-rtsp_transport", "tcp", "-timeout", "5000000"],
                    *["-i", f"rtsp://acme:{TENANTS['acme']}@{host}:{relay_port}/acme/0", "-frames:v", "1"],
                    *["-f", "null", "-"],
                    stdout=asyncio.subprocess.DEVNULL,
                    stderr=asyncio.subprocess.DEVNULL,
                )
                try:
                    await asyncio.wait_for(ffmpeg.wait(), 30)
                finally:
                    if ffmpeg.returncode is None:
                        ffmpeg.kill()
                        await ffmpeg.wait()
    assert [h.split(b" ", 1)[0] for h in heads] == [b"OPTIONS", b"DESCRIBE"], heads
    assert requests_seen(log) == [], requests_seen(log)
    assert ffmpeg.returncode != 0
    assert isinstance(relay.upstream_error, RedirectRefused) and relay.upstream_error.status == 302


# -- a camera strict about Digest: the relay signs again for the Request-URI it forwards ---------


_DIGEST_PARAM = re.compile(r'(\w+)=(?:"([^"]*)"|([^,\s]*))')


def _digest_verdict(method: str, request_uri: str, authorization: str, nonce: str) -> str:
    """What a strict camera makes of a Digest ``Authorization`` (RFC 7616 §3.4.6: the
    ``uri`` must name the Request-URI; the response must verify for acme's password),
    computed here, independently of the relay's code."""
    params = {
        m.group(1).lower(): m.group(2) or m.group(3) or "" for m in _DIGEST_PARAM.finditer(authorization)
    }
    if params.get("uri") != request_uri:
        return "uri is not the Request-URI"

    def h(text: str) -> str:
        return hashlib.md5(text.encode()).hexdigest()

    ha1 = h(f"acme:strict:{TENANTS['acme']}")
    if params.get("algorithm", "MD5").lower() == "md5-sess":
        ha1 = h(f"{ha1}:{nonce}:{params['cnonce']}")
    ha2 = h(f"{method}:{request_uri}")
    qop = params.get("qop")
    middle = f"{params['nc']}:{params['cnonce']}:{qop}:" if qop else ""
    return "ok" if params.get("response") == h(f"{ha1}:{nonce}:{middle}{ha2}") else "wrong response"


@contextlib.asynccontextmanager
async def strict_digest_server(challenge: str) -> AsyncIterator[tuple[int, list[tuple[str, str]]]]:
    """A camera strict about Digest: every request without an ``Authorization`` that
    passes ``_digest_verdict`` is answered 401 with the Digest ``challenge``; DESCRIBE
    with one that passes gets 404 (no stream here: getting past the login is the
    point). Yields its port and (method, verdict) for each request that tried to log in."""
    verdicts: list[tuple[str, str]] = []
    nonce = "0123456789abcdef"

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(OSError, asyncio.IncompleteReadError):
            while head := await reader.readuntil(b"\r\n\r\n"):
                lines = head.decode("latin-1").split("\r\n")
                method, request_uri, _ = lines[0].split(" ", 2)
                headers = {
                    n.strip().lower(): v.strip() for n, _, v in (ln.partition(":") for ln in lines[1:])
                }
                verdict = "no Authorization"
                if headers.get("authorization", "").startswith("Digest "):
                    verdict = _digest_verdict(method, request_uri, headers["authorization"], nonce)
                    verdicts.append((method, verdict))
                cseq = f"CSeq: {headers.get('cseq', '0')}\r\n"
                if verdict != "ok":
                    challenged = f'WWW-Authenticate: Digest realm="strict", nonce="{nonce}"{challenge}'
                    reply = f"RTSP/1.0 401 Unauthorized\r\n{cseq}{challenged}\r\n\r\n"
                elif method == "OPTIONS":
                    reply = f"RTSP/1.0 200 OK\r\n{cseq}Public: OPTIONS, DESCRIBE, SETUP, PLAY\r\n\r\n"
                else:
                    reply = f"RTSP/1.0 404 Not Found\r\n{cseq}\r\n"
                writer.write(reply.encode())
                await writer.drain()
        writer.close()

    async with tcp_stub(answer) as port:
        yield port, verdicts


@pytest.mark.parametrize(
    "challenge", ["", ', qop="auth"', ', qop="auth", algorithm=MD5-sess'], ids=["rfc2069", "auth", "md5-sess"]
)
async def test_a_camera_strict_about_the_digest_uri_accepts_the_relayed_login(challenge: str) -> None:
    """FFmpeg hashes the relay's URL (its loopback port) into its Digest; the relay gives
    the camera its own URL in the request line, so a camera that checks the Digest's
    ``uri`` against the Request-URI (as RFC 7616 says it should) refused every login:
    the relay signs the header again for the camera's URL with the URL's credentials."""
    async with strict_digest_server(challenge) as (port, verdicts), client_session() as session:
        reader = RtspReader(
            session, probe_request(port, "acme", "acme"), shaper=Shaper(NetworkProfile("good")), timeout_s=10
        )
        frames = await asyncio.wait_for(reader.first_frames(1), 60)
    assert reader.link is not None, "not relayed"
    assert verdicts and all(verdict == "ok" for _, verdict in verdicts), verdicts
    assert "DESCRIBE" in [method for method, _ in verdicts], verdicts
    # logged in (a refused login would be 401): the camera has no such stream
    assert [f.status for f in frames] == [404], frames


# -- several relayed readers at once ---------------------------------------------------------


async def test_four_readers_through_relays_at_once_each_get_their_own_frames(
    tmp_path: Path, keyring: Keyring
) -> None:
    """A hub watching several streams: four RTSP readers at once, each through its own
    relay (a shaped link), two on each tenant's mount. Each gets frames that verify as
    its mount's camera (the relays' own ports in the Request-URIs made the server build
    one pipeline per relay, and a mount's second pipeline was never fed: every reader
    timed out opening its stream)."""
    shaper = Shaper(NetworkProfile("lan", latency_s=0.005))
    with serving(tmp_path, keyring, auth="digest") as port:
        async with client_session() as session:
            readers = [
                RtspReader(session, probe_request(port, tenant, tenant), shaper=shaper, timeout_s=20)
                for tenant in ("acme", "bravo", "acme", "bravo")
            ]
            got = await asyncio.wait_for(asyncio.gather(*(r.first_frames(3) for r in readers)), 120)
    decoder = Decoder(keyring)
    for reader, frames in zip(readers, got, strict=True):
        tenant = reader.request.tenant
        assert reader.link is not None, "not relayed"
        assert reader.errors == 0, (tenant, reader.last_error)
        assert len(frames) == 3 and all(f.status == 200 and f.body for f in frames), (tenant, frames)
        seen = [decoder.decode(f.body) for f in frames]
        # A reader that joins the shared live stream in the middle of a keyframe's packets
        # gets that keyframe without its first slices (seen once in ~20 runs): degraded,
        # never another tenant's. Every later frame is whole.
        assert seen[0].tenant == tenant or seen[0].status == Status.DEGRADED, (tenant, seen[0])
        assert [(o.status, o.tenant) for o in seen[1:]] == [(Status.VERIFIED, tenant)] * 2, (tenant, seen)
