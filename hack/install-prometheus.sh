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

# shellcheck source=hack/lib/apt-install.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/apt-install.sh"
apt_install prometheus prometheus

have_all || die "prometheus was installed but promtool/prometheus are not on PATH (PATH=${PATH})"
log "installed: $(promtool --version 2>&1 | head -n1)"
