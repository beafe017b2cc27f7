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

# shellcheck source=hack/lib/apt-install.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/apt-install.sh"
apt_install_missing containerd "${PACKAGES[@]}"

for bin in containerd runc ctr iptables ipset nsenter; do
    command -v "${bin}" >/dev/null 2>&1 || die "${bin} is not on PATH after the install (PATH=${PATH})"
done
[[ -x /usr/lib/cni/bridge ]] || die "/usr/lib/cni/bridge missing after installing containernetworking-plugins"
log "installed: containerd $(containerd --version | awk '{print $3}'), $(runc --version | head -n1)"
