"""A real Kubernetes control plane for the cluster and chart test tiers.

Starts ``etcd`` and ``kube-apiserver`` (and, optionally, ``kube-controller-manager``)
built from pinned upstream sources by ``hack/build-tools.sh``, all on 127.0.0.1 and on
free ports, with a throwaway PKI made with the ``openssl`` CLI:

* the API server serves TLS with a certificate for 127.0.0.1/localhost signed by a
  test CA, and authenticates clients by certificate (the admin user is in
  ``system:masters``) and by service-account tokens (TokenRequest works);
* authorization is ``RBAC`` only, so RBAC denials are real;
* admission is the upstream default set (without ``ServiceAccount`` when no controller
  manager runs, as nothing would create the ``default`` ServiceAccount then);
* the controller manager, when started, runs the default controllers (Deployment ->
  ReplicaSet -> Pod objects, garbage collection, namespace deletion, service
  accounts) under its own identity with per-controller service-account credentials.
  There is no scheduler and no kubelet: Pods stay Pending.

Binaries are looked up in ``$CANARYWATCH_TOOLS_DIR/bin`` (default
``<repo>/.cache/tools/bin``).  Every process runs in its own process group, is killed
with its group on :meth:`ControlPlane.stop` (also registered with :mod:`atexit`), and is
sent SIGKILL by the kernel if the Python process dies first (``PR_SET_PDEATHSIG``).
Set ``CANARYWATCH_KEEP_CONTROL_PLANE=1`` to keep the work directory (logs, etcd data,
certificates, kubeconfig) after stopping.

Standard library only, plus the ``kubernetes`` client for :attr:`ControlPlane.api_client`.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from daemons import Daemon, PkiError, die_with_parent, make_pki

REPO_ROOT = Path(__file__).resolve().parents[2]
SERVICE_CLUSTER_IP_RANGE = "10.0.0.0/24"
SERVICE_ACCOUNT_ISSUER = "https://kubernetes.default.svc.cluster.local"
ADMIN_USER = "canarywatch-admin"


class ControlPlaneError(RuntimeError):
    """The control plane could not be started (the message carries the log tails)."""


class ToolsMissingError(ControlPlaneError):
    """A binary is not built yet: run ``make tools`` (``hack/build-tools.sh``)."""


def tools_dir() -> Path:
    """Where ``hack/build-tools.sh`` puts its output (``bin/`` inside)."""
    env = os.environ.get("CANARYWATCH_TOOLS_DIR")
    return Path(env).resolve() if env else REPO_ROOT / ".cache" / "tools"


def find_binary(name: str) -> Path:
    path = tools_dir() / "bin" / name
    if not (path.is_file() and os.access(path, os.X_OK)):
        raise ToolsMissingError(
            f"{path} not found: build the pinned tools with `make tools` "
            f"(hack/build-tools.sh), or point CANARYWATCH_TOOLS_DIR at a built tools dir"
        )
    return path


def tool_version(name: str) -> str | None:
    """The version recorded by ``hack/build-tools.sh`` in ``bin/.NAME.stamp``."""
    stamp = tools_dir() / "bin" / f".{name}.stamp"
    try:
        return stamp.read_text().split()[0]
    except (OSError, IndexError):
        return None


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now (start-up retries cover the race)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


_WORKDIR_PREFIX = "canarywatch-cp-"


def _remove_orphaned_workdirs() -> None:
    """Delete work dirs left by a killed test run (its processes died with it)."""
    for path in Path(tempfile.gettempdir()).glob(f"{_WORKDIR_PREFIX}*"):
        try:
            owner = int((path / "owner.pid").read_text())
            os.kill(owner, 0)
        except ProcessLookupError:
            shutil.rmtree(path, ignore_errors=True)
        except (OSError, ValueError):
            continue  # not ours to judge (no or unreadable pid file, other user)


@dataclass(frozen=True)
class Pki:
    """Files of the throwaway PKI (EC P-256 keys, valid for 3 days)."""

    dir: Path
    ca_cert: Path
    ca_key: Path
    server_cert: Path
    server_key: Path
    admin_cert: Path
    admin_key: Path
    kcm_cert: Path
    kcm_key: Path
    sa_key: Path
    sa_pub: Path

    @classmethod
    def create(cls, directory: Path) -> Pki:
        try:
            make_pki(
                directory,
                ca_name="canarywatch-test-ca",
                server_ips=["127.0.0.1", "10.0.0.1"],
                leaves={
                    "apiserver": ("/CN=kube-apiserver", "server_ext"),
                    "admin": (f"/O=system:masters/CN={ADMIN_USER}", "client_ext"),
                    "kcm": ("/CN=system:kube-controller-manager", "client_ext"),
                },
            )
        except PkiError as e:
            raise ControlPlaneError(str(e)) from e
        d = directory
        return cls(
            dir=d,
            ca_cert=d / "ca.crt",
            ca_key=d / "ca.key",
            server_cert=d / "apiserver.crt",
            server_key=d / "apiserver.key",
            admin_cert=d / "admin.crt",
            admin_key=d / "admin.key",
            kcm_cert=d / "kcm.crt",
            kcm_key=d / "kcm.key",
            sa_key=d / "sa.key",
            sa_pub=d / "sa.pub",
        )


def kubeconfig_dict(
    server: str,
    ca_file: Path,
    *,
    user: str,
    client_cert: Path | None = None,
    client_key: Path | None = None,
    token: str | None = None,
) -> dict[str, Any]:
    creds: dict[str, str] = {}
    if client_cert is not None and client_key is not None:
        creds = {"client-certificate": str(client_cert), "client-key": str(client_key)}
    if token is not None:
        creds["token"] = token
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": "canarywatch-test",
                "cluster": {"server": server, "certificate-authority": str(ca_file)},
            }
        ],
        "users": [{"name": user, "user": creds}],
        "contexts": [{"name": "canarywatch-test", "context": {"cluster": "canarywatch-test", "user": user}}],
        "current-context": "canarywatch-test",
        "preferences": {},
    }


@dataclass
class ControlPlane:
    """etcd + kube-apiserver (+ kube-controller-manager) for one test session.

    Use as a context manager, or call :meth:`start` and :meth:`stop`.
    """

    controller_manager: bool = True
    startup_timeout: float = 120.0
    extra_apiserver_args: Sequence[str] = ()
    keep_workdir: bool = field(
        default_factory=lambda: os.environ.get("CANARYWATCH_KEEP_CONTROL_PLANE", "") not in ("", "0")
    )
    workdir: Path | None = None
    # Filled by start():
    server: str = ""
    kubeconfig: Path = Path()
    pki: Pki | None = None
    etcd_endpoint: str = ""
    timings: dict[str, float] = field(default_factory=dict)
    _processes: list[Daemon] = field(default_factory=list)
    _own_workdir: bool = False
    _api_client: Any = None

    # ---- lifecycle ---------------------------------------------------------------
    def __enter__(self) -> ControlPlane:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self, attempts: int = 3) -> ControlPlane:
        binaries = {"etcd": find_binary("etcd"), "kube-apiserver": find_binary("kube-apiserver")}
        if self.controller_manager:
            binaries["kube-controller-manager"] = find_binary("kube-controller-manager")
        if self.workdir is None:
            _remove_orphaned_workdirs()
            self.workdir = Path(tempfile.mkdtemp(prefix=_WORKDIR_PREFIX))
            (self.workdir / "owner.pid").write_text(str(os.getpid()))
            self._own_workdir = True
        self.workdir.mkdir(parents=True, exist_ok=True)
        atexit.register(self.stop)
        t0 = time.monotonic()
        self.pki = Pki.create(self.workdir / "pki")
        self.timings["pki"] = time.monotonic() - t0
        for attempt in range(1, attempts + 1):
            try:
                self._start_processes(binaries, attempt)
                break
            except ControlPlaneError as err:
                self._stop_processes()
                # A port taken between free_port() and bind() is worth another try.
                if attempt == attempts or "address already in use" not in str(err):
                    self.keep_workdir = True  # the error names its logs; the next start
                    self.stop()  # after this process has exited deletes the dir
                    raise
        self.timings["total"] = time.monotonic() - t0
        return self

    def pids(self) -> dict[str, int]:
        """The process id of each running component, by name (``etcd``, ``kube-apiserver``...)."""
        return {daemon.name: daemon.popen.pid for daemon in self._processes}

    def stop(self) -> None:
        self._stop_processes()
        if self._api_client is not None:
            with contextlib.suppress(Exception):
                self._api_client.close()
            self._api_client = None
        if self.workdir is not None and self._own_workdir:
            if self.keep_workdir:
                print(f"control plane work dir kept: {self.workdir}", file=sys.stderr)
            else:
                shutil.rmtree(self.workdir, ignore_errors=True)
            self._own_workdir = False
        atexit.unregister(self.stop)

    def _stop_processes(self) -> None:
        # Reverse start order: controller manager, API server, then etcd.
        while self._processes:
            self._processes.pop().stop(grace=15.0)

    # ---- clients -----------------------------------------------------------------
    @property
    def api_client(self) -> Any:
        """A ``kubernetes.client.ApiClient`` for the admin user (shared, lazily made)."""
        if self._api_client is None:
            self._api_client = self.new_api_client()
        return self._api_client

    def new_api_client(self, kubeconfig: Path | None = None) -> Any:
        from kubernetes import config

        return config.new_client_from_config(config_file=str(kubeconfig or self.kubeconfig))

    def token_api_client(self, token: str) -> Any:
        """An ``ApiClient`` that authenticates with a bearer token only."""
        from kubernetes import client

        assert self.pki is not None
        cfg = client.Configuration()
        cfg.host = self.server
        cfg.ssl_ca_cert = str(self.pki.ca_cert)
        cfg.api_key = {"authorization": token}
        cfg.api_key_prefix = {"authorization": "Bearer"}
        return client.ApiClient(cfg)

    def write_kubeconfig(self, path: Path, *, user: str, token: str) -> Path:
        """Write a kubeconfig that authenticates with ``token`` (e.g. a ServiceAccount's)."""
        assert self.pki is not None
        doc = kubeconfig_dict(self.server, self.pki.ca_cert, user=user, token=token)
        path.write_text(json.dumps(doc, indent=2))
        path.chmod(0o600)
        return path

    # ---- internals ---------------------------------------------------------------
    def _spawn(self, name: str, argv: list[str]) -> Daemon:
        assert self.workdir is not None
        log_dir = self.workdir / "logs"
        log_dir.mkdir(exist_ok=True)
        log_path = log_dir / f"{name}.log"
        with log_path.open("ab") as log:
            log.write(f"$ {' '.join(argv)}\n".encode())
            log.flush()
            popen = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.workdir,
                start_new_session=True,
                preexec_fn=die_with_parent,  # noqa: PLW1509 - only calls prctl
            )
        proc = Daemon(name, popen, log_path)
        self._processes.append(proc)
        return proc

    def _wait(self, proc: Daemon, what: str, check: Callable[[], bool]) -> None:
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            if not proc.alive():
                raise ControlPlaneError(
                    f"{proc.name} exited with {proc.popen.returncode} before {what}; "
                    f"log {proc.log_path}:\n{proc.tail()}"
                )
            with contextlib.suppress(OSError, ValueError, urllib.error.URLError):
                if check():
                    return
            time.sleep(0.2)
        raise ControlPlaneError(
            f"{proc.name}: no {what} within {self.startup_timeout:.0f}s; log {proc.log_path}:\n{proc.tail()}"
        )

    def _start_processes(self, binaries: dict[str, Path], attempt: int) -> None:
        assert self.workdir is not None and self.pki is not None
        pki = self.pki

        # etcd ---------------------------------------------------------------------
        t = time.monotonic()
        client_port, peer_port = free_port(), free_port()
        self.etcd_endpoint = f"http://127.0.0.1:{client_port}"
        peer = f"http://127.0.0.1:{peer_port}"
        data_dir = self.workdir / f"etcd-data-{attempt}"
        etcd = self._spawn(
            "etcd",
            [
                str(binaries["etcd"]),
                "--name=canarywatch",
                f"--data-dir={data_dir}",
                f"--listen-client-urls={self.etcd_endpoint}",
                f"--advertise-client-urls={self.etcd_endpoint}",
                f"--listen-peer-urls={peer}",
                f"--initial-advertise-peer-urls={peer}",
                f"--initial-cluster=canarywatch={peer}",
                "--initial-cluster-state=new",
                "--unsafe-no-fsync",  # throwaway data: skip fsync, much faster
                "--log-level=warn",
            ],
        )

        def etcd_healthy() -> bool:
            with urllib.request.urlopen(f"{self.etcd_endpoint}/health", timeout=2) as r:
                return bool(json.loads(r.read()).get("health") == "true")

        self._wait(etcd, "healthy /health", etcd_healthy)
        self.timings["etcd"] = time.monotonic() - t

        # kube-apiserver -----------------------------------------------------------
        t = time.monotonic()
        port = free_port()
        self.server = f"https://127.0.0.1:{port}"
        args = [
            str(binaries["kube-apiserver"]),
            f"--etcd-servers={self.etcd_endpoint}",
            "--bind-address=127.0.0.1",
            "--advertise-address=127.0.0.1",
            # A loopback advertise address is refused by the endpoint reconciler that
            # maintains default/kubernetes' Endpoints; nothing in-cluster needs them.
            "--endpoint-reconciler-type=none",
            f"--secure-port={port}",
            f"--cert-dir={self.workdir / 'apiserver-certs'}",
            f"--tls-cert-file={pki.server_cert}",
            f"--tls-private-key-file={pki.server_key}",
            f"--client-ca-file={pki.ca_cert}",
            f"--service-account-issuer={SERVICE_ACCOUNT_ISSUER}",
            f"--service-account-key-file={pki.sa_pub}",
            f"--service-account-signing-key-file={pki.sa_key}",
            f"--service-cluster-ip-range={SERVICE_CLUSTER_IP_RANGE}",
            "--authorization-mode=RBAC",
            "--allow-privileged=true",
            "--profiling=false",
            "--v=1",
        ]
        if not self.controller_manager:
            # Nothing would create the namespaces' `default` ServiceAccount.
            args.append("--disable-admission-plugins=ServiceAccount")
        args.extend(self.extra_apiserver_args)
        apiserver = self._spawn("kube-apiserver", args)
        ctx = ssl.create_default_context(cafile=str(pki.ca_cert))
        ctx.load_cert_chain(str(pki.admin_cert), str(pki.admin_key))

        def apiserver_ready() -> bool:
            with urllib.request.urlopen(f"{self.server}/readyz", timeout=5, context=ctx) as r:
                return bool(r.status == 200)

        self._wait(apiserver, "200 from /readyz", apiserver_ready)
        self.timings["kube-apiserver"] = time.monotonic() - t

        self.kubeconfig = self.workdir / "kubeconfig"
        admin = kubeconfig_dict(
            self.server,
            pki.ca_cert,
            user=ADMIN_USER,
            client_cert=pki.admin_cert,
            client_key=pki.admin_key,
        )
        self.kubeconfig.write_text(json.dumps(admin, indent=2))
        self.kubeconfig.chmod(0o600)

        # kube-controller-manager --------------------------------------------------
        if not self.controller_manager:
            return
        t = time.monotonic()
        kcm_kubeconfig = self.workdir / "kube-controller-manager.kubeconfig"
        kcm_doc = kubeconfig_dict(
            self.server,
            pki.ca_cert,
            user="system:kube-controller-manager",
            client_cert=pki.kcm_cert,
            client_key=pki.kcm_key,
        )
        kcm_kubeconfig.write_text(json.dumps(kcm_doc, indent=2))
        kcm = self._spawn(
            "kube-controller-manager",
            [
                str(binaries["kube-controller-manager"]),
                f"--kubeconfig={kcm_kubeconfig}",
                # No serving port (its /healthz, /metrics): readiness is seen through
                # the API below, and delegated authn would want a front-proxy CA.
                "--secure-port=0",
                "--leader-elect=false",
                "--use-service-account-credentials=true",
                f"--service-account-private-key-file={pki.sa_key}",
                f"--root-ca-file={pki.ca_cert}",
                f"--cluster-signing-cert-file={pki.ca_cert}",
                f"--cluster-signing-key-file={pki.ca_key}",
                f"--service-cluster-ip-range={SERVICE_CLUSTER_IP_RANGE}",
                "--profiling=false",
                "--v=1",
            ],
        )
        # Ready when the serviceaccount controller has made `default` in `default`.
        url = f"{self.server}/api/v1/namespaces/default/serviceaccounts/default"

        def kcm_working() -> bool:
            try:
                with urllib.request.urlopen(url, timeout=5, context=ctx) as r:
                    return bool(r.status == 200)
            except urllib.error.HTTPError as err:
                if err.code == 404:
                    return False
                raise

        self._wait(kcm, "`default` ServiceAccount from its controllers", kcm_working)
        self.timings["kube-controller-manager"] = time.monotonic() - t


@contextlib.contextmanager
def running_control_plane(**kwargs: Any) -> Iterator[ControlPlane]:
    """``with running_control_plane() as cp: ...`` — started, and always stopped."""
    cp = ControlPlane(**kwargs)
    try:
        cp.start()
        yield cp
    finally:
        cp.stop()


def _exit_on_sigterm(signum: int, frame: object) -> None:  # pragma: no cover
    raise SystemExit(128 + signum)


if __name__ == "__main__":  # pragma: no cover - manual use: prints a kubeconfig path
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    with running_control_plane() as plane:
        print(f"kubeconfig: {plane.kubeconfig}")
        print("timings: " + ", ".join(f"{k}={v:.2f}s" for k, v in plane.timings.items()))
        print("Ctrl-C to stop")
        with contextlib.suppress(KeyboardInterrupt):
            signal.pause()
