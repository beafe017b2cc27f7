"""ffmpeg as an HTTP progressive-MP4 server (Debian's ffmpeg, ``-listen 1``): it pulls a
live stream over RTMP from nginx-rtmp and serves it as a fragmented MP4
(``frag_keyframe+empty_moov``), as a camera cloud's origin serves ``progressive_mp4``.

ffmpeg's HTTP server takes one client and exits when it leaves, so each listener is a
loop that starts the next ffmpeg (a supervisor's restart), and a camera gets a pool of
listeners behind an nginx ``upstream`` (nginx skips a busy one). Everything binds
127.0.0.1 and is stopped with its process group (the loop and its ffmpeg).
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass, field
from pathlib import Path

from controlplane import free_port
from daemons import Daemon

from streaming import spawn

__all__ = ["Mp4Listeners"]

# What ffmpeg writes live: a moov without samples, then one moof+mdat per keyframe.
MOVFLAGS = "frag_keyframe+empty_moov+default_base_moof"


@dataclass
class Mp4Listeners:
    """``count`` ffmpeg listeners serving ``source`` (an RTMP URL) as live fMP4."""

    workdir: Path
    name: str
    source: str
    count: int = 2
    ports: list[int] = field(default_factory=list)
    daemons: list[Daemon] = field(default_factory=list)

    def argv(self, port: int) -> list[str]:
        ffmpeg = [
            "ffmpeg", "-hide_banner", "-loglevel", "error", "-nostdin",
            "-i", self.source, "-map", "0:v", "-c", "copy",
            "-f", "mp4", "-movflags", MOVFLAGS, "-listen", "1", f"http://127.0.0.1:{port}/live.mp4",
        ]  # fmt: skip
        return ["bash", "-c", f"while :; do {shlex.join(ffmpeg)}; sleep 0.2; done"]

    def upstream(self) -> str:
        """The nginx ``upstream`` block of this pool (named ``name``)."""
        servers = "".join(f"        server 127.0.0.1:{port} max_fails=0;\n" for port in self.ports)
        return f"    upstream {self.name} {{\n{servers}    }}\n"

    def allocate(self) -> Mp4Listeners:
        """Pick the ports (nginx's config names them before anything listens)."""
        self.ports = [free_port() for _ in range(self.count)]
        return self

    def start(self) -> Mp4Listeners:
        if not self.ports:
            self.allocate()
        # Not waited for: a probe connection would be the one client a listener takes.
        for port in self.ports:
            self.daemons.append(spawn(f"mp4-{self.name}-{port}", self.argv(port), self.workdir))
        return self

    def stop(self) -> None:
        for daemon in self.daemons:
            daemon.stop(grace=5)
