"""Real streaming servers (from Debian: nginx + its RTMP module, ffmpeg) and canary
publishers for the streaming tier (tests/streaming) and the video benchmark.

Everything binds 127.0.0.1 on free ports, lives in the test's own directory, runs in its
own process group and dies with the test (``die_with_parent``; ``stop()`` in ``finally``).

A ``Publisher`` renders a canary camera's frames with the product's own codec
(``markers.render``), live (each frame carries the time it was rendered), and pipes them
to ffmpeg, which encodes H.264 and publishes them (RTMP to nginx, or any output ffmpeg
writes) — as a real camera or a vendor's encoder would.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from availability import unavailable
from controlplane import free_port
from daemons import Daemon, die_with_parent

from canarywatch.markers import Keyring
from canarywatch.markers.render import FrameRenderer, FrameSpec

__all__ = [
    "NGINX_RTMP_MODULE",
    "NginxServer",
    "Publisher",
    "Rendition",
    "require_binaries",
    "require_nginx_rtmp",
    "run_monitor",
    "running",
    "spawn",
    "wait_for_port",
]

NGINX_RTMP_MODULE = Path("/usr/lib/nginx/modules/ngx_rtmp_module.so")
_INSTALL_HINT = "run hack/install-streaming-servers.sh (make test does)"


def require_binaries(*names: str) -> None:
    missing = [name for name in names if shutil.which(name) is None]
    if missing:
        unavailable(f"{', '.join(missing)} not installed; {_INSTALL_HINT}")


def require_nginx_rtmp() -> None:
    require_binaries("nginx", "ffmpeg")
    if not NGINX_RTMP_MODULE.exists():
        unavailable(f"{NGINX_RTMP_MODULE} missing (libnginx-mod-rtmp); {_INSTALL_HINT}")


def wait_for_port(port: int, daemon: Daemon, *, timeout: float = 15.0, host: str = "127.0.0.1") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not daemon.alive():
            raise RuntimeError(f"{daemon.name} exited:\n{daemon.tail()}")
        with socket.socket() as s:
            s.settimeout(1.0)
            if s.connect_ex((host, port)) == 0:
                return
        time.sleep(0.05)
    raise RuntimeError(f"{daemon.name} did not listen on {host}:{port}:\n{daemon.tail()}")


def spawn(name: str, argv: Sequence[str], workdir: Path, **popen: object) -> Daemon:
    log_path = workdir / f"{name}.log"
    with log_path.open("ab") as log:
        process = subprocess.Popen(
            list(argv),
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=workdir,
            start_new_session=True,
            preexec_fn=die_with_parent,  # noqa: PLW1509 - only calls prctl
            **popen,  # type: ignore[call-overload]
        )
    return Daemon(name, process, log_path)


@dataclass
class NginxServer:
    """nginx with the RTMP module, configured by the test: ``rtmp_port`` takes
    publishers (application ``live``), ``http_port`` serves what the config says.

    ``http_server`` is the body of the ``server {}`` block on ``http_port``;
    ``{hls}`` in it (and in ``rtmp_application``) is the HLS folder."""

    workdir: Path
    http_server: str
    rtmp_application: str = ""
    #: directives of the ``http {}`` block (``map``s the server uses).
    http_block: str = ""
    #: let players on 127.0.0.1 pull the live streams over RTMP (an ffmpeg repackaging
    #: them, as a relay's origin does); nobody else may.
    loopback_play: bool = False
    rtmp_port: int = field(default_factory=free_port)
    http_port: int = field(default_factory=free_port)
    daemon: Daemon | None = None

    @property
    def hls_dir(self) -> Path:
        return self.workdir / "hls"

    def config(self) -> str:
        hls = str(self.hls_dir)
        # Started as root, nginx's workers would drop to an unprivileged user that cannot
        # enter the test's private temp directory: keep them as the test's own user.
        user = "user root root;" if os.geteuid() == 0 else ""
        return f"""
load_module {NGINX_RTMP_MODULE};
{user}
worker_processes 1;
pid {self.workdir}/nginx.pid;
error_log {self.workdir}/error.log info;
events {{ worker_connections 256; }}
rtmp {{
    server {{
        listen 127.0.0.1:{self.rtmp_port};
        chunk_size 4096;
        application live {{
            live on;
            allow publish 127.0.0.1;
            deny publish all;
            {"allow play 127.0.0.1;" if self.loopback_play else ""}
            deny play all;
            hls on;
            hls_path {hls};
            hls_nested on;
            hls_fragment 1s;
            hls_playlist_length 4s;
            hls_cleanup on;
            {self.rtmp_application.replace("{hls}", hls)}
        }}
    }}
}}
http {{
    access_log {self.workdir}/access.log;
    client_body_temp_path {self.workdir}/tmp/body;
    proxy_temp_path {self.workdir}/tmp/proxy;
    fastcgi_temp_path {self.workdir}/tmp/fastcgi;
    uwsgi_temp_path {self.workdir}/tmp/uwsgi;
    scgi_temp_path {self.workdir}/tmp/scgi;
    types {{
        application/vnd.apple.mpegurl m3u8;
        video/mp2t ts;
        video/mp4 mp4 m4s;
    }}
    {self.http_block}
    server {{
        listen 127.0.0.1:{self.http_port};
        {self.http_server.replace("{hls}", hls)}
    }}
}}
"""

    def start(self) -> NginxServer:
        (self.workdir / "tmp").mkdir(parents=True, exist_ok=True)
        self.hls_dir.mkdir(parents=True, exist_ok=True)
        conf = self.workdir / "nginx.conf"
        conf.write_text(self.config())
        argv = ["nginx", "-p", str(self.workdir), "-c", str(conf), "-g", "daemon off;"]
        check = subprocess.run([*argv[:-2], "-t"], capture_output=True, text=True, check=False, timeout=30)
        if check.returncode != 0:
            raise RuntimeError(f"nginx refused the test's config:\n{check.stderr}")
        self.daemon = spawn("nginx", argv, self.workdir)
        wait_for_port(self.http_port, self.daemon)
        wait_for_port(self.rtmp_port, self.daemon)
        return self

    def stop(self) -> None:
        if self.daemon is not None:
            self.daemon.stop(grace=5)

    def rtmp_url(self, stream: str) -> str:
        return f"rtmp://127.0.0.1:{self.rtmp_port}/live/{stream}"

    def http_url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.http_port}{path}"


@dataclass(frozen=True)
class Rendition:
    """One output of a publisher: where, at what size and bitrate."""

    url: str
    width: int = 640
    height: int = 360
    bitrate_kbps: int = 600
    #: ffmpeg's output format (``flv`` for RTMP, ``rtsp``, ``mp4``...).
    format: str = "flv"


@dataclass
class Publisher:
    """Renders ``tenant``'s camera ``camera`` live and publishes it as H.264 to every
    rendition (one encoder per rendition, one input): GOP ``gop_s`` seconds."""

    workdir: Path
    keyring: Keyring
    tenant: str
    camera: int
    renditions: Sequence[Rendition]
    fps: float = 10.0
    gop_s: float = 1.0
    width: int = 640
    height: int = 360
    name: str = ""
    frames: int = 0
    daemon: Daemon | None = None
    _thread: threading.Thread | None = None
    _stop: threading.Event = field(default_factory=threading.Event)

    def argv(self) -> list[str]:
        gop = max(1, round(self.fps * self.gop_s))
        argv = [
            "ffmpeg", "-hide_banner", "-loglevel", "warning", "-nostdin",
            "-f", "rawvideo", "-pix_fmt", "bgr24", "-s", f"{self.width}x{self.height}",
            "-r", f"{self.fps:g}", "-i", "pipe:0",
        ]  # fmt: skip
        for r in self.renditions:
            argv += [
                "-map", "0:v", "-vf", f"scale={r.width}:{r.height}",
                "-c:v", "libx264", "-preset", "ultrafast", "-tune", "zerolatency",
                "-pix_fmt", "yuv420p", "-g", str(gop), "-keyint_min", str(gop), "-sc_threshold", "0",
                "-b:v", f"{r.bitrate_kbps}k", "-maxrate", f"{r.bitrate_kbps}k",
                "-bufsize", f"{r.bitrate_kbps}k", "-f", r.format, r.url,
            ]  # fmt: skip
        return argv

    def start(self) -> Publisher:
        name = self.name or f"publish-{self.tenant}-{self.camera}"
        self.daemon = spawn(name, self.argv(), self.workdir, stdin=subprocess.PIPE)
        self._thread = threading.Thread(target=self._feed, name=name, daemon=True)
        self._thread.start()
        return self

    def _feed(self) -> None:
        assert self.daemon is not None and self.daemon.popen.stdin is not None
        renderer = FrameRenderer(self.tenant, self.camera, self.width, self.height)
        key = self.keyring.key(self.tenant)
        pipe = self.daemon.popen.stdin
        period = 1.0 / self.fps
        next_at = time.monotonic()
        with contextlib.suppress(BrokenPipeError, ValueError, OSError):
            while not self._stop.is_set():
                spec = FrameSpec(
                    self.tenant, self.camera, self.frames + 1, time.time(), self.width, self.height
                )
                pipe.write(renderer.render(spec, key).tobytes())
                pipe.flush()
                self.frames += 1
                next_at += period
                self._stop.wait(max(0.0, next_at - time.monotonic()))

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        if self.daemon is not None:
            with contextlib.suppress(OSError, ValueError):
                assert self.daemon.popen.stdin is not None
                self.daemon.popen.stdin.close()
            self.daemon.stop(grace=5)


@contextlib.contextmanager
def running(*things: NginxServer | Publisher) -> Iterator[None]:
    """Start each in order, stop all in reverse, whatever happens."""
    started: list[NginxServer | Publisher] = []
    try:
        for thing in things:
            started.append(thing)
            thing.start()
        yield
    finally:
        for thing in reversed(started):
            thing.stop()


def run_monitor(config: Path, out: Path, duration: int) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """``canarywatch run --config CONFIG`` for ``duration`` seconds, as a user runs it:
    its summary and incident records."""
    result = subprocess.run(
        [sys.executable, "-m", "canarywatch.cli", "run", "--config", str(config),
         "--duration", str(duration), "--out", str(out)],
        capture_output=True, text=True, timeout=duration + 60, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    summary: dict[str, Any] = json.loads((out / "summary.json").read_text())
    incidents_file = out / "incidents.jsonl"
    lines = incidents_file.read_text().splitlines() if incidents_file.exists() else []
    return summary, [json.loads(line) for line in lines]
