#!/usr/bin/env bash
# Installs `prometheus` and `promtool` from the Debian package (bookworm: 2.42), for the
# chart test tier: `promtool check rules` / `promtool test rules` on the alert rules and a
# real Prometheus that scrapes a running demo (tests/chart/).
#
# Usage: hack/install-prometheus.sh        (as root, or as a user with sudo)
#
# Idempotent: when both binaries are already on PATH it only prints their versions.
# It installs without recommends (no node exporter) and never leaves a Prometheus
# service running: the tests start their own Prometheus on 127.0.0.1 with a throwaway
# config and data dir, and a system instance would only hold port 9090 and a data dir.
# Non-Debian systems: install Prometheus >= 2.42 any way you like and put `prometheus`
# and `promtool` on PATH; the tests look nowhere else.
set -euo pipefail

log() { printf '[install-prometheus] %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

have_all() { command -v promtool >/dev/null 2>&1 && command -v prometheus >/dev/null 2>&1; }

if have_all; then
    log "already installed: $(promtool --version 2>&1 | head -n1)"
    exit 0
fi

command -v apt-get >/dev/null 2>&1 \
    || die "apt-get not found; install Prometheus >= 2.42 (prometheus and promtool) and put both on PATH"

as_root=()
if [[ ${EUID} -ne 0 ]]; then
    command -v sudo >/dev/null 2>&1 || die "run as root (or install sudo): apt-get needs it"
    as_root=(sudo)
fi

# invoke-rc.d and deb-systemd-invoke ask /usr/sbin/policy-rc.d whether a package may start
# its service; exit code 101 means "no".  Container images usually ship one already; when
# there is none, hold one in place for the duration of the install only.
policy=/usr/sbin/policy-rc.d
made_policy=false
cleanup() {
    if [[ ${made_policy} == true ]]; then
        "${as_root[@]}" rm -f "${policy}"
    fi
}
trap cleanup EXIT
if [[ ! -e ${policy} ]]; then
    printf '#!/bin/sh\n# temporary, from canarywatch hack/install-prometheus.sh\nexit 101\n' \
        | "${as_root[@]}" tee "${policy}" >/dev/null
    "${as_root[@]}" chmod 0755 "${policy}"
    made_policy=true
fi

apt_env=(env DEBIAN_FRONTEND=noninteractive)
apt_opts=(-o DPkg::Lock::Timeout=300 -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold)

# A fresh image has empty package lists; a stale one may 404 on a superseded version.
log "apt-get update"
"${as_root[@]}" "${apt_env[@]}" apt-get "${apt_opts[@]}" update -qq
log "apt-get install prometheus (without recommends)"
"${as_root[@]}" "${apt_env[@]}" apt-get "${apt_opts[@]}" install -y -qq --no-install-recommends prometheus

# If something let the service start anyway (a pre-existing policy that allows it, or
# systemd's own preset), stop it and keep it from starting at boot.
if [[ -d /run/systemd/system ]] && command -v systemctl >/dev/null 2>&1; then
    "${as_root[@]}" systemctl disable --now prometheus.service >/dev/null 2>&1 || true
elif [[ -x /etc/init.d/prometheus ]]; then
    "${as_root[@]}" /etc/init.d/prometheus stop >/dev/null 2>&1 || true
fi

have_all || die "prometheus was installed but promtool/prometheus are not on PATH (PATH=${PATH})"
log "installed: $(promtool --version 2>&1 | head -n1)"
