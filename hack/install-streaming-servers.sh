#!/usr/bin/env bash
# Installs the real streaming servers the streaming test tier (tests/streaming) runs as
# integrations under test, from Debian: nginx with its RTMP module (RTMP ingest → HLS,
# per-tenant applications and folders), ffmpeg (the publishers' H.264 encoder and the
# benchmark's reference decoder), and the GStreamer RTSP server with its Python bindings
# (RTSP with per-tenant users, Basic and Digest).
#
# Usage: hack/install-streaming-servers.sh        (as root, or as a user with sudo)
#
# Idempotent: when every package is installed it only says so.  It never leaves a system
# nginx running: the tests start their own nginx on 127.0.0.1 with their own config,
# prefix and ports, and a system instance would only hold port 80.
set -euo pipefail

log() { printf '[install-streaming-servers] %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

PACKAGES=(
    nginx libnginx-mod-rtmp ffmpeg
    python3-gi gir1.2-gst-rtsp-server-1.0 gstreamer1.0-rtsp
    gstreamer1.0-plugins-base gstreamer1.0-plugins-good gstreamer1.0-plugins-bad
)

# shellcheck source=hack/lib/apt-install.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/apt-install.sh"
apt_install_missing nginx "${PACKAGES[@]}"

for bin in nginx ffmpeg ffprobe; do
    command -v "${bin}" >/dev/null 2>&1 || die "${bin} is not on PATH after the install (PATH=${PATH})"
done
[[ -e /usr/lib/nginx/modules/ngx_rtmp_module.so ]] \
    || die "/usr/lib/nginx/modules/ngx_rtmp_module.so missing after installing libnginx-mod-rtmp"
/usr/bin/python3 -c 'import gi; gi.require_version("GstRtspServer", "1.0")' \
    || die "the GStreamer RTSP server's Python bindings do not import under /usr/bin/python3"
log "installed: $(nginx -v 2>&1), $(ffmpeg -version | head -n1)"
