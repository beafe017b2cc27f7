#!/usr/bin/env bash
# hack/build-image.sh — build the canarywatch image without Docker, as an OCI image
# layout tar that containerd imports (`ctr -n k8s.io images import TAR`).
#
#   hack/build-image.sh [--ref REF]        (root; Debian bookworm host)
#
#   REF     image reference, default localhost/canarywatch:dev: a `localhost/` name is
#           never pulled from a real registry. Chart values for it:
#           image.registry=localhost image.repository=canarywatch image.tag=dev
#           image.pullPolicy=Never (or IfNotPresent).
#   stdout  the last line is the path of the OCI tar; everything else goes to stderr.
#   files   $CANARYWATCH_TOOLS_DIR/image/ (default <repo>/.cache/tools/image/):
#             canarywatch-<ref>.oci.tar   the image
#             latest.env                  IMAGE_REF=... and IMAGE_TAR=... of the last build
#             layers/{base,deps,app}/     cached layers, each rebuilt only when its key changes
#   exit    nonzero with an "error:" line on stderr on any failure.
#   use     . "$CANARYWATCH_TOOLS_DIR/image/latest.env"
#           ctr -n k8s.io images import "$IMAGE_TAR"     # the image is named $IMAGE_REF
#   needs   root, python3 >= 3.11 with pip, GNU tar, overlayfs; installs mmdebstrap with
#           apt-get when missing. Measured (2 shared cores): ~3 min cold, ~1.5 s when
#           nothing changed, ~10-15 s after editing a file under operator/.
#
# What the image is (the Dockerfile's runtime stage, rebuilt from Debian packages):
#   1. base  mmdebstrap --variant=essential of bookworm + python3.11 libstdc++6 iproute2
#            ca-certificates netbase; user/group nonroot 65532; stdlib .pyc as unchecked
#            hashes. Key: the package list and RECIPE.
#   2. deps  a venv /opt/canarywatch (Debian's python3.11, no pip inside) with
#            pyproject.toml's [project.dependencies] (runtime only, no [dev]).
#            Key: the dependency list, the pip version, the base layer. The versions
#            are resolved when the layer is built and kept until the key changes
#            (rm -rf $CANARYWATCH_TOOLS_DIR/image/layers/deps to take newer ones).
#   3. app   the canarywatch wheel (built on the host from operator/, pyproject.toml,
#            README.md) installed over layer 2. Key: those sources + layer 2. A code
#            change rebuilds only this layer (seconds).
# Layers are deterministic tars (sorted, mtime = EPOCH, numeric owners), gzipped; all
# .pyc are compiled at build time as unchecked hashes (the root FS is read-only at run
# time). pip in the chroot gets the host pip's settings (index, CA bundle: see
# `hack/image/oci.py pip-env`); mmdebstrap gets the host's apt sources and proxy
# settings. The finished tar is checked by `hack/image/oci.py verify` (index ->
# manifest -> config -> layer digests and diff_ids) and the app layer is smoke-tested
# (`canarywatch --help`, imports) as uid 65532 on a read-only root before the path is
# printed.
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
HELPER=$REPO/hack/image/oci.py
REF=localhost/canarywatch:dev
SUITE=bookworm
BASE_PKGS=(python3.11 libstdc++6 iproute2 ca-certificates netbase)
PIP_VERSION=26.3          # pip used (from its wheel) to fill the venv; not in the image
RECIPE=1                  # bump to rebuild every layer
EPOCH=1704067200          # 2024-01-01: mtime of every file, `created` of the image
PY=/opt/canarywatch/bin/python

START=$SECONDS
log() { printf 'build-image: [%3d s] %s\n' $((SECONDS - START)) "$*" >&2; }
die() { log "error: $*"; exit 1; }
trap 'die "failed at line $LINENO: $BASH_COMMAND"' ERR

while [[ $# -gt 0 ]]; do
  case $1 in
    --ref) [[ $# -ge 2 ]] || die "--ref needs a value"; REF=$2; shift 2 ;;
    --ref=*) REF=${1#--ref=}; shift ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//' >&2; exit 0 ;;
    *) die "unknown argument $1 (usage: hack/build-image.sh [--ref REF])" ;;
  esac
done
[[ $REF =~ ^[a-z0-9]+([._-][a-z0-9]+)*(:[0-9]+)?(/[a-z0-9]+([._-][a-z0-9]+)*)+:[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$ ]] \
  || die "--ref $REF: want registry/repository:tag, e.g. localhost/canarywatch:dev"
[[ $(id -u) == 0 ]] || die "run as root (mmdebstrap, chroot and mount namespaces need it)"

TOOLS=${CANARYWATCH_TOOLS_DIR:-$REPO/.cache/tools}
IMG=$TOOLS/image
L=$IMG/layers
MNT=$IMG/work/mnt
mkdir -p "$L" "$MNT"
exec 9>"$IMG/.lock"
flock 9 || die "cannot lock $IMG/.lock"

# ---- host tools (idempotent) -------------------------------------------------------------
need=()
command -v mmdebstrap >/dev/null || need+=(mmdebstrap)
dpkg -s debian-archive-keyring >/dev/null 2>&1 || need+=(debian-archive-keyring)
command -v unshare >/dev/null || need+=(util-linux)
if ((${#need[@]})); then
  # shellcheck source=hack/lib/apt-install.sh
  source "$(dirname "${BASH_SOURCE[0]}")/lib/apt-install.sh"
  apt_install - "${need[@]}" >&2
fi
python3 -c 'import sys; assert sys.version_info >= (3, 11)' 2>/dev/null \
  || die "host python3 must be >= 3.11 (tomllib)"

hash_str() { sha256sum | cut -c1-64; }
# fresh NAME KEY PATH: layer NAME was built with KEY and its tree (PATH in it) is still there
fresh() { [[ -f $L/$1/key && $(<"$L/$1/key") == "$2" && -f $L/$1/layer.json && -e $L/$1/$3 ]]; }
# pack DIR NAME [tar options]: DIR as a deterministic gzipped layer, L/NAME/layer.{tar.gz,json}
pack() {
  local dir=$1 name=$2; shift 2
  (cd "$dir" && tar --sort=name --format=posix --numeric-owner --mtime="@$EPOCH" \
      --pax-option=exthdr.name=%d/PaxHeaders/%f,delete=atime,delete=ctime "$@" -cf - .) \
    | nice python3 "$HELPER" pack-layer "$L/$name/layer.tar.gz"
}

# chroot_run ROOT MOUNTS CMD...: CMD in ROOT mounted read-only, in a private mount
# namespace (every mount vanishes with it) with /dev, /proc, a tmpfs /tmp, the host's
# resolv.conf. MOUNTS: lines "bind|robind|overlay SRC DST" (DST under /tmp or an existing
# directory). CHROOT_USER (uid:gid) and CHROOT_ENV (array, the only environment) apply.
chroot_run() {
  local root=$1 mounts=$2; shift 2
  unshare --mount --propagation private -- /bin/bash -euo pipefail -c '
    root=$1 mnt=$2 mounts=$3 user=$4; shift 4
    mount --bind "$root" "$mnt"; mount -o remount,bind,ro "$mnt"
    mount --rbind /dev "$mnt/dev"
    mount -t proc proc "$mnt/proc"
    mount -t tmpfs -o mode=1777 tmpfs "$mnt/tmp"
    mount --bind /etc/resolv.conf "$mnt/etc/resolv.conf"
    while read -r kind src dst; do
      [[ -n $kind ]] || continue
      mkdir -p "$mnt$dst"
      case $kind in
        bind) mount --bind "$src" "$mnt$dst" ;;
        robind) mount --bind "$src" "$mnt$dst"; mount -o remount,bind,ro "$mnt$dst" ;;
        overlay) mount -t overlay overlay -o "lowerdir=$src" "$mnt$dst" ;;
      esac
    done <<<"$mounts"
    exec chroot --userspec="$user" "$mnt" /usr/bin/env -i "$@"
  ' _ "$root" "$MNT" "$mounts" "${CHROOT_USER:-0:0}" "${CHROOT_ENV[@]}" "$@"
}
BASE_ENV=(PATH=/opt/canarywatch/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/tmp LANG=C.UTF-8
  SOURCE_DATE_EPOCH=$EPOCH PYTHONDONTWRITEBYTECODE=1)

# ---- layer 1: base root filesystem --------------------------------------------------------
# merged-usr hook: the symlinks without the usrmerge package (and the perl it pulls in).
MMDEBSTRAP_OPTS=(--mode=root --variant=essential --hook-dir=/usr/share/mmdebstrap/hooks/merged-usr
  --include="$(IFS=,; echo "${BASE_PKGS[*]}")"
  --dpkgopt='path-exclude=/usr/share/man/*' --dpkgopt='path-exclude=/usr/share/info/*'
  --dpkgopt='path-exclude=/usr/share/locale/*' --dpkgopt='path-include=/usr/share/locale/locale.alias'
  --dpkgopt='path-exclude=/usr/share/doc/*' --dpkgopt='path-include=/usr/share/doc/*/copyright'
  --dpkgopt='path-exclude=/usr/share/lintian/*'
  --customize-hook='chroot "$1" python3.11 -m compileall -q -f --invalidation-mode unchecked-hash /usr/lib/python3.11')
BASE_KEY=$(printf '%s\n' "$RECIPE" "$SUITE" "${MMDEBSTRAP_OPTS[@]}" | hash_str)
if fresh base "$BASE_KEY" rootfs/usr/bin/python3.11; then
  log "base: up to date"
else
  log "base: mmdebstrap $SUITE (${BASE_PKGS[*]})"
  t=$SECONDS
  # The host's Debian sources (no mirror name in this repo) and its apt network settings.
  sources=()
  for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources; do
    if [[ -f $f ]] && grep -qE "^[^#]*\b$SUITE\b" "$f"; then sources+=("$f"); fi
  done
  ((${#sources[@]})) || die "no apt sources for $SUITE in /etc/apt/sources.list{,.d/}"
  aptopts=()
  while IFS= read -r line; do aptopts+=(--aptopt="$line"); done < <(apt-config dump \
    | grep -E '^Acquire::(Check-Valid-Until|Check-Date|https?::Proxy|Retries) ' || true)
  rm -rf "$L/base"; mkdir -p "$L/base"
  SOURCE_DATE_EPOCH=$EPOCH nice mmdebstrap "${MMDEBSTRAP_OPTS[@]}" "${aptopts[@]}" \
    "$SUITE" "$L/base/rootfs" "${sources[@]}" >&2 || die "mmdebstrap failed"
  r=$L/base/rootfs
  echo 'nonroot:x:65532:65532:nonroot:/tmp:/usr/sbin/nologin' >>"$r/etc/passwd"
  echo 'nonroot:x:65532:' >>"$r/etc/group"
  if [[ -f $r/etc/shadow ]]; then echo 'nonroot:!:19723::::::' >>"$r/etc/shadow"; fi
  # Files the runtime bind-mounts over; the host's copies must not end up in the image.
  : >"$r/etc/resolv.conf"; : >"$r/etc/hostname"
  printf '127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n' >"$r/etc/hosts"
  rm -rf "$r"/var/cache/apt/* "$r"/var/lib/apt/lists/* "$r"/var/log/* "$r"/tmp/* "$r"/var/cache/debconf/*-old
  mkdir -p "$r/opt/canarywatch"
  pack "$r" base --exclude='./dev/*' --exclude='./proc/*' --exclude='./sys/*'
  echo "$BASE_KEY" >"$L/base/key"
  log "base: built in $((SECONDS - t)) s"
fi
BASE_DIFF=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["diff_id"])' "$L/base/layer.json")

# ---- layer 2: the dependencies' venv ------------------------------------------------------
DEPS=$(python3 -c 'import sys, tomllib; print("\n".join(tomllib.load(open(sys.argv[1], "rb"))["project"]["dependencies"]))' \
  "$REPO/pyproject.toml")
DEPS_KEY=$(printf '%s\n' "$RECIPE" "$BASE_DIFF" "$PIP_VERSION" "$DEPS" | hash_str)
PIPWHL=$IMG/pip/pip-$PIP_VERSION-py3-none-any.whl
mkdir -p "$IMG/pip" "$IMG/pip-cache"
if [[ ! -f $PIPWHL ]]; then
  python3 -m pip download -q --no-deps --only-binary=:all: -d "$IMG/pip" "pip==$PIP_VERSION" >&2 \
    || die "cannot download pip $PIP_VERSION"
fi
if fresh deps "$DEPS_KEY" root/opt/canarywatch/bin/python; then
  log "deps: up to date"
else
  log "deps: venv with $(echo "$DEPS" | wc -l) dependencies"
  t=$SECONDS
  rm -rf "$L/deps"; mkdir -p "$L/deps/root/opt/canarywatch"
  printf '%s\n' "$DEPS" >"$L/deps/requirements.txt"
  # pip gets the host pip's settings (index, CA bundle) and a cache kept across builds.
  rm -rf "$IMG/work/pipconf"
  mapfile -t PIP_ENV < <(python3 "$HELPER" pip-env "$IMG/work/pipconf" /tmp/pipconf)
  CHROOT_ENV=("${BASE_ENV[@]}" "${PIP_ENV[@]}" PIP_CACHE_DIR=/tmp/pipcache PIP_DISABLE_PIP_VERSION_CHECK=1)
  mounts=$(printf '%s\n' "robind $IMG/pip /tmp/pipwhl" "robind $IMG/work/pipconf /tmp/pipconf" \
    "bind $IMG/pip-cache /tmp/pipcache" "robind $L/deps /tmp/req" \
    "bind $L/deps/root/opt/canarywatch /opt/canarywatch")
  chroot_run "$L/base/rootfs" "$mounts" /bin/sh -euc "
    /usr/bin/python3.11 -m venv --without-pip /opt/canarywatch
    $PY /tmp/pipwhl/pip-$PIP_VERSION-py3-none-any.whl/pip install -q --no-compile --prefer-binary \
      -r /tmp/req/requirements.txt
    $PY -m compileall -q -f --invalidation-mode unchecked-hash /opt/canarywatch/lib
  " >&2 || die "pip install of the dependencies failed"
  pack "$L/deps/root" deps --owner=0 --group=0
  echo "$DEPS_KEY" >"$L/deps/key"
  log "deps: built in $((SECONDS - t)) s"
fi

# ---- layer 3: canarywatch itself ----------------------------------------------------------
SRC_HASH=$(cd "$REPO" && find pyproject.toml README.md operator -type f \
  ! -path '*/__pycache__/*' ! -name '*.pyc' ! -path '*.egg-info*' -print0 \
  | LC_ALL=C sort -z | xargs -0 sha256sum | hash_str)
APP_KEY=$(printf '%s\n' "$RECIPE" "$DEPS_KEY" "$SRC_HASH" | hash_str)
if fresh app "$APP_KEY" root/opt/canarywatch/bin/canarywatch; then
  log "app: up to date"
else
  log "app: canarywatch from operator/"
  t=$SECONDS
  benv=$IMG/buildenv
  if [[ ! -x $benv/bin/python ]] || ! "$benv/bin/python" -c 'import setuptools, wheel' 2>/dev/null; then
    rm -rf "$benv"; python3 -m venv "$benv"
    "$benv/bin/python" -m pip install -q 'setuptools>=68' wheel >&2 || die "cannot install setuptools into $benv"
  fi
  w=$IMG/work/app; rm -rf "$w"; mkdir -p "$w/src" "$w/wheel"
  (cd "$REPO" && cp -r pyproject.toml README.md operator "$w/src/")
  find "$w/src" \( -name __pycache__ -o -name '*.egg-info' \) -prune -exec rm -rf {} +
  SOURCE_DATE_EPOCH=$EPOCH "$benv/bin/python" -m pip wheel -q --no-deps --no-build-isolation -w "$w/wheel" "$w/src" >&2 \
    || die "cannot build the canarywatch wheel"
  whl=$(cd "$w/wheel" && ls canarywatch-*.whl)
  log "app: built $whl, installing"
  rm -rf "$L/app"; mkdir -p "$L/app/root"
  CHROOT_ENV=("${BASE_ENV[@]}" PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_INDEX=1)
  mounts=$(printf '%s\n' "robind $L/deps/root/opt/canarywatch /opt/canarywatch" \
    "robind $w/wheel /tmp/wheel" "robind $IMG/pip /tmp/pipwhl" "bind $L/app/root /tmp/out")
  chroot_run "$L/base/rootfs" "$mounts" /bin/sh -euc "
    $PY /tmp/pipwhl/pip-$PIP_VERSION-py3-none-any.whl/pip install -q --no-deps --no-compile \
      --no-warn-script-location --root /tmp/out /tmp/wheel/$whl
    $PY -m compileall -q -f --invalidation-mode unchecked-hash -s /tmp/out -p / /tmp/out/opt
  " >&2 || die "installing the canarywatch wheel failed"
  log "app: smoke test"
  # Smoke test as the pods run it: uid 65532, read-only root, only /tmp writable.
  mounts="overlay $L/app/root/opt/canarywatch:$L/deps/root/opt/canarywatch /opt/canarywatch"
  CHROOT_ENV=("${BASE_ENV[@]}" PYTHONUNBUFFERED=1 TMPDIR=/tmp)
  CHROOT_USER=65532:65532 chroot_run "$L/base/rootfs" "$mounts" /bin/sh -euc '
    cd /tmp; canarywatch --help >/dev/null
    python -c "import cv2, numpy, kopf, kubernetes, aiohttp, canarywatch.cli"
  ' >&2 || die "smoke test of the image (canarywatch --help as 65532 on a read-only root) failed"
  pack "$L/app/root" app --owner=0 --group=0
  echo "$APP_KEY" >"$L/app/key"
  log "app: built in $((SECONDS - t)) s"
fi

# ---- the OCI layout -------------------------------------------------------------------------
arch=$(dpkg --print-architecture)
version=$(python3 -c 'import sys, tomllib; print(tomllib.load(open(sys.argv[1], "rb"))["project"]["version"])' "$REPO/pyproject.toml")
OUT=$IMG/canarywatch-$(echo "$REF" | tr '/:@' '___').oci.tar
want=$(printf '%s\n' "$RECIPE" "$REF" "$arch" "$version" "$(cat "$L"/{base,deps,app}/layer.json)" \
  "$(sha256sum <"$HELPER")" | hash_str)
if [[ -f $OUT && -f $OUT.key && $(<"$OUT.key") == "$want" ]]; then
  log "oci: $OUT up to date"
else
  python3 "$HELPER" write --ref "$REF" --out "$OUT" --epoch "$EPOCH" --arch "$arch" --version "$version" \
    --history "base: Debian $SUITE ${BASE_PKGS[*]}" --history "deps: venv /opt/canarywatch" \
    --history "app: canarywatch $version" "$L"/{base,deps,app}/layer.json >/dev/null
  python3 "$HELPER" verify "$OUT" --ref "$REF" --cache "$L/verified.json" || die "the OCI layout $OUT is inconsistent"
  echo "$want" >"$OUT.key"
fi
printf 'IMAGE_REF=%s\nIMAGE_TAR=%s\n' "$REF" "$OUT" >"$IMG/latest.env"
log "done in $((SECONDS - START)) s: $REF ($(du -h "$OUT" | cut -f1))"
echo "$OUT"
