"""TLS for the streaming tests: throwaway PKIs (a CA the process trusts through
``SSL_CERT_FILE``, and ones it does not), and a TLS terminator on 127.0.0.1 in front of a
plain server that keeps what its clients sent (the ingest a camera publishes to over
``rtsps``/``rtmps``, or an impostor that would pass it on)."""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from daemons import make_pki

__all__ = ["Terminator", "terminator_process", "throwaway_pkis", "tls_terminator"]


def throwaway_pkis(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Path]:
    """Three throwaway PKIs, each a CA and a server certificate (``server.crt``/``.key``):
    ``trusted`` (for 127.0.0.1), ``other_host`` (for 127.0.0.2 only) whose CAs this
    process trusts (``SSL_CERT_FILE``), and ``untrusted`` (for 127.0.0.1) whose CA it
    does not."""
    pkis = {name: tmp_path / f"pki-{name}" for name in ("trusted", "other_host", "untrusted")}
    for name, directory in pkis.items():
        ip = "127.0.0.2" if name == "other_host" else "127.0.0.1"
        make_pki(
            directory,
            ca_name=f"canarywatch test {name}",
            server_ips=[ip],
            leaves={"server": (f"/CN={name}", "server_ext")},
        )
    bundle = tmp_path / "trusted-cas.pem"
    bundle.write_text("".join((pkis[name] / "ca.crt").read_text() for name in ("trusted", "other_host")))
    monkeypatch.setenv("SSL_CERT_FILE", str(bundle))
    return pkis


@dataclass
class Terminator:
    """A running terminator: its port, and what its clients sent inside TLS."""

    port: int
    #: every byte of application data read from the clients, in order.
    received: bytearray = field(default_factory=bytearray)
    #: a file each chunk is also appended to as it arrives.
    log: Path | None = None

    def keep(self, chunk: bytes) -> None:
        self.received += chunk
        if self.log is not None:
            with self.log.open("ab") as f:
                f.write(chunk)


@contextlib.asynccontextmanager
async def tls_terminator(pki: Path, upstream_port: int, log: Path | None = None) -> AsyncIterator[Terminator]:
    """TLS on 127.0.0.1 with ``pki``'s server certificate, each connection carried in
    plain to 127.0.0.1:``upstream_port`` both ways (what clients sent also appended to
    ``log``); everything is closed on the way out."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(pki / "server.crt", pki / "server.key")
    terminator = Terminator(port=0, log=log)
    tasks: set[asyncio.Task[None]] = set()

    async def pump(source: asyncio.StreamReader, sink: asyncio.StreamWriter, keep: bool) -> None:
        with contextlib.suppress(OSError):
            while chunk := await source.read(65536):
                if keep:
                    terminator.keep(chunk)
                sink.write(chunk)
                await sink.drain()
        sink.close()

    async def carry(client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        # upstream only once the client says something: a client that only checks the
        # certificate must not take a one-shot server's (``ffmpeg -listen 1``) connection
        try:
            first = await client_r.read(65536)
            if not first:
                raise ConnectionResetError("closed before sending anything")
            terminator.keep(first)
            upstream_r, upstream_w = await asyncio.open_connection("127.0.0.1", upstream_port)
        except OSError:
            client_w.close()
            return
        upstream_w.write(first)
        await asyncio.gather(pump(client_r, upstream_w, True), pump(upstream_r, client_w, False))

    def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.create_task(carry(reader, writer))
        tasks.add(task)
        task.add_done_callback(tasks.discard)

    server = await asyncio.start_server(serve, "127.0.0.1", 0, ssl=context)
    terminator.port = int(server.sockets[0].getsockname()[1])
    try:
        yield terminator
    finally:
        server.close()
        for task in list(tasks):
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


@contextlib.contextmanager
def terminator_process(pki: Path, upstream_port: int, received: Path) -> Iterator[int]:
    """``tls_terminator`` in a process of its own (a camera's FFmpeg holds the GIL while
    it opens its output: a terminator in the test's process could not answer); yields
    its port; what its clients sent is appended to ``received``. Killed on the way out."""
    argv = [sys.executable, __file__, str(pki), str(upstream_port), str(received)]
    process = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None
        yield int(process.stdout.readline())
    finally:
        process.kill()
        process.communicate(timeout=10)


def _main() -> None:  # pragma: no cover - runs as its own process
    """``python tls_servers.py PKI_DIR UPSTREAM_PORT RECEIVED``: see ``terminator_process``."""
    pki, upstream, out = Path(sys.argv[1]), int(sys.argv[2]), Path(sys.argv[3])

    async def serve() -> None:
        async with tls_terminator(pki, upstream, out) as terminator:
            print(terminator.port, flush=True)
            await asyncio.Event().wait()

    asyncio.run(serve())


if __name__ == "__main__":
    _main()
