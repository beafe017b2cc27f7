#!/usr/bin/env python3
"""OCI image helpers for hack/build-image.sh (stdlib only; run with the host's python3).

oci.py pack-layer OUT.tar.gz < layer.tar
    gzip (deterministic: no name, mtime 0) a layer tar read from stdin; writes
    OUT.tar.gz and OUT.json = {"digest", "size", "diff_id"} (digest/size of the gzip,
    diff_id = sha256 of the uncompressed tar).
oci.py write --ref REF --out OUT.tar --epoch N --arch ARCH LAYER.json...
    an OCI image layout tar (oci-layout, index.json, blobs/sha256/...) holding one
    linux/ARCH image: config (entrypoint, env, user... as the Dockerfile), the layers
    in order (base first). Prints the manifest digest.
oci.py verify OUT.tar --ref REF [--cache FILE]
    re-reads the layout: index -> manifest -> config -> layers, every digest and size,
    every layer's diff_id (decompressed), the ref annotations. Exit 1 with the first
    inconsistency. --cache: a JSON {layer digest: diff_id} of layers already checked
    by decompression (their compressed digest is still checked), updated on success.
oci.py pip-env STAGE_DIR INSIDE_DIR
    the host pip's effective settings (`pip config list` + PIP_* variables) as
    PIP_*=value lines for a pip run in a chroot; files they name (the CA bundle, client
    certificates) are copied into STAGE_DIR, which the chroot sees at INSIDE_DIR.
"""

from __future__ import annotations

import argparse
import ast
import gzip
import hashlib
import io
import json
import os
import shutil
import ssl
import subprocess
import sys
import tarfile
import time
import zlib
from pathlib import Path

CHUNK = 1 << 20
LAYER_GZ = "application/vnd.oci.image.layer.v1.tar+gzip"
CONFIG = "application/vnd.oci.image.config.v1+json"
MANIFEST = "application/vnd.oci.image.manifest.v1+json"
INDEX = "application/vnd.oci.image.index.v1+json"
REF_NAME = "org.opencontainers.image.ref.name"
CONTAINERD_NAME = "io.containerd.image.name"

# What the Dockerfile's runtime stage declares (keep the two in step).
ENV = [
    "PATH=/opt/canarywatch/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    "PYTHONDONTWRITEBYTECODE=1",
    "PYTHONUNBUFFERED=1",
    "HOME=/tmp",
    "TMPDIR=/tmp",
]
PORTS = [8080, 9090, 9100, 9000, 8765]
LABELS = {
    "org.opencontainers.image.title": "canarywatch",
    "org.opencontainers.image.description": (
        "Continuous privacy-compliance monitor for multi-tenant camera integrations"
    ),
    "org.opencontainers.image.licenses": "Apache-2.0",
}


def fail(msg: str) -> None:
    print(f"oci.py: {msg}", file=sys.stderr)
    sys.exit(1)


def canonical(obj: object) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


class HashingWriter(io.RawIOBase):
    """A file object that hashes and counts what is written through it."""

    def __init__(self, out: io.BufferedWriter) -> None:
        self.out, self.hash, self.size = out, hashlib.sha256(), 0

    def writable(self) -> bool:
        return True

    def write(self, b) -> int:  # type: ignore[override]
        self.hash.update(b)
        self.size += len(b)
        return self.out.write(b)


def pack_layer(out: Path) -> None:
    tmp = out.with_name(out.name + ".tmp")
    diff = hashlib.sha256()
    with open(tmp, "wb") as raw:
        hw = HashingWriter(raw)
        with gzip.GzipFile(filename="", mode="wb", fileobj=hw, mtime=0, compresslevel=6) as gz:
            while chunk := sys.stdin.buffer.read(CHUNK):
                diff.update(chunk)
                gz.write(chunk)
    info = {
        "digest": "sha256:" + hw.hash.hexdigest(),
        "size": hw.size,
        "diff_id": "sha256:" + diff.hexdigest(),
    }
    os.replace(tmp, out)
    out.with_suffix("").with_suffix(".json").write_text(json.dumps(info, indent=1) + "\n")


def layer_json(path: Path) -> tuple[Path, dict]:
    info = json.loads(path.read_text())
    return path.with_suffix(".tar.gz"), info


def add_bytes(tar: tarfile.TarFile, name: str, data: bytes, epoch: int) -> None:
    ti = tarfile.TarInfo(name)
    ti.size, ti.mtime, ti.mode = len(data), epoch, 0o644
    tar.addfile(ti, io.BytesIO(data))


def add_dir(tar: tarfile.TarFile, name: str, epoch: int) -> None:
    ti = tarfile.TarInfo(name)
    ti.type, ti.mtime, ti.mode = tarfile.DIRTYPE, epoch, 0o755
    tar.addfile(ti)


def write(args: argparse.Namespace) -> None:
    layers = [layer_json(Path(p)) for p in args.layers]
    created = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(args.epoch))
    config = {
        "architecture": args.arch,
        "os": "linux",
        "created": created,
        "config": {
            "User": "65532:65532",
            "Env": ENV,
            "Entrypoint": ["canarywatch"],
            "Cmd": ["--help"],
            "WorkingDir": "/tmp",
            "ExposedPorts": {f"{p}/tcp": {} for p in PORTS},
            "Labels": {**LABELS, "org.opencontainers.image.version": args.version},
        },
        "rootfs": {"type": "layers", "diff_ids": [info["diff_id"] for _, info in layers]},
        "history": [
            {"created": created, "created_by": f"hack/build-image.sh: {what}"}
            for what in args.history or [f"layer {i}" for i in range(len(layers))]
        ],
    }
    config_b = canonical(config)
    manifest = {
        "schemaVersion": 2,
        "mediaType": MANIFEST,
        "config": {"mediaType": CONFIG, "digest": sha256(config_b), "size": len(config_b)},
        "layers": [{"mediaType": LAYER_GZ, "digest": i["digest"], "size": i["size"]} for _, i in layers],
    }
    manifest_b = canonical(manifest)
    index = {
        "schemaVersion": 2,
        "mediaType": INDEX,
        "manifests": [
            {
                "mediaType": MANIFEST,
                "digest": sha256(manifest_b),
                "size": len(manifest_b),
                "platform": {"architecture": args.arch, "os": "linux"},
                "annotations": {REF_NAME: args.ref, CONTAINERD_NAME: args.ref},
            }
        ],
    }
    out = Path(args.out)
    tmp = out.with_name(out.name + ".tmp")
    with tarfile.open(tmp, "w", format=tarfile.PAX_FORMAT) as tar:
        add_bytes(tar, "oci-layout", canonical({"imageLayoutVersion": "1.0.0"}), args.epoch)
        add_bytes(tar, "index.json", canonical(index), args.epoch)
        for d in ("blobs", "blobs/sha256"):
            add_dir(tar, d, args.epoch)
        add_bytes(tar, blob_name(sha256(config_b)), config_b, args.epoch)
        add_bytes(tar, blob_name(sha256(manifest_b)), manifest_b, args.epoch)
        for gz, info in layers:
            ti = tarfile.TarInfo(blob_name(info["digest"]))
            ti.size, ti.mtime, ti.mode = info["size"], args.epoch, 0o644
            if gz.stat().st_size != info["size"]:
                fail(f"{gz}: size differs from its .json, rebuild the layer")
            with open(gz, "rb") as f:
                tar.addfile(ti, f)
    os.replace(tmp, out)
    print(sha256(manifest_b))


def blob_name(digest: str) -> str:
    algo, _, hexd = digest.partition(":")
    return f"blobs/{algo}/{hexd}"


def verify(args: argparse.Namespace) -> None:
    with tarfile.open(args.tar) as tar:
        members = {m.name.removeprefix("./"): m for m in tar.getmembers()}

        def read(name: str) -> bytes:
            if name not in members:
                fail(f"missing {name}")
            f = tar.extractfile(members[name])
            assert f is not None
            return f.read()

        def blob(desc: dict, what: str) -> bytes:
            data = read(blob_name(desc["digest"]))
            if sha256(data) != desc["digest"] or len(data) != desc["size"]:
                fail(f"{what}: digest or size does not match its descriptor")
            return data

        if json.loads(read("oci-layout")).get("imageLayoutVersion") != "1.0.0":
            fail("oci-layout: imageLayoutVersion is not 1.0.0")
        index = json.loads(read("index.json"))
        if index.get("schemaVersion") != 2 or len(index.get("manifests", [])) != 1:
            fail("index.json: want schemaVersion 2 and exactly one manifest")
        desc = index["manifests"][0]
        ann = desc.get("annotations", {})
        if ann.get(REF_NAME) != args.ref or ann.get(CONTAINERD_NAME) != args.ref:
            fail(f"index.json: ref annotations {ann} are not {args.ref!r}")
        manifest = json.loads(blob(desc, "manifest"))
        if manifest.get("mediaType") != MANIFEST or desc.get("mediaType") != MANIFEST:
            fail("manifest: wrong mediaType")
        config = json.loads(blob(manifest["config"], "config"))
        diff_ids = config["rootfs"]["diff_ids"]
        cache_file = Path(args.cache) if args.cache else None
        checked = json.loads(cache_file.read_text()) if cache_file and cache_file.is_file() else {}
        if len(diff_ids) != len(manifest["layers"]) or not manifest["layers"]:
            fail("config: diff_ids and manifest layers differ in number")
        if desc.get("platform", {}).get("architecture") != config["architecture"]:
            fail("index platform and config architecture differ")
        for i, (ldesc, diff_id) in enumerate(zip(manifest["layers"], diff_ids, strict=True)):
            f = tar.extractfile(members[blob_name(ldesc["digest"])])
            assert f is not None
            comp, raw = hashlib.sha256(), hashlib.sha256()
            hw = _Tee(f, comp)
            deep = checked.get(ldesc["digest"]) != diff_id
            if deep:
                try:
                    with gzip.GzipFile(fileobj=hw) as gz:  # type: ignore[arg-type]
                        while chunk := gz.read(CHUNK):
                            raw.update(chunk)
                except (OSError, EOFError, zlib.error) as e:
                    fail(f"layer {i} ({ldesc['digest']}): not a valid gzip stream: {e}")
            while hw.read(CHUNK):
                pass
            if "sha256:" + comp.hexdigest() != ldesc["digest"] or hw.size != ldesc["size"]:
                fail(f"layer {i}: digest or size does not match the manifest")
            if deep and "sha256:" + raw.hexdigest() != diff_id:
                fail(f"layer {i}: uncompressed sha256 is not the config's diff_id {diff_id}")
            checked[ldesc["digest"]] = diff_id
        c = config["config"]
        if c.get("User") != "65532:65532" or c.get("Entrypoint") != ["canarywatch"]:
            fail("config: User/Entrypoint are not the Dockerfile's")
    if cache_file:
        cache_file.write_text(json.dumps(checked, indent=1, sort_keys=True) + "\n")
    print(
        f"oci.py: {args.tar}: {len(diff_ids)} layers, manifest {desc['digest']}: consistent",
        file=sys.stderr,
    )


class _Tee:
    """Read-through file object that hashes and counts the compressed bytes."""

    def __init__(self, f, h) -> None:
        self.f, self.h, self.size = f, h, 0

    def read(self, n: int = -1) -> bytes:
        data = self.f.read(n)
        self.h.update(data)
        self.size += len(data)
        return data


# ---- pip settings for the chroot -------------------------------------------------------
PATH_KEYS = {"cert", "client-cert"}
# Host paths or install locations that mean nothing in the chroot.
SKIP_KEYS = {"find-links", "target", "prefix", "root", "user", "src", "log", "cache-dir"}


def pip_env(stage: Path, inside: str) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "pip", "config", "list"], capture_output=True, text=True, check=False
    )
    settings: dict[str, str] = {}
    for line in out.stdout.splitlines():
        key, sep, value = line.partition("=")
        if not sep:
            continue
        name = key.rsplit(".", 1)[-1]  # global.index-url / install.x / :env:.timeout
        try:
            settings[name] = str(ast.literal_eval(value))
        except (ValueError, SyntaxError):
            settings[name] = value.strip("'\"")
    if "cert" not in settings:
        settings["cert"] = (
            os.environ.get("SSL_CERT_FILE")
            or ssl.get_default_verify_paths().cafile
            or "/etc/ssl/certs/ca-certificates.crt"
        )
    stage.mkdir(parents=True, exist_ok=True)
    for name, setting in sorted(settings.items()):
        if name in SKIP_KEYS:
            continue
        value = " ".join(setting.split())  # multi-valued: extra-index-url, trusted-host
        if name in PATH_KEYS:
            if not Path(setting).is_file():
                fail(f"pip setting {name}={setting}: no such file")
            shutil.copyfile(setting, stage / f"{name}.pem")
            value = f"{inside}/{name}.pem"
        print(f"PIP_{name.upper().replace('-', '_')}={value}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("pack-layer")
    s.add_argument("out")
    s = sub.add_parser("write")
    s.add_argument("--ref", required=True)
    s.add_argument("--out", required=True)
    s.add_argument("--epoch", type=int, required=True)
    s.add_argument("--arch", required=True)
    s.add_argument("--version", default="0.1.0")
    s.add_argument("--history", action="append")
    s.add_argument("layers", nargs="+")
    s = sub.add_parser("verify")
    s.add_argument("tar")
    s.add_argument("--ref", required=True)
    s.add_argument("--cache")
    s = sub.add_parser("pip-env")
    s.add_argument("stage")
    s.add_argument("inside")
    args = p.parse_args()
    if args.cmd == "pack-layer":
        pack_layer(Path(args.out))
    elif args.cmd == "write":
        write(args)
    elif args.cmd == "verify":
        verify(args)
    else:
        pip_env(Path(args.stage), args.inside)


if __name__ == "__main__":
    main()
