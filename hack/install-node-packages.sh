#!/usr/bin/env bash
# Installs the Debian packages the realcluster test tier's single-node Kubernetes runs on
# (tests/support/realnode.py): containerd + runc (the container runtime), the CNI plugins
# (bridge, host-local, loopback, portmap), iptables + ipset (kube-proxy, kube-router's
# NetworkPolicy firewall), conntrack, and mmdebstrap (the image root filesystem,
# hack/build-image.sh).
#
# Usage: hack/install-node-packages.sh        (as root, or as a user with sudo)
#
# Idempotent: when every package is installed it only says so.  It never leaves a
# system containerd running: the tests start their own containerd with its own root,
# state and socket under a temp dir, inside a network namespace, and a system instance
# would only hold /run/containerd and /var/lib/containerd.
set -euo pipefail

log() { printf '[install-node-packages] %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

PACKAGES=(containerd runc containernetworking-plugins iptables ipset conntrack mmdebstrap)

missing=()
for pkg in "${PACKAGES[@]}"; do
    if [[ "$(dpkg-query -W -f='${Status}' "${pkg}" 2>/dev/null || true)" != "install ok installed" ]]; then
        missing+=("${pkg}")
    fi
done
if [[ ${#missing[@]} -eq 0 ]]; then
    log "already installed: ${PACKAGES[*]}"
    exit 0
fi

command -v apt-get >/dev/null 2>&1 \
    || die "apt-get not found; install ${PACKAGES[*]} (or their equivalents) any way you like"

as_root=()
if [[ ${EUID} -ne 0 ]]; then
    command -v sudo >/dev/null 2>&1 || die "run as root (or install sudo): apt-get needs it"
    as_root=(sudo)
fi

# invoke-rc.d and deb-systemd-invoke ask /usr/sbin/policy-rc.d whether a package may start
# its service; exit code 101 means "no".  Hold one in place for the install only.
policy=/usr/sbin/policy-rc.d
made_policy=false
cleanup() {
    if [[ ${made_policy} == true ]]; then
        "${as_root[@]}" rm -f "${policy}"
    fi
}
trap cleanup EXIT
if [[ ! -e ${policy} ]]; then
    printf '#!/bin/sh\n# temporary, from canarywatch hack/install-node-packages.sh\nexit 101\n' \
        | "${as_root[@]}" tee "${policy}" >/dev/null
    "${as_root[@]}" chmod 0755 "${policy}"
    made_policy=true
fi

apt_env=(env DEBIAN_FRONTEND=noninteractive)
apt_opts=(-o DPkg::Lock::Timeout=300 -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold)

log "apt-get update"
"${as_root[@]}" "${apt_env[@]}" apt-get "${apt_opts[@]}" update -qq
log "apt-get install ${missing[*]} (without recommends)"
"${as_root[@]}" "${apt_env[@]}" apt-get "${apt_opts[@]}" install -y -qq --no-install-recommends "${missing[@]}"

# If something let the system containerd start anyway, stop it and keep it from booting.
if [[ -d /run/systemd/system ]] && command -v systemctl >/dev/null 2>&1; then
    "${as_root[@]}" systemctl disable --now containerd.service >/dev/null 2>&1 || true
elif [[ -x /etc/init.d/containerd ]]; then
    "${as_root[@]}" /etc/init.d/containerd stop >/dev/null 2>&1 || true
fi

for bin in containerd runc ctr iptables ipset nsenter; do
    command -v "${bin}" >/dev/null 2>&1 || die "${bin} is not on PATH after the install (PATH=${PATH})"
done
[[ -x /usr/lib/cni/bridge ]] || die "/usr/lib/cni/bridge missing after installing containernetworking-plugins"
log "installed: containerd $(containerd --version | awk '{print $3}'), $(runc --version | head -n1)"
