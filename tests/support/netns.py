"""A server in a network namespace of the test's own, reached over a veth pair.

For servers that cannot be told where to listen (Pion's ``whip-whep`` example binds :8080
on every interface and asks a public STUN server): ``unshare --net`` gives the process a
namespace holding only its loopback and one end of a veth pair, ``10.<a>.<b>.2/30``; the
host end is ``10.<a>.<b>.1/30``. Nothing outside the test's own host can reach it, and
its STUN requests go nowhere.

The namespace has no name (it is not under /run/netns, so no sweep of named namespaces
touches it, and it touches no one else's): it lives exactly as long as the process, and
when the process dies the kernel removes the namespace and both ends of the veth.
``stop()`` kills the process group and deletes the host end too, in case.
"""

from __future__ import annotations

import os
import random
import shutil
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from availability import unavailable
from daemons import Daemon

__all__ = ["NamespacedServer", "require_netns"]


def require_netns() -> None:
    """Namespaces and veths need root and iproute2/util-linux."""
    missing = [tool for tool in ("unshare", "nsenter", "ip") if shutil.which(tool) is None]
    if missing:
        unavailable(f"{', '.join(missing)} not installed (util-linux, iproute2)")
    if os.geteuid() != 0:
        unavailable("network namespaces and veth pairs need root")


def _run(*argv: str) -> None:
    result = subprocess.run(argv, capture_output=True, text=True, check=False, timeout=30)
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed: {result.stderr.strip()}")


@dataclass
class NamespacedServer:
    """``argv`` run in a fresh network namespace (cwd ``workdir``, log ``<name>.log``)."""

    workdir: Path
    name: str
    argv: Sequence[str]
    #: 10.<a>.<b>.0/30, random so that concurrent tests do not share a subnet.
    subnet: tuple[int, int] = field(
        default_factory=lambda: (random.randint(200, 250), random.randint(0, 63) * 4)
    )
    daemon: Daemon | None = None
    veth: str = ""

    @property
    def address(self) -> str:
        """The server's address, inside its namespace."""
        a, b = self.subnet
        return f"10.{a}.{b}.2"

    @property
    def host_address(self) -> str:
        a, b = self.subnet
        return f"10.{a}.{b}.1"

    def start(self) -> NamespacedServer:
        from streaming import spawn

        self.daemon = spawn(self.name, ["unshare", "--net", "--", *self.argv], self.workdir)
        pid = self.daemon.popen.pid
        self.veth = f"cw{pid % 10_000_000}"
        inside = ["nsenter", f"--net=/proc/{pid}/ns/net", "--"]
        try:
            self._wait_for_own_namespace(pid)
            inner = f"{self.veth}n"
            _run("ip", "link", "add", self.veth, "type", "veth", "peer", "name", inner, "netns", str(pid))
            _run("ip", "addr", "add", f"{self.host_address}/30", "dev", self.veth)
            _run("ip", "link", "set", self.veth, "up")
            _run(*inside, "ip", "link", "set", "lo", "up")
            _run(*inside, "ip", "addr", "add", f"{self.address}/30", "dev", inner)
            _run(*inside, "ip", "link", "set", inner, "up")
        except BaseException:
            self.stop()
            raise
        return self

    def _wait_for_own_namespace(self, pid: int) -> None:
        # `unshare` calls unshare(2) and then execs: a veth moved to the pid before that
        # would land in the host's namespace.
        host = os.stat("/proc/self/ns/net").st_ino
        deadline = time.monotonic() + 10
        while os.stat(f"/proc/{pid}/ns/net").st_ino == host:
            if time.monotonic() > deadline or self.daemon is None or not self.daemon.alive():
                raise RuntimeError(
                    f"{self.name} did not enter a network namespace of its own:\n{self.tail()}"
                )
            time.sleep(0.01)

    def stop(self) -> None:
        if self.daemon is not None:
            self.daemon.stop(grace=5)
        if self.veth:
            # gone with the namespace already, normally
            subprocess.run(["ip", "link", "del", self.veth], capture_output=True, check=False, timeout=30)

    def tail(self) -> str:
        return self.daemon.tail() if self.daemon is not None else ""
