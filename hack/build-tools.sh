#!/usr/bin/env bash
# Builds the pinned upstream binaries the cluster and chart test tiers run:
#   kube-apiserver, kube-controller-manager, kubectl  (k8s.io/kubernetes)
#   etcd                                              (go.etcd.io/etcd/server/v3)
#   helm   (Helm 3, the previous major, still supported) (helm.sh/helm/v3)
#   helm4  (Helm 4, the current major)                  (helm.sh/helm/v4)
# and, for the realcluster tier's node (`node`, not built by default):
#   kubelet, kube-proxy, kube-scheduler               (k8s.io/kubernetes)
#   coredns                                           (github.com/coredns/coredns)
#   kube-router (its NetworkPolicy firewall only)     (github.com/cloudnativelabs/kube-router/v2)
#   pause (the pod sandbox's process)                 (kubernetes' build/pause/linux/pause.c, gcc -static)
# from source, with the local Go toolchain, through the Go module proxy.
#
# Usage: hack/build-tools.sh [--prune] [TOOL... | all | node]   (default: all)
#   all      kube-apiserver kube-controller-manager kubectl etcd helm helm4
#   node     all of the above plus the node tools
#   --prune  afterwards delete the Go build and module caches (~5.6 GB), keeping only
#            bin/ (~360 MB); a later rebuild then starts cold (~10 min).
#
# Output: $CANARYWATCH_TOOLS_DIR/bin (default <repo>/.cache/tools/bin).  Each binary
# has a stamp file bin/.NAME.stamp holding the version and build recipe; a binary whose
# stamp matches is not rebuilt, so the script is cheap to run again.
#
# The Go build and module caches live under the tools dir as well (go/cache, go/mod,
# and GOPATH=go/path for the checksum database's state), so nothing is written to
# $HOME and `rm -rf <tools dir>` starts from scratch.  Override with CANARYWATCH_GOCACHE
# and CANARYWATCH_GOMODCACHE, e.g. to share the module cache with your own Go work:
# CANARYWATCH_GOMODCACHE="$(go env GOMODCACHE)" (--prune then leaves it alone).
#
# Each tool is built in its own throwaway module under src/NAME, which requires the
# pinned upstream module.  Upstream `replace` directives are ignored in a dependency,
# so for k8s.io/kubernetes every staging module (k8s.io/api, apimachinery, …, which
# kubernetes requires as v0.0.0 and replaces with ./staging/src/…) is replaced with its
# published v0.MINOR.PATCH tag; the list is read from the pinned kubernetes go.mod.
set -euo pipefail

KUBERNETES_VERSION=v1.37.2   # kube-apiserver, kube-controller-manager, kubectl
ETCD_VERSION=v3.7.3          # the etcd line kubernetes v1.37 is tested with (3.7.x)
HELM_VERSION=v3.22.0         # built against k8s.io client libraries v0.37
HELM4_VERSION=v4.3.2         # the current major; the chart tier runs with both
COREDNS_VERSION=v1.14.7      # cluster DNS for the realcluster node
KUBE_ROUTER_VERSION=v2.1.0   # the v2 line the module proxy serves; firewall only
# Bumped when the build recipe (flags, layout) changes, to force a rebuild.
RECIPE=1

ALL_TOOLS=(kube-apiserver kube-controller-manager kubectl etcd helm helm4)
NODE_TOOLS=(kubelet kube-proxy kube-scheduler coredns kube-router pause)

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TOOLS_DIR="${CANARYWATCH_TOOLS_DIR:-${repo_root}/.cache/tools}"
mkdir -p "${TOOLS_DIR}"
TOOLS_DIR="$(cd "${TOOLS_DIR}" && pwd)"
BIN_DIR="${TOOLS_DIR}/bin"
SRC_DIR="${TOOLS_DIR}/src"
mkdir -p "${BIN_DIR}" "${SRC_DIR}"

log() { printf '[build-tools] %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

# ---- arguments ------------------------------------------------------------------
tools=()
prune=false
for arg in "$@"; do
  case "${arg}" in
    -h | --help)
      sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//'
      exit 0
      ;;
    --prune) prune=true ;;
    all) tools+=("${ALL_TOOLS[@]}") ;;
    node) tools+=("${ALL_TOOLS[@]}" "${NODE_TOOLS[@]}") ;;
    kube-apiserver | kube-controller-manager | kubectl | etcd | helm | helm4) tools+=("${arg}") ;;
    kubelet | kube-proxy | kube-scheduler | coredns | kube-router | pause) tools+=("${arg}") ;;
    *) die "unknown tool '${arg}' (known: ${ALL_TOOLS[*]} ${NODE_TOOLS[*]})" ;;
  esac
done
[[ ${#tools[@]} -gt 0 ]] || tools=("${ALL_TOOLS[@]}")

# ---- one build at a time per tools dir -----------------------------------------
exec 9>"${TOOLS_DIR}/.build.lock"
if ! flock -n 9; then
  log "another build-tools.sh holds ${TOOLS_DIR}/.build.lock; waiting"
  flock 9
fi

# ---- Go environment --------------------------------------------------------------
command -v go >/dev/null || die "the Go toolchain ('go') is not on PATH"
export GOCACHE="${CANARYWATCH_GOCACHE:-${TOOLS_DIR}/go/cache}"
export GOMODCACHE="${CANARYWATCH_GOMODCACHE:-${TOOLS_DIR}/go/mod}"
# GOPATH only holds the checksum database's state (pkg/sumdb) in module mode.
export GOPATH="${TOOLS_DIR}/go/path"
# -mod=mod: the throwaway modules get their go.sum written on the first build.
# -modcacherw: keep the module cache writable so `rm -rf .cache` (make clean) works.
export GOFLAGS="${GOFLAGS:+${GOFLAGS} }-mod=mod -modcacherw"
export CGO_ENABLED=0 # static binaries, as upstream ships them
export GOWORK=off
unset GOOS GOARCH GOBIN

stamp_of() { printf '%s recipe=%s\n' "$1" "${RECIPE}"; }

up_to_date() { # NAME VERSION
  local bin="${BIN_DIR}/$1" stamp="${BIN_DIR}/.$1.stamp"
  [[ -x "${bin}" && -f "${stamp}" && "$(cat "${stamp}")" == "$(stamp_of "$2")" ]]
}

want() { # NAME -> was it asked for?
  local t
  for t in "${tools[@]}"; do [[ "${t}" == "$1" ]] && return 0; done
  return 1
}

# The toolchain: GOTOOLCHAIN=local when the installed go is new enough for every
# pinned module's `go` line; otherwise stop and say so (set GOTOOLCHAIN yourself,
# e.g. GOTOOLCHAIN=go1.26.0, to let go fetch that toolchain as a module).
go_version="$(go env GOVERSION)"
go_version="${go_version#go}"
go_version="${go_version%%[-+ ]*}"
version_ge() { [[ "$(printf '%s\n%s\n' "$1" "$2" | sort -V | head -n1)" == "$2" ]]; }

# Downloads MODULE@VERSION (if needed) and prints the path of its go.mod.
module_gomod() {
  local out
  out="$(cd "${SRC_DIR}" && GOFLAGS=-modcacherw GOTOOLCHAIN=local go mod download -json "$1@$2")" \
    || die "go mod download $1@$2 failed: ${out}"
  sed -n 's/^[[:space:]]*"GoMod": "\(.*\)",$/\1/p' <<<"${out}"
}

check_toolchain() { # MODULE GOMOD_PATH
  local need
  need="$(sed -n 's/^go \([0-9.]*\).*/\1/p' "$2" | head -n1)"
  [[ -n "${need}" && "${GOTOOLCHAIN}" == local ]] || return 0
  version_ge "${go_version}" "${need}" \
    || die "$1 needs go >= ${need}, the local go is ${go_version};" \
      "install a newer Go, or run with GOTOOLCHAIN=go${need} to have go fetch that toolchain"
}
# An explicit GOTOOLCHAIN from the caller is respected; otherwise only the local go.
export GOTOOLCHAIN="${GOTOOLCHAIN:-local}"

# Minimal `go.mod` for a throwaway module: writes src/NAME/go.mod (+ replaces).
write_module() { # DIR GO_VERSION REQUIRE_LINE [REPLACE_LINE...]
  local dir="$1" gover="$2" req="$3"
  shift 3
  mkdir -p "${dir}"
  {
    echo "// Generated by hack/build-tools.sh; throwaway module that builds pinned tools."
    echo "module canarywatch.invalid/tools/$(basename "${dir}")"
    echo
    echo "go ${gover}"
    echo
    echo "require ${req}"
    if [[ $# -gt 0 ]]; then
      echo
      echo "replace ("
      printf '\t%s\n' "$@"
      echo ")"
    fi
  } >"${dir}/go.mod.new"
  # Keep the existing go.mod/go.sum (already resolved) when the header is unchanged.
  if [[ -f "${dir}/go.mod.head" ]] && cmp -s "${dir}/go.mod.new" "${dir}/go.mod.head"; then
    rm -f "${dir}/go.mod.new"
  else
    cp "${dir}/go.mod.new" "${dir}/go.mod.head"
    mv "${dir}/go.mod.new" "${dir}/go.mod"
    rm -f "${dir}/go.sum"
  fi
}

timings=()
# go build PACKAGE into bin/NAME, timed, niced, atomically installed, stamped.
build_one() { # NAME VERSION MODULE_DIR PACKAGE LDFLAGS
  local name="$1" version="$2" dir="$3" pkg="$4" ldflags="$5" start end secs
  log "building ${name} ${version} (${pkg}) ..."
  start="$(date +%s.%N)"
  (cd "${dir}" && nice -n 10 go build -trimpath -ldflags "${ldflags}" \
    -o "${BIN_DIR}/.${name}.tmp" "${pkg}")
  mv -f "${BIN_DIR}/.${name}.tmp" "${BIN_DIR}/${name}"
  stamp_of "${version}" >"${BIN_DIR}/.${name}.stamp"
  end="$(date +%s.%N)"
  secs="$(awk -v a="${start}" -v b="${end}" 'BEGIN { printf "%.0f", b - a }')"
  timings+=("${name} ${version}: built in ${secs}s")
  printf '%s %s %ss %s\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "${name}" "${secs}" "${version}" \
    >>"${TOOLS_DIR}/build-times.log"
  log "built ${name} ${version} in ${secs}s"
}

skip_or_build() { # NAME VERSION -> 0 if it must be built
  want "$1" || return 1
  if up_to_date "$1" "$2"; then
    timings+=("$1 $2: up to date")
    return 1
  fi
  return 0
}

# ---- kubernetes: kube-apiserver, kube-controller-manager, kubectl (+ node tools) ---
k8s_needed=()
for t in kube-apiserver kube-controller-manager kubectl kubelet kube-proxy kube-scheduler; do
  if skip_or_build "${t}" "${KUBERNETES_VERSION}"; then k8s_needed+=("${t}"); fi
done
if [[ ${#k8s_needed[@]} -gt 0 ]]; then
  k8s_gomod="$(module_gomod k8s.io/kubernetes "${KUBERNETES_VERSION}")"
  check_toolchain k8s.io/kubernetes "${k8s_gomod}"
  k8s_go="$(sed -n 's/^go \([0-9.]*\).*/\1/p' "${k8s_gomod}" | head -n1)"
  staging_version="v0.${KUBERNETES_VERSION#v1.}"
  # `k8s.io/api => ./staging/src/k8s.io/api` -> `k8s.io/api => k8s.io/api v0.37.2`
  mapfile -t staging < <(sed -n 's|^[[:space:]]*\(k8s\.io/[^ ]*\) => \./staging/src/.*|\1|p' "${k8s_gomod}")
  [[ ${#staging[@]} -gt 0 ]] || die "found no staging replaces in ${k8s_gomod}"
  replaces=()
  for m in "${staging[@]}"; do replaces+=("${m} => ${m} ${staging_version}"); done
  k8s_dir="${SRC_DIR}/kubernetes"
  write_module "${k8s_dir}" "${k8s_go}" "k8s.io/kubernetes ${KUBERNETES_VERSION}" "${replaces[@]}"
  # Version info, as kubernetes' hack/lib/version.sh sets it (no git commit: the
  # module zip carries none).  buildDate is the release tag's time, for reproducibility.
  k8s_minor="${KUBERNETES_VERSION#v1.}"
  k8s_minor="${k8s_minor%%.*}"
  k8s_date="$(sed -n 's/.*"Time":"\([^"]*\)".*/\1/p' "${k8s_gomod%.mod}.info" 2>/dev/null || true)"
  k8s_ldflags="-s -w"
  for pkgpath in k8s.io/client-go/pkg/version k8s.io/component-base/version; do
    k8s_ldflags+=" -X ${pkgpath}.gitVersion=${KUBERNETES_VERSION}"
    k8s_ldflags+=" -X ${pkgpath}.gitMajor=1 -X ${pkgpath}.gitMinor=${k8s_minor}"
    k8s_ldflags+=" -X ${pkgpath}.gitTreeState=clean"
    [[ -z "${k8s_date}" ]] || k8s_ldflags+=" -X ${pkgpath}.buildDate=${k8s_date}"
  done
  for t in "${k8s_needed[@]}"; do
    build_one "${t}" "${KUBERNETES_VERSION}" "${k8s_dir}" "k8s.io/kubernetes/cmd/${t}" "${k8s_ldflags}"
  done
fi

# ---- pause: the pod sandbox's process, C from the pinned kubernetes module ----------
# Static, as upstream's pause image ships it; the image itself is packed by the tests.
if skip_or_build pause "${KUBERNETES_VERSION}"; then
  command -v gcc >/dev/null || die "gcc is needed to build pause (apt-get install gcc libc6-dev)"
  module_gomod k8s.io/kubernetes "${KUBERNETES_VERSION}" >/dev/null # fetches the module source
  pause_src="${GOMODCACHE}/k8s.io/kubernetes@${KUBERNETES_VERSION}/build/pause/linux/pause.c"
  [[ -f "${pause_src}" ]] || die "no ${pause_src} in the kubernetes module"
  log "building pause ${KUBERNETES_VERSION} (gcc -static ${pause_src##*/}) ..."
  gcc -Os -Wall -Werror -static -DVERSION="${KUBERNETES_VERSION}-canarywatch" \
    -o "${BIN_DIR}/.pause.tmp" "${pause_src}"
  strip "${BIN_DIR}/.pause.tmp"
  mv -f "${BIN_DIR}/.pause.tmp" "${BIN_DIR}/pause"
  stamp_of "${KUBERNETES_VERSION}" >"${BIN_DIR}/.pause.stamp"
  timings+=("pause ${KUBERNETES_VERSION}: built")
fi

# ---- etcd ------------------------------------------------------------------------
if skip_or_build etcd "${ETCD_VERSION}"; then
  etcd_gomod="$(module_gomod go.etcd.io/etcd/server/v3 "${ETCD_VERSION}")"
  check_toolchain go.etcd.io/etcd/server/v3 "${etcd_gomod}"
  etcd_go="$(sed -n 's/^go \([0-9.]*\).*/\1/p' "${etcd_gomod}" | head -n1)"
  # etcd's own replaces point at sibling directories of its repository; the
  # published go.etcd.io/etcd/{api,client/pkg,client/v3,pkg}/v3 modules carry the
  # same tag, and server/v3's go.mod requires exactly those versions.
  etcd_dir="${SRC_DIR}/etcd"
  write_module "${etcd_dir}" "${etcd_go}" "go.etcd.io/etcd/server/v3 ${ETCD_VERSION}"
  build_one etcd "${ETCD_VERSION}" "${etcd_dir}" go.etcd.io/etcd/server/v3 "-s -w"
fi

# ---- helm ------------------------------------------------------------------------
if skip_or_build helm "${HELM_VERSION}"; then
  helm_gomod="$(module_gomod helm.sh/helm/v3 "${HELM_VERSION}")"
  check_toolchain helm.sh/helm/v3 "${helm_gomod}"
  helm_go="$(sed -n 's/^go \([0-9.]*\).*/\1/p' "${helm_gomod}" | head -n1)"
  helm_dir="${SRC_DIR}/helm"
  write_module "${helm_dir}" "${helm_go}" "helm.sh/helm/v3 ${HELM_VERSION}"
  # As helm's Makefile: the k8s version helm assumes for lint/template = client-go's.
  cg="$(sed -n 's/^[[:space:]]*k8s\.io\/client-go v0\.\([0-9]*\)\..*/\1/p' "${helm_gomod}" | head -n1)"
  helm_ldflags="-s -w -X helm.sh/helm/v3/internal/version.version=${HELM_VERSION}"
  helm_ldflags+=" -X helm.sh/helm/v3/internal/version.gitTreeState=clean"
  if [[ -n "${cg}" ]]; then
    for p in helm.sh/helm/v3/pkg/lint/rules helm.sh/helm/v3/pkg/chartutil; do
      helm_ldflags+=" -X ${p}.k8sVersionMajor=1 -X ${p}.k8sVersionMinor=${cg}"
    done
  fi
  build_one helm "${HELM_VERSION}" "${helm_dir}" helm.sh/helm/v3/cmd/helm "${helm_ldflags}"
fi

# ---- helm4: Helm 4 (cmd/helm of helm.sh/helm/v4), installed as bin/helm4 ----------
# Helm 4 reads the Kubernetes version it assumes for lint/template from its build info
# (client-go's module version), so only its own version is stamped in.
if skip_or_build helm4 "${HELM4_VERSION}"; then
  helm4_gomod="$(module_gomod helm.sh/helm/v4 "${HELM4_VERSION}")"
  check_toolchain helm.sh/helm/v4 "${helm4_gomod}"
  helm4_go="$(sed -n 's/^go \([0-9.]*\).*/\1/p' "${helm4_gomod}" | head -n1)"
  helm4_dir="${SRC_DIR}/helm4"
  write_module "${helm4_dir}" "${helm4_go}" "helm.sh/helm/v4 ${HELM4_VERSION}"
  helm4_ldflags="-s -w -X helm.sh/helm/v4/internal/version.version=${HELM4_VERSION}"
  helm4_ldflags+=" -X helm.sh/helm/v4/internal/version.metadata="
  helm4_ldflags+=" -X helm.sh/helm/v4/internal/version.gitTreeState=clean"
  build_one helm4 "${HELM4_VERSION}" "${helm4_dir}" helm.sh/helm/v4/cmd/helm "${helm4_ldflags}"
fi

# ---- coredns (cluster DNS of the realcluster node) ---------------------------------
if skip_or_build coredns "${COREDNS_VERSION}"; then
  coredns_gomod="$(module_gomod github.com/coredns/coredns "${COREDNS_VERSION}")"
  check_toolchain github.com/coredns/coredns "${coredns_gomod}"
  coredns_go="$(sed -n 's/^go \([0-9.]*\).*/\1/p' "${coredns_gomod}" | head -n1)"
  coredns_dir="${SRC_DIR}/coredns"
  write_module "${coredns_dir}" "${coredns_go}" "github.com/coredns/coredns ${COREDNS_VERSION}"
  build_one coredns "${COREDNS_VERSION}" "${coredns_dir}" github.com/coredns/coredns \
    "-s -w -X github.com/coredns/coredns/coremain.GitCommit=${COREDNS_VERSION}"
fi

# ---- kube-router (NetworkPolicy enforcement of the realcluster node) ---------------
if skip_or_build kube-router "${KUBE_ROUTER_VERSION}"; then
  kr_gomod="$(module_gomod github.com/cloudnativelabs/kube-router/v2 "${KUBE_ROUTER_VERSION}")"
  check_toolchain github.com/cloudnativelabs/kube-router/v2 "${kr_gomod}"
  kr_go="$(sed -n 's/^go \([0-9.]*\).*/\1/p' "${kr_gomod}" | head -n1)"
  kr_dir="${SRC_DIR}/kube-router"
  write_module "${kr_dir}" "${kr_go}" "github.com/cloudnativelabs/kube-router/v2 ${KUBE_ROUTER_VERSION}"
  build_one kube-router "${KUBE_ROUTER_VERSION}" "${kr_dir}" \
    github.com/cloudnativelabs/kube-router/v2/cmd/kube-router \
    "-s -w -X github.com/cloudnativelabs/kube-router/v2/pkg/version.Version=${KUBE_ROUTER_VERSION}"
fi

# ---- summary ---------------------------------------------------------------------
if [[ "${prune}" == true ]]; then
  log "pruning the Go caches (${GOCACHE}, ${GOMODCACHE})"
  go clean -cache
  # Only a module cache of our own: never someone's shared GOMODCACHE.
  if [[ -z "${CANARYWATCH_GOMODCACHE:-}" ]]; then go clean -modcache; fi
fi
for line in "${timings[@]}"; do log "${line}"; done
log "binaries in ${BIN_DIR}: $(find "${BIN_DIR}" -maxdepth 1 -type f -perm -u+x -printf '%f ')"
log "disk: $(du -sh "${BIN_DIR}" | cut -f1) bin, $(du -sh "${TOOLS_DIR}" | cut -f1) total in ${TOOLS_DIR}"
