#!/usr/bin/env bash
# Fetches the prometheus-operator CRDs of the chart's optional objects (ServiceMonitor,
# PodMonitor, PrometheusRule) from the pinned upstream Go module, so the chart tier can
# install them into its real kube-apiserver and validate the rendered objects against
# their real schemas (server-side dry-run).
#
# Usage: hack/fetch-prometheus-operator-crds.sh        (prints the CRD directory)
#
# Source: the module github.com/prometheus-operator/prometheus-operator at the pinned
# version, through the Go module proxy (`go mod download`, verified against the checksum
# database); its module zip carries the repository's example/prometheus-operator-crd/
# folder, the files upstream's release bundle.yaml is made of. No other download.
#
# Output: $CANARYWATCH_TOOLS_DIR/prometheus-operator-crds/<version>/ (default
# <repo>/.cache/tools/..., git-ignored) with the three CRDs and a stamp. Idempotent: a
# complete folder is reused (~10 ms); a cold fetch takes a few seconds. The module cache
# is the tools dir's (go/mod, as hack/build-tools.sh), so nothing is written to $HOME.
set -euo pipefail

PROMETHEUS_OPERATOR_VERSION=v0.85.0
MODULE=github.com/prometheus-operator/prometheus-operator
# The CRDs the chart renders objects of; the test installs exactly these.
CRDS=(
  monitoring.coreos.com_servicemonitors.yaml
  monitoring.coreos.com_podmonitors.yaml
  monitoring.coreos.com_prometheusrules.yaml
)

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TOOLS_DIR="${CANARYWATCH_TOOLS_DIR:-${repo_root}/.cache/tools}"
mkdir -p "${TOOLS_DIR}"
TOOLS_DIR="$(cd "${TOOLS_DIR}" && pwd)"
OUT_DIR="${TOOLS_DIR}/prometheus-operator-crds/${PROMETHEUS_OPERATOR_VERSION}"
STAMP="${OUT_DIR}/.stamp"

log() { printf '[fetch-prometheus-operator-crds] %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

complete() {
  [[ -f "${STAMP}" && "$(cat "${STAMP}")" == "${MODULE}@${PROMETHEUS_OPERATOR_VERSION}" ]] || return 1
  local crd
  for crd in "${CRDS[@]}"; do [[ -s "${OUT_DIR}/${crd}" ]] || return 1; done
}

if complete; then
  printf '%s\n' "${OUT_DIR}"
  exit 0
fi

command -v go >/dev/null || die "the Go toolchain ('go') is not on PATH"
export GOMODCACHE="${CANARYWATCH_GOMODCACHE:-${TOOLS_DIR}/go/mod}"
export GOPATH="${TOOLS_DIR}/go/path" # checksum-database state only
export GOTOOLCHAIN="${GOTOOLCHAIN:-local}"
export GOFLAGS=-modcacherw # keep the module cache deletable (make clean)
export GOWORK=off
mkdir -p "${GOMODCACHE}" "${GOPATH}"

log "go mod download ${MODULE}@${PROMETHEUS_OPERATOR_VERSION}"
# Outside any module, with an explicit version: a plain download, verified against the
# checksum database like every other module the tools are built from.
json="$(cd "${TOOLS_DIR}" && go mod download -json "${MODULE}@${PROMETHEUS_OPERATOR_VERSION}")" \
  || die "go mod download failed: ${json}"
module_dir="$(sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p' <<<"${json}")"
[[ -n "${module_dir}" && -d "${module_dir}" ]] || die "no module directory in: ${json}"
src="${module_dir}/example/prometheus-operator-crd"
[[ -d "${src}" ]] || die "${src} is missing: the module layout changed; pick the CRDs' new folder"

tmp="$(mktemp -d "${TOOLS_DIR}/.prometheus-operator-crds.XXXXXX")"
trap 'rm -rf "${tmp}"' EXIT
for crd in "${CRDS[@]}"; do
  [[ -s "${src}/${crd}" ]] || die "${src}/${crd} is missing"
  cp "${src}/${crd}" "${tmp}/${crd}"
done
chmod -R u+w,go+rX "${tmp}" # mktemp makes it 0700; module files are read-only
printf '%s\n' "${MODULE}@${PROMETHEUS_OPERATOR_VERSION}" >"${tmp}/.stamp"
mkdir -p "$(dirname "${OUT_DIR}")"
rm -rf "${OUT_DIR}"
mv "${tmp}" "${OUT_DIR}"
trap - EXIT
log "CRDs in ${OUT_DIR}: ${CRDS[*]}"
printf '%s\n' "${OUT_DIR}"
