"""What the test control planes (``controlplane``: etcd + API server; ``realnode``: a
whole node) share: the throwaway PKI and the daemon processes they start."""

from __future__ import annotations

import contextlib
import ctypes
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Daemon", "PkiError", "die_with_parent", "make_pki"]

_OPENSSL_CNF = """\
[req]
distinguished_name = dn
prompt = no
[dn]
CN = unused
[ca_ext]
basicConstraints = critical,CA:TRUE
keyUsage = critical,keyCertSign,cRLSign,digitalSignature
subjectKeyIdentifier = hash
[server_ext]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature,keyEncipherment
extendedKeyUsage = serverAuth
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
subjectAltName = {sans},DNS:localhost,DNS:kubernetes,\\
DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local
[client_ext]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature,keyEncipherment
extendedKeyUsage = clientAuth
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
"""


class PkiError(RuntimeError):
    pass


def make_pki(
    directory: Path, *, ca_name: str, server_ips: Iterable[str], leaves: Mapping[str, tuple[str, str]]
) -> None:
    """A CA (EC P-256, valid for 3 days), ``<name>.crt``/``.key`` per leaf (name ->
    (subject, ``server_ext`` | ``client_ext``)) and a service-account key pair
    (``sa.key``/``sa.pub``) in ``directory``. Server certificates are valid for
    ``server_ips`` and the API server's in-cluster names."""
    directory.mkdir(parents=True, exist_ok=True)
    cnf = directory / "openssl.cnf"
    cnf.write_text(_OPENSSL_CNF.format(sans=",".join(f"IP:{ip}" for ip in server_ips)))
    openssl = shutil.which("openssl")
    if openssl is None:
        raise PkiError("the openssl CLI is needed to make the test PKI")

    def run(*args: str) -> None:
        proc = subprocess.run([openssl, *args], cwd=directory, capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            raise PkiError(f"openssl {' '.join(args)} failed:\n{proc.stderr}")

    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    run("req", "-x509", "-config", str(cnf), "-extensions", "ca_ext", *ec, "-keyout", "ca.key",
        "-out", "ca.crt", "-days", "3", "-subj", f"/CN={ca_name}")  # fmt: skip
    for name, (subject, ext) in leaves.items():
        run("req", "-new", "-config", str(cnf), *ec, "-keyout", f"{name}.key", "-out", f"{name}.csr",
            "-subj", subject)  # fmt: skip
        run("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
            "-set_serial", str(secrets.randbits(63)), "-days", "3", "-extfile", str(cnf),
            "-extensions", ext, "-out", f"{name}.crt")  # fmt: skip
    run("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", "sa.key")
    run("pkey", "-in", "sa.key", "-pubout", "-out", "sa.pub")
    for key in directory.glob("*.key"):
        key.chmod(0o600)


def die_with_parent() -> None:  # pragma: no cover - runs in the child
    """Child side of Popen (``preexec_fn``): get SIGKILL when the parent (thread) dies."""
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL, 0, 0, 0)  # PR_SET_PDEATHSIG


@dataclass
class Daemon:
    """One started process (its own session, so its whole group is signalled)."""

    name: str
    popen: subprocess.Popen[bytes]
    log_path: Path

    def alive(self) -> bool:
        return self.popen.poll() is None

    def tail(self, lines: int = 40) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def terminate(self) -> None:
        if self.popen.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.popen.pid, signal.SIGTERM)

    def wait_or_kill(self, deadline: float) -> None:
        """Wait for it to exit until ``deadline`` (monotonic), then SIGKILL the group."""
        try:
            self.popen.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.popen.pid, signal.SIGKILL)
            self.popen.wait(timeout=10)

    def stop(self, grace: float) -> None:
        self.terminate()
        self.wait_or_kill(time.monotonic() + grace)
