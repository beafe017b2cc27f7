#!/usr/bin/env bash
# Builds the WHIP/WHEP server the streaming tier's WebRTC tests (tests/streaming/
# test_webrtc_pion.py) run as the integration under test: Pion's upstream example
# `examples/whip-whep` (github.com/pion/webrtc/v4, pinned below; the examples are part
# of the v4 module), which takes H.264 over WHIP on /whip and serves it over WHEP on
# /whep.  A WebRTC media server nobody here wrote, built from source with the local Go
# toolchain through the Go module proxy.
#
# Usage: hack/install-whep-server.sh      (prints the binary's path)
#
# Output: $CANARYWATCH_TOOLS_DIR/bin/pion-whip-whep (default <repo>/.cache/tools), with a
# stamp bin/.pion-whip-whep.stamp holding the version and recipe: a binary whose stamp
# matches is not rebuilt, so CI caches it with the tools dir.  The Go caches live under
# the tools dir too (go/cache, go/mod, go/path), as hack/build-tools.sh keeps them.
#
# The example listens on :8080 on every interface and names a public STUN server: the
# tests run it inside a network namespace of their own (tests/support/netns.py), where
# :8080 is that namespace's and the STUN server is unreachable.
set -euo pipefail

PION_WEBRTC_VERSION=v4.2.26
# Bumped when the build recipe changes, to force a rebuild.
RECIPE=1
PACKAGE=github.com/pion/webrtc/v4/examples/whip-whep

log() { printf '[install-whep-server] %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TOOLS_DIR="${CANARYWATCH_TOOLS_DIR:-${repo_root}/.cache/tools}"
mkdir -p "${TOOLS_DIR}/bin"
TOOLS_DIR="$(cd "${TOOLS_DIR}" && pwd)"
binary="${TOOLS_DIR}/bin/pion-whip-whep"
stamp="${TOOLS_DIR}/bin/.pion-whip-whep.stamp"
want="${PACKAGE}@${PION_WEBRTC_VERSION} recipe=${RECIPE}"

if [[ -x "${binary}" && -f "${stamp}" && "$(cat "${stamp}")" == "${want}" ]]; then
  echo "${binary}"
  exit 0
fi
command -v go >/dev/null || die "go is not on PATH (the pinned tools are built with the local Go toolchain)"

export GOCACHE="${CANARYWATCH_GOCACHE:-${TOOLS_DIR}/go/cache}"
export GOMODCACHE="${CANARYWATCH_GOMODCACHE:-${TOOLS_DIR}/go/mod}"
export GOPATH="${TOOLS_DIR}/go/path"
export GOFLAGS=-mod=mod
src="${TOOLS_DIR}/src/pion-whip-whep"
rm -rf "${src}"
mkdir -p "${src}"
# A throwaway module that requires the pinned upstream one: `go build` of a package
# path then resolves its dependencies from upstream's go.mod.
cat >"${src}/go.mod" <<EOF
module canarywatch.local/pion-whip-whep

go 1.24
EOF
log "building ${PACKAGE}@${PION_WEBRTC_VERSION}"
(cd "${src}" && go get "github.com/pion/webrtc/v4@${PION_WEBRTC_VERSION}" >&2 \
  && CGO_ENABLED=0 go build -trimpath -o "${binary}.tmp" "${PACKAGE}" >&2) \
  || die "go build of ${PACKAGE}@${PION_WEBRTC_VERSION} failed"
mv "${binary}.tmp" "${binary}"
echo "${want}" >"${stamp}"
echo "${binary}"
