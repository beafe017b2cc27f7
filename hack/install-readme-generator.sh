#!/usr/bin/env bash
# Installs the bitnami readme-generator-for-helm (npm, pinned with its dependencies by
# hack/readme-generator/package-lock.json) into $CANARYWATCH_TOOLS_DIR/readme-generator,
# for the chart README: `make chart-readme` regenerates the parameter tables of
# charts/canarywatch/README.md from the `## @param` comments of values.yaml, and
# tests/chart/test_chart_readme.py fails when the committed README is not what it writes.
#
# Usage: hack/install-readme-generator.sh     (prints the generator's path)
#
# Idempotent: a stamp holding the lock file's hash skips `npm ci` when nothing changed.
# Needs node and npm (Debian: apt-get install nodejs npm).
set -euo pipefail

log() { printf '[install-readme-generator] %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
tools_dir="${CANARYWATCH_TOOLS_DIR:-${repo_root}/.cache/tools}"
target="${tools_dir}/readme-generator"
source_dir="${repo_root}/hack/readme-generator"
binary="${target}/node_modules/.bin/readme-generator"
stamp="${target}/.stamp"

command -v npm >/dev/null || die "npm is not on PATH (Debian: apt-get install nodejs npm)"
want="$(sha256sum "${source_dir}/package-lock.json" | cut -d' ' -f1)"
if [[ -x "${binary}" && -f "${stamp}" && "$(cat "${stamp}")" == "${want}" ]]; then
  echo "${binary}"
  exit 0
fi
mkdir -p "${target}"
cp "${source_dir}/package.json" "${source_dir}/package-lock.json" "${target}/"
log "npm ci in ${target}"
(cd "${target}" && npm ci --no-audit --no-fund --ignore-scripts >&2)
[[ -x "${binary}" ]] || die "npm ci did not install ${binary}"
echo "${want}" >"${stamp}"
echo "${binary}"
