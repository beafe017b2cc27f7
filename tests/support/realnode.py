"""A single-node Kubernetes that runs pods, for the realcluster tier.

Everything runs inside namespaces the tests own (``hack/realnode-ns.sh``): one network
namespace holds the node address (10.231.0.1), every listening socket, the pods' bridge
and veths, the Services' iptables rules; one private mount namespace holds kubelet's
volume mounts and containerd's sandbox mounts.  Nothing listens on the host's
addresses, and :meth:`RealNode.stop` (or, after a killed run, the next start's sweep)
leaves no namespace, mount, cgroup, process or iptables rule behind.

The components, all pinned and built by ``hack/build-tools.sh node`` except the Debian
ones (``hack/install-node-packages.sh``):

* etcd, kube-apiserver (RBAC + Node authorization), kube-controller-manager,
  kube-scheduler;
* containerd (Debian, its own root/state/socket under the work dir) + runc, with the
  Debian CNI plugins (``bridge`` + ``host-local``);
* kubelet (cgroupfs driver, cgroup root ``/<id>``), kube-proxy (iptables mode);
* CoreDNS as the cluster DNS on the node address; kube-router's NetworkPolicy firewall
  when it has been built;
* a pause image packed here from the static ``pause`` binary, imported with ``ctr``.

The test process talks to the API server through sockets opened inside the network
namespace (:meth:`RealNode.api_client`, :meth:`RealNode.in_netns`); ``kubectl`` and
``helm`` run under ``nsenter --net`` (:meth:`RealNode.kubectl`, :meth:`RealNode.helm`).

Run it by hand: ``python tests/support/realnode.py`` (as root) prints how to reach it.
Set ``CANARYWATCH_KEEP_REALNODE=1`` to keep the work dir (logs) after stopping.
"""

from __future__ import annotations

import atexit
import concurrent.futures
import contextlib
import ctypes
import gzip
import hashlib
import io
import json
import os
import secrets
import shutil
import signal
import ssl
import subprocess
import sys
import tarfile
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from controlplane import REPO_ROOT, ToolsMissingError, find_binary, kubeconfig_dict, tool_version
from daemons import Daemon, PkiError, die_with_parent, make_pki

__all__ = [
    "NODE_IP",
    "NODE_NAME",
    "PAUSE_IMAGE",
    "NodeError",
    "RealNode",
    "missing_prerequisites",
]

T = TypeVar("T")

NODE_IP = "10.231.0.1"  # on the bridge `cwnode` in the node's network namespace
POD_SUBNET = "10.232.0.0/24"
SERVICE_SUBNET = "10.233.0.0/24"
KUBERNETES_SERVICE_IP = "10.233.0.1"
NODE_NAME = "canarywatch-node"
APISERVER_PORT = 6443
KUBERNETES_VERSION = "v1.37.2"
PAUSE_IMAGE = f"canarywatch.local/pause:{KUBERNETES_VERSION}"
NS_SCRIPT = REPO_ROOT / "hack" / "realnode-ns.sh"
CNI_BIN_DIR = Path("/usr/lib/cni")
NODE_BINARIES = (
    "etcd",
    "kube-apiserver",
    "kube-controller-manager",
    "kube-scheduler",
    "kubelet",
    "kube-proxy",
    "kubectl",
    "helm",
    "coredns",
    "pause",
)
HOST_COMMANDS = ("containerd", "containerd-shim-runc-v2", "runc", "ctr", "iptables", "nsenter", "openssl")
_CLONE_NEWNET = 0x40000000


class NodeError(RuntimeError):
    """The node could not be started (the message names the log to read)."""


def missing_prerequisites() -> list[str]:
    """What is missing to run the node, each with the command that provides it."""
    missing: list[str] = []
    if os.geteuid() != 0:
        missing.append("root (namespaces, mounts, cgroups)")
    for name in NODE_BINARIES:
        try:
            find_binary(name)
        except ToolsMissingError:
            missing.append(f"{name} (make tools-node, i.e. hack/build-tools.sh node)")
    for cmd in HOST_COMMANDS:
        if shutil.which(cmd) is None:
            missing.append(f"{cmd} (make node-packages, i.e. hack/install-node-packages.sh)")
    if not (CNI_BIN_DIR / "bridge").exists():
        missing.append(f"{CNI_BIN_DIR}/bridge (make node-packages)")
    return missing


# ---- the network namespace, from this process ---------------------------------------
class Netns:
    """Runs calls on threads that joined a network namespace, so the sockets they open
    live there (a socket stays in the namespace it was made in, whoever uses it)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._pool = concurrent.futures.ThreadPoolExecutor(
            max_workers=4, thread_name_prefix="netns", initializer=self._join
        )

    def _join(self) -> None:
        libc = ctypes.CDLL(None, use_errno=True)
        fd = os.open(self.path, os.O_RDONLY)
        try:
            if libc.setns(fd, _CLONE_NEWNET) != 0:
                err = ctypes.get_errno()
                raise OSError(err, f"setns({self.path}): {os.strerror(err)}")
        finally:
            os.close(fd)

    def call(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        return self._pool.submit(fn, *args, **kwargs).result()

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)


def _netns_pool_classes(netns: Netns) -> dict[str, type]:
    """urllib3 pool classes whose connections open their sockets inside ``netns``."""
    import urllib3
    from urllib3.connection import HTTPConnection, HTTPSConnection

    class NetnsHTTPConnection(HTTPConnection):
        def _new_conn(self) -> Any:
            return netns.call(super()._new_conn)

    class NetnsHTTPSConnection(HTTPSConnection):
        def _new_conn(self) -> Any:
            return netns.call(super()._new_conn)

    class NetnsHTTPPool(urllib3.HTTPConnectionPool):
        ConnectionCls = NetnsHTTPConnection

    class NetnsHTTPSPool(urllib3.HTTPSConnectionPool):
        ConnectionCls = NetnsHTTPSConnection

    return {"http": NetnsHTTPPool, "https": NetnsHTTPSPool}


# ---- PKI ------------------------------------------------------------------------------
# name -> (subject, extension); every client gets a kubeconfig of the same name.
_LEAVES = {
    "apiserver": ("/CN=kube-apiserver", "server_ext"),
    "admin": ("/O=system:masters/CN=canarywatch-admin", "client_ext"),
    "apiserver-kubelet-client": ("/O=system:masters/CN=kube-apiserver-kubelet-client", "client_ext"),
    "kube-controller-manager": ("/CN=system:kube-controller-manager", "client_ext"),
    "kube-scheduler": ("/CN=system:kube-scheduler", "client_ext"),
    "kube-proxy": ("/CN=system:kube-proxy", "client_ext"),
    "kubelet": (f"/O=system:nodes/CN=system:node:{NODE_NAME}", "client_ext"),
    # CoreDNS and kube-router read cluster-wide; their own RBAC is not under test here.
    "coredns": ("/O=system:masters/CN=canarywatch-coredns", "client_ext"),
    "kube-router": ("/O=system:masters/CN=canarywatch-kube-router", "client_ext"),
}


def _make_pki(directory: Path) -> None:
    try:
        make_pki(
            directory,
            ca_name="canarywatch-realnode-ca",
            server_ips=[NODE_IP, KUBERNETES_SERVICE_IP, "127.0.0.1"],
            leaves=_LEAVES,
        )
    except PkiError as e:
        raise NodeError(str(e)) from e


# ---- the pause image ------------------------------------------------------------------
def _blob(blobs: dict[str, bytes], data: bytes) -> dict[str, Any]:
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    blobs[digest] = data
    return {"digest": digest, "size": len(data)}


def write_single_binary_image(binary: Path, reference: str, out: Path) -> Path:
    """An OCI image archive holding one static binary as its entrypoint (``/pause``)."""
    layer_tar = io.BytesIO()
    with tarfile.open(fileobj=layer_tar, mode="w", format=tarfile.PAX_FORMAT) as tar:
        info = tar.gettarinfo(str(binary), arcname=binary.name)
        info.uid = info.gid = 0
        info.uname = info.gname = ""
        info.mtime = 0
        info.mode = 0o755
        with binary.open("rb") as f:
            tar.addfile(info, f)
    layer = layer_tar.getvalue()
    blobs: dict[str, bytes] = {}
    layer_desc = _blob(blobs, gzip.compress(layer, mtime=0))
    config = {
        "architecture": "amd64",
        "os": "linux",
        "config": {"Entrypoint": [f"/{binary.name}"], "User": "65535:65535"},
        "rootfs": {"type": "layers", "diff_ids": ["sha256:" + hashlib.sha256(layer).hexdigest()]},
    }
    config_desc = _blob(blobs, json.dumps(config, sort_keys=True).encode())
    manifest = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", **config_desc},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", **layer_desc}],
    }
    manifest_desc = _blob(blobs, json.dumps(manifest, sort_keys=True).encode())
    index = {
        "schemaVersion": 2,
        "manifests": [
            {
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                **manifest_desc,
                "annotations": {
                    "io.containerd.image.name": reference,
                    "org.opencontainers.image.ref.name": reference.rsplit(":", 1)[1],
                },
            }
        ],
    }
    files = {
        "oci-layout": json.dumps({"imageLayoutVersion": "1.0.0"}).encode(),
        "index.json": json.dumps(index).encode(),
    }
    files.update({f"blobs/sha256/{d.split(':', 1)[1]}": data for d, data in blobs.items()})
    with tarfile.open(out, "w") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return out


# ---- processes ------------------------------------------------------------------------
@dataclass
class RealNode:
    """One node: start with :meth:`start` (or as a context manager), stop with :meth:`stop`."""

    startup_timeout: float = 180.0
    keep_workdir: bool = field(
        default_factory=lambda: os.environ.get("CANARYWATCH_KEEP_REALNODE", "") not in ("", "0")
    )
    id: str = field(default_factory=lambda: f"cwrc-{secrets.token_hex(4)}")
    workdir: Path = Path()
    kubeconfig: Path = Path()
    timings: dict[str, float] = field(default_factory=dict)
    network_policies: bool = False  # kube-router's firewall runs
    _daemons: list[Daemon] = field(default_factory=list)
    _netns: Netns | None = None
    _api_client: Any = None
    _started: bool = False

    # ---- lifecycle ------------------------------------------------------------------
    def __enter__(self) -> RealNode:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def netns_path(self) -> Path:
        return Path("/run/netns") / self.id

    @property
    def mntns_path(self) -> Path:
        return Path("/run/canarywatch-realnode") / self.id / "mnt"

    @property
    def containerd_socket(self) -> Path:
        return self.workdir / "containerd" / "containerd.sock"

    def start(self) -> RealNode:
        missing = missing_prerequisites()
        if missing:
            raise ToolsMissingError("the realcluster node needs: " + "; ".join(missing))
        t0 = time.monotonic()
        self._ns("sweep")
        self.workdir = Path(tempfile.mkdtemp(prefix="canarywatch-realnode-", dir="/tmp"))
        self.workdir.chmod(0o755)  # pods' volume paths live below it
        atexit.register(self.stop)
        self._started = True
        try:
            self._ns("create", self.id, str(self.workdir))
            (self.mntns_path.parent / "owner.pid").write_text(f"{os.getpid()}\n")
            self._netns = Netns(self.netns_path)
            _make_pki(self.workdir / "pki")
            self._write_kubeconfigs()
            self.timings["namespaces+pki"] = time.monotonic() - t0
            self._start_control_plane()
            self._start_runtime()
            self._start_node_agents()
        except BaseException:
            self.keep_workdir = True
            print(self.describe_failure(), file=sys.stderr)
            self.stop()
            raise
        self.timings["total"] = time.monotonic() - t0
        return self

    def stop(self) -> None:
        if not self._started:
            return
        self._started = False
        atexit.unregister(self.stop)
        if self._api_client is not None:
            with contextlib.suppress(Exception):
                self._api_client.close()
            self._api_client = None
        # All at once (what is left of the pods is killed by realnode-ns.sh destroy).
        for daemon in self._daemons:
            daemon.terminate()
        deadline = time.monotonic() + 10.0
        for daemon in self._daemons:
            daemon.wait_or_kill(deadline)
        self._daemons.clear()
        if self._netns is not None:
            self._netns.close()
            self._netns = None
        if self.keep_workdir:
            kept = self.workdir.with_name(self.workdir.name.replace("realnode-", "realnode-kept-"))
            with contextlib.suppress(OSError):
                shutil.copytree(self.workdir / "logs", kept / "logs")
            print(f"realnode logs kept: {kept / 'logs'}", file=sys.stderr)
        self._ns("destroy", self.id)

    # ---- clients --------------------------------------------------------------------
    def in_netns(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """``fn(*args, **kwargs)`` on a thread inside the node's network namespace."""
        assert self._netns is not None, "node not started"
        return self._netns.call(fn, *args, **kwargs)

    @property
    def api_client(self) -> Any:
        """A ``kubernetes.client.ApiClient`` (admin) whose sockets open in the node."""
        if self._api_client is None:
            from kubernetes import config

            assert self._netns is not None, "node not started"
            client = config.new_client_from_config(config_file=str(self.kubeconfig))
            client.rest_client.pool_manager.pool_classes_by_scheme = _netns_pool_classes(self._netns)
            self._api_client = client
        return self._api_client

    def run(
        self, argv: Sequence[str], *, timeout: float = 120.0, check: bool = True, **kw: Any
    ) -> subprocess.CompletedProcess[str]:
        """Run a client (``kubectl``, ``helm``, ``curl``...) in the node's network namespace."""
        helm_home = self.workdir / "helm"  # no Helm state in $HOME
        env = {
            **os.environ,
            "KUBECONFIG": str(self.kubeconfig),
            # kubectl's discovery cache is keyed by host:port, the same every run
            "KUBECACHEDIR": str(self.workdir / "kubectl-cache"),
            "HELM_CACHE_HOME": str(helm_home / "cache"),
            "HELM_CONFIG_HOME": str(helm_home / "config"),
            "HELM_DATA_HOME": str(helm_home / "data"),
        }
        proc = subprocess.run(
            ["nsenter", f"--net={self.netns_path}", "--", *argv],
            capture_output=True, text=True, timeout=timeout, env=env, check=False, **kw,
        )  # fmt: skip
        if check and proc.returncode != 0:
            raise NodeError(f"{' '.join(argv)} exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}")
        return proc

    def kubectl(
        self, *args: str, timeout: float = 120.0, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        return self.run([str(find_binary("kubectl")), *args], timeout=timeout, check=check)

    def helm(
        self, *args: str, timeout: float = 300.0, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        return self.run([str(find_binary("helm")), *args], timeout=timeout, check=check)

    def ctr(self, *args: str, timeout: float = 600.0) -> subprocess.CompletedProcess[str]:
        """``ctr`` against the node's containerd, in its ``k8s.io`` namespace (kubelet's)."""
        proc = subprocess.run(
            ["ctr", f"--address={self.containerd_socket}", "--namespace=k8s.io", *args],
            capture_output=True, text=True, timeout=timeout, check=False,
        )  # fmt: skip
        if proc.returncode != 0:
            raise NodeError(f"ctr {' '.join(args)} exited {proc.returncode}:\n{proc.stderr}")
        return proc

    def import_image(self, archive: Path) -> None:
        """Import an OCI/docker image archive; pods then use it with IfNotPresent/Never."""
        self.ctr("images", "import", "--no-unpack=false", str(archive))

    def describe_failure(self, namespace: str | None = None) -> str:
        """Pods, events and the logs of everything not Ready: what a failed test prints."""
        parts = [f"==== realnode {self.id} work dir {self.workdir}"]
        for daemon in self._daemons:
            state = "running" if daemon.alive() else f"exited {daemon.popen.returncode}"
            parts.append(f"---- {daemon.name} ({state}), last lines of {daemon.log_path}:\n{daemon.tail(15)}")
        if not self._started or self._netns is None:
            return "\n".join(parts)
        scope = ["-n", namespace] if namespace else ["-A"]
        for args in (["get", "nodes", "-o", "wide"], ["get", "pods", *scope, "-o", "wide"],
                     ["get", "events", *scope, "--sort-by=.lastTimestamp"]):  # fmt: skip
            with contextlib.suppress(Exception):
                out = self.kubectl(*args, timeout=30, check=False)
                parts.append(f"---- kubectl {' '.join(args)}\n{out.stdout}{out.stderr}")
        with contextlib.suppress(Exception):
            pods = json.loads(self.kubectl("get", "pods", *scope, "-o", "json", timeout=30).stdout)["items"]
            for pod in pods:
                meta = pod["metadata"]
                for cs in pod.get("status", {}).get("containerStatuses", []) or []:
                    logs = self.kubectl("logs", "-n", meta["namespace"], meta["name"], "-c", cs["name"],
                                        "--tail=40", timeout=30, check=False)  # fmt: skip
                    parts.append(f"---- logs {meta['namespace']}/{meta['name']}/{cs['name']} "
                                 f"(ready={cs.get('ready')}, restarts={cs.get('restartCount')}):\n"
                                 f"{logs.stdout}{logs.stderr}")  # fmt: skip
        return "\n".join(parts)

    # ---- internals ------------------------------------------------------------------
    def _ns(self, *args: str) -> None:
        proc = subprocess.run(["bash", str(NS_SCRIPT), *args], capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            raise NodeError(f"hack/realnode-ns.sh {' '.join(args)} failed:\n{proc.stderr}")

    def _write_kubeconfigs(self) -> None:
        pki = self.workdir / "pki"
        server = f"https://{NODE_IP}:{APISERVER_PORT}"
        for name in _LEAVES:
            if name in ("apiserver", "apiserver-kubelet-client"):
                continue
            doc = kubeconfig_dict(server, pki / "ca.crt", user=name, client_cert=pki / f"{name}.crt",
                                  client_key=pki / f"{name}.key")  # fmt: skip
            path = self.workdir / f"{name}.kubeconfig"
            path.write_text(json.dumps(doc, indent=2))
            path.chmod(0o600)
        self.kubeconfig = self.workdir / "admin.kubeconfig"

    def _spawn(self, name: str, argv: list[str]) -> Daemon:
        log_dir = self.workdir / "logs"
        log_dir.mkdir(exist_ok=True)
        log_path = log_dir / f"{name}.log"
        full = ["nsenter", f"--net={self.netns_path}", f"--mount={self.mntns_path}", "--", *argv]
        with log_path.open("ab") as log:
            log.write(f"$ {' '.join(argv)}\n".encode())
            log.flush()
            popen = subprocess.Popen(
                full, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, cwd=self.workdir,
                start_new_session=True, preexec_fn=die_with_parent,  # noqa: PLW1509 - only prctl
            )  # fmt: skip
        daemon = Daemon(name, popen, log_path)
        self._daemons.append(daemon)
        return daemon

    def _wait(
        self, daemon: Daemon, what: str, check: Callable[[], bool], timeout: float | None = None
    ) -> None:
        t = time.monotonic()
        deadline = t + (timeout or self.startup_timeout)
        while time.monotonic() < deadline:
            if not daemon.alive():
                raise NodeError(f"{daemon.name} exited with {daemon.popen.returncode} before {what}; "
                                f"log {daemon.log_path}:\n{daemon.tail()}")  # fmt: skip
            with contextlib.suppress(OSError, ValueError, urllib.error.URLError, NodeError):
                if check():
                    self.timings[daemon.name] = time.monotonic() - t
                    return
            time.sleep(0.25)
        raise NodeError(f"{daemon.name}: no {what} within {timeout or self.startup_timeout:.0f}s; "
                        f"log {daemon.log_path}:\n{daemon.tail()}")  # fmt: skip

    def _https_ok(self, url: str, *, client: str = "admin") -> bool:
        pki = self.workdir / "pki"
        ctx = ssl.create_default_context(cafile=str(pki / "ca.crt"))
        ctx.load_cert_chain(str(pki / f"{client}.crt"), str(pki / f"{client}.key"))

        def get() -> bool:
            with urllib.request.urlopen(url, timeout=5, context=ctx) as r:
                return bool(r.status == 200)

        return self.in_netns(get)

    def _http_ok(self, url: str) -> bool:
        def get() -> bool:
            with urllib.request.urlopen(url, timeout=5) as r:
                return bool(r.status == 200)

        return self.in_netns(get)

    def _start_control_plane(self) -> None:
        w, pki = self.workdir, self.workdir / "pki"
        etcd = self._spawn("etcd", [
            str(find_binary("etcd")), "--name=realnode", f"--data-dir={w / 'etcd'}",
            "--listen-client-urls=http://127.0.0.1:2379", "--advertise-client-urls=http://127.0.0.1:2379",
            "--listen-peer-urls=http://127.0.0.1:2380", "--initial-advertise-peer-urls=http://127.0.0.1:2380",
            "--initial-cluster=realnode=http://127.0.0.1:2380", "--unsafe-no-fsync", "--log-level=warn",
        ])  # fmt: skip
        self._wait(etcd, "healthy /health", lambda: self._http_ok("http://127.0.0.1:2379/health"))
        apiserver = self._spawn("kube-apiserver", [
            str(find_binary("kube-apiserver")), "--etcd-servers=http://127.0.0.1:2379",
            f"--advertise-address={NODE_IP}", f"--secure-port={APISERVER_PORT}",
            f"--cert-dir={w / 'apiserver-certs'}",
            f"--tls-cert-file={pki / 'apiserver.crt'}", f"--tls-private-key-file={pki / 'apiserver.key'}",
            f"--client-ca-file={pki / 'ca.crt'}",
            f"--kubelet-client-certificate={pki / 'apiserver-kubelet-client.crt'}",
            f"--kubelet-client-key={pki / 'apiserver-kubelet-client.key'}",
            # kubectl logs/exec: the node's name resolves nowhere; its InternalIP does.
            "--kubelet-preferred-address-types=InternalIP,Hostname",
            "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
            f"--service-account-key-file={pki / 'sa.pub'}",
            f"--service-account-signing-key-file={pki / 'sa.key'}",
            f"--service-cluster-ip-range={SERVICE_SUBNET}",
            "--authorization-mode=Node,RBAC", "--enable-admission-plugins=NodeRestriction",
            "--allow-privileged=true", "--profiling=false", "--v=1",
        ])  # fmt: skip
        self._wait(
            apiserver,
            "200 from /readyz",
            lambda: self._https_ok(f"https://{NODE_IP}:{APISERVER_PORT}/readyz"),
        )
        kcm = self._spawn("kube-controller-manager", [
            str(find_binary("kube-controller-manager")),
            f"--kubeconfig={w / 'kube-controller-manager.kubeconfig'}",
            "--secure-port=0", "--leader-elect=false", "--use-service-account-credentials=true",
            f"--service-account-private-key-file={pki / 'sa.key'}", f"--root-ca-file={pki / 'ca.crt'}",
            f"--cluster-signing-cert-file={pki / 'ca.crt'}", f"--cluster-signing-key-file={pki / 'ca.key'}",
            f"--service-cluster-ip-range={SERVICE_SUBNET}", "--profiling=false", "--v=1",
        ])  # fmt: skip
        sa = f"https://{NODE_IP}:{APISERVER_PORT}/api/v1/namespaces/default/serviceaccounts/default"
        self._wait(kcm, "the `default` ServiceAccount", lambda: self._https_ok(sa))
        self._spawn("kube-scheduler", [
            str(find_binary("kube-scheduler")), f"--kubeconfig={w / 'kube-scheduler.kubeconfig'}",
            f"--authentication-kubeconfig={w / 'kube-scheduler.kubeconfig'}",
            f"--authorization-kubeconfig={w / 'kube-scheduler.kubeconfig'}",
            "--leader-elect=false", "--bind-address=127.0.0.1", "--v=1",
        ])  # fmt: skip

    def _start_runtime(self) -> None:
        w = self.workdir
        (w / "cni" / "net.d").mkdir(parents=True)
        conflist = {
            "cniVersion": "0.4.0",
            "name": "canarywatch",
            "plugins": [
                {
                    "type": "bridge",
                    "bridge": "cwpods0",
                    "isGateway": True,
                    "ipMasq": False,
                    "hairpinMode": True,
                    "ipam": {
                        "type": "host-local",
                        "ranges": [[{"subnet": POD_SUBNET}]],
                        "routes": [{"dst": "0.0.0.0/0"}],
                        "dataDir": str(w / "cni" / "ipam"),
                    },
                },
                {"type": "portmap", "capabilities": {"portMappings": True}},
            ],
        }
        (w / "cni" / "net.d" / "10-canarywatch.conflist").write_text(json.dumps(conflist, indent=2))
        cd = w / "containerd"
        cd.mkdir()
        (cd / "config.toml").write_text(f"""\
version = 2
root = "{cd / 'root'}"
state = "{cd / 'state'}"
disabled_plugins = ["io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs",
  "io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.devmapper"]
[grpc]
  address = "{self.containerd_socket}"
[ttrpc]
  address = "{self.containerd_socket}.ttrpc"
[plugins."io.containerd.internal.v1.opt"]
  path = "{cd / 'opt'}"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "{PAUSE_IMAGE}"
  # root here lacks CAP_SYS_RESOURCE: lowering oom_score_adj fails in runc without this
  restrict_oom_score_adj = true
  # sandbox netns files under state (in the node's mount namespace), not /run/netns
  netns_mounts_under_state_dir = true
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  enable_selinux = false
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "{CNI_BIN_DIR}"
    conf_dir = "{w / 'cni' / 'net.d'}"
""")  # fmt: skip
        containerd = self._spawn("containerd", ["containerd", f"--config={cd / 'config.toml'}"])

        def serving() -> bool:
            return self.containerd_socket.exists() and subprocess.run(
                ["ctr", f"--address={self.containerd_socket}", "version"],
                capture_output=True, check=False, timeout=10,
            ).returncode == 0  # fmt: skip

        self._wait(containerd, "its socket", serving)
        t = time.monotonic()
        archive = write_single_binary_image(find_binary("pause"), PAUSE_IMAGE, w / "pause-image.tar")
        self.import_image(archive)
        self.timings["pause image"] = time.monotonic() - t

    def _start_node_agents(self) -> None:
        w, pki = self.workdir, self.workdir / "pki"
        (w / "resolv.conf").write_text("# the node has no upstream DNS: nothing leaves its namespace\n"
                                       "nameserver 127.0.0.1\n")  # fmt: skip
        corefile = w / "Corefile"
        corefile.write_text(f"""\
.:53 {{
    bind {NODE_IP}
    errors
    ready 127.0.0.1:8181
    kubernetes cluster.local in-addr.arpa ip6.arpa {{
        kubeconfig {w / 'coredns.kubeconfig'}
        pods insecure
        fallthrough in-addr.arpa ip6.arpa
    }}
    cache 5
}}
""")  # fmt: skip
        coredns = self._spawn("coredns", [str(find_binary("coredns")), f"-conf={corefile}"])
        kubelet_config = {
            "apiVersion": "kubelet.config.k8s.io/v1beta1",
            "kind": "KubeletConfiguration",
            # this VM: cgroup v1, cgroupfs, swap accounting off
            "failCgroupV1": False,
            "cgroupDriver": "cgroupfs",
            "cgroupRoot": f"/{self.id}",
            "failSwapOn": False,
            "containerRuntimeEndpoint": f"unix://{self.containerd_socket}",
            "address": NODE_IP,
            "healthzBindAddress": "127.0.0.1",
            "readOnlyPort": 0,
            "authentication": {
                "anonymous": {"enabled": False},
                "webhook": {"enabled": True},
                "x509": {"clientCAFile": str(pki / "ca.crt")},
            },
            "authorization": {"mode": "Webhook"},
            "clusterDomain": "cluster.local",
            "clusterDNS": [NODE_IP],
            "resolvConf": str(w / "resolv.conf"),
            "podLogsDir": str(w / "pod-logs"),
            # The disk is shared with other work: never evict or garbage-collect images for it.
            "evictionHard": {
                "memory.available": "50Mi",
                "nodefs.available": "1%",
                "imagefs.available": "1%",
                "nodefs.inodesFree": "1%",
            },
            "imageGCHighThresholdPercent": 100,
            "imageGCLowThresholdPercent": 99,
            "serializeImagePulls": False,
            "maxPods": 60,
            "protectKernelDefaults": False,
            "nodeStatusUpdateFrequency": "4s",
            "syncFrequency": "10s",
        }
        (w / "kubelet-config.json").write_text(json.dumps(kubelet_config, indent=2))
        kubelet = self._spawn("kubelet", [
            str(find_binary("kubelet")), f"--config={w / 'kubelet-config.json'}",
            f"--kubeconfig={w / 'kubelet.kubeconfig'}", f"--root-dir={w / 'kubelet'}",
            f"--cert-dir={w / 'kubelet-pki'}", f"--hostname-override={NODE_NAME}", f"--node-ip={NODE_IP}",
            "--v=1",
        ])  # fmt: skip
        proxy_config = {
            "apiVersion": "kubeproxy.config.k8s.io/v1alpha1",
            "kind": "KubeProxyConfiguration",
            "clientConnection": {"kubeconfig": str(w / "kube-proxy.kubeconfig")},
            "mode": "iptables",
            "clusterCIDR": POD_SUBNET,
            "hostnameOverride": NODE_NAME,
            "bindAddress": NODE_IP,
            "healthzBindAddress": "127.0.0.1:10256",
            "metricsBindAddress": "127.0.0.1:10249",
            # conntrack tables are sized VM-wide: leave them as they are
            "conntrack": {
                "maxPerCore": 0,
                "min": 0,
                "tcpEstablishedTimeout": "0s",
                "tcpCloseWaitTimeout": "0s",
            },
            "iptables": {"syncPeriod": "30s", "minSyncPeriod": "0s"},
        }
        (w / "kube-proxy-config.json").write_text(json.dumps(proxy_config, indent=2))
        proxy = self._spawn(
            "kube-proxy",
            [str(find_binary("kube-proxy")), f"--config={w / 'kube-proxy-config.json'}", "--v=1"],
        )
        self._wait(coredns, "ready on :8181", lambda: self._http_ok("http://127.0.0.1:8181/ready"))
        self._wait(kubelet, f"node {NODE_NAME} Ready", self._node_ready)
        self._wait(proxy, "healthz", lambda: self._http_ok("http://127.0.0.1:10256/healthz"))
        self._maybe_start_kube_router()

    def _maybe_start_kube_router(self) -> None:
        try:
            binary = find_binary("kube-router")
        except ToolsMissingError:
            return
        router = self._spawn("kube-router", [
            str(binary), f"--kubeconfig={self.workdir / 'kube-router.kubeconfig'}",
            "--run-firewall=true", "--run-router=false", "--run-service-proxy=false",
            f"--hostname-override={NODE_NAME}", "--metrics-port=0", "--health-port=20244",
            "--iptables-sync-period=30s", "--v=1",
        ])  # fmt: skip
        self._wait(router, "healthz", lambda: self._http_ok("http://127.0.0.1:20244/healthz"), timeout=60)
        self.network_policies = True

    def _node_ready(self) -> bool:
        out = self.kubectl("get", "node", NODE_NAME, "-o",
                           "jsonpath={.status.conditions[?(@.type=='Ready')].status}",
                           timeout=30, check=False)  # fmt: skip
        return out.returncode == 0 and out.stdout.strip() == "True"


@contextlib.contextmanager
def running_node(**kwargs: Any) -> Iterator[RealNode]:
    node = RealNode(**kwargs)
    try:
        yield node.start()
    finally:
        node.stop()


def _exit_on_sigterm(signum: int, frame: object) -> None:  # pragma: no cover
    raise SystemExit(128 + signum)


if __name__ == "__main__":  # pragma: no cover - manual use
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    with running_node() as realnode:
        print(f"node {realnode.id} up: " + ", ".join(f"{k} {v:.1f}s" for k, v in realnode.timings.items()))
        print(f"kubectl: KUBECONFIG={realnode.kubeconfig} nsenter --net={realnode.netns_path} "
              f"{find_binary('kubectl')} get pods -A")  # fmt: skip
        print(
            f"versions: kubelet {tool_version('kubelet')}, coredns {tool_version('coredns')}; Ctrl-C to stop"
        )
        with contextlib.suppress(KeyboardInterrupt):
            signal.pause()
