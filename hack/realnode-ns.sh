#!/usr/bin/env bash
# The namespaces the realcluster tier's single-node Kubernetes lives in, and their
# teardown (tests/support/realnode.py drives this script; it also works by hand).
#
# Usage (as root):
#   hack/realnode-ns.sh create ID WORKDIR   a network namespace /run/netns/ID with the node's
#                                           addresses, and a persistent mount namespace
#                                           /run/canarywatch-realnode/ID/mnt for its processes
#   hack/realnode-ns.sh destroy ID          kill every process of node ID (daemons, shims,
#                                           containers), drop both namespaces, its cgroups
#                                           (/sys/fs/cgroup/*/ID) and its work dir
#   hack/realnode-ns.sh sweep               destroy every node whose owner process is gone
#                                           (what a killed test run left behind)
#   hack/realnode-ns.sh exec ID CMD...      run CMD inside node ID's namespaces
#
# ID must match ^cwrc-[a-z0-9]+$ so `sweep` never touches anything that is not ours.
#
# Inside the network namespace: `lo`, and a bridge without ports (`cwnode`, this kernel
# has no `dummy` links) holding the node address 10.231.0.1/24 and a default route,
# so nothing the node does can reach the host or anywhere else; the node's iptables
# rules (kube-proxy, kube-router, CNI) live and die with the namespace.  The host's
# own sysctls are untouched: ip_forward and bridge-nf-call-iptables are set in the
# namespace only.
#
# Inside the mount namespace (private propagation, so kubelet's volume mounts and
# containerd's sandbox netns mounts never reach the host and vanish with it):
#   * a fresh sysfs (it shows the node's network namespace, as `ip netns exec` gives),
#     with the host's cgroup mounts bound back under /sys/fs/cgroup;
#   * kubelet's cgroup root /ID made in every cgroup v1 hierarchy (cpuset filled in);
#   * read-only files over the six /proc/sys entries kubelet would otherwise set
#     VM-wide (vm.overcommit_memory, kernel.panic, ...), holding the values it wants.
set -euo pipefail

NODE_IP=10.231.0.1
NODE_PREFIX=24
NODE_BRIDGE=cwnode
RUN_ROOT=/run/canarywatch-realnode
# kubelet's desired kernel tunables (pkg/kubelet/cm/container_manager_linux.go).
KUBELET_SYSCTLS=(vm/overcommit_memory=1 vm/panic_on_oom=0 kernel/panic=10 kernel/panic_on_oops=1
    kernel/keys/root_maxkeys=1000000 kernel/keys/root_maxbytes=25000000)

log() { printf '[realnode-ns] %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

valid_id() { [[ "$1" =~ ^cwrc-[a-z0-9]+$ ]] || die "bad node id '$1' (expected cwrc-[a-z0-9]+)"; }

# The run dir must be a private mount point for the mount-namespace file to be bound in it.
prepare_run_root() {
    mkdir -p "${RUN_ROOT}"
    if ! mountpoint -q "${RUN_ROOT}"; then
        mount --bind "${RUN_ROOT}" "${RUN_ROOT}"
    fi
    mount --make-private "${RUN_ROOT}"
}

create() { # ID WORKDIR
    local id="$1" workdir="$2" dir="${RUN_ROOT}/$1"
    valid_id "${id}"
    [[ -d "${workdir}" ]] || die "work dir ${workdir} does not exist"
    prepare_run_root
    mkdir -p "${dir}"
    printf '%s\n' "${workdir}" >"${dir}/workdir"

    ip netns add "${id}"
    local nsx=(ip netns exec "${id}")
    "${nsx[@]}" ip link set lo up
    "${nsx[@]}" ip link add "${NODE_BRIDGE}" type bridge
    "${nsx[@]}" ip addr add "${NODE_IP}/${NODE_PREFIX}" dev "${NODE_BRIDGE}"
    "${nsx[@]}" ip link set "${NODE_BRIDGE}" up
    "${nsx[@]}" ip route add default dev "${NODE_BRIDGE}"
    "${nsx[@]}" sysctl -qw net.ipv4.ip_forward=1
    "${nsx[@]}" sysctl -qw net.bridge.bridge-nf-call-iptables=1 2>/dev/null || true

    # kubelet's cgroup root (cgroupRoot: /ID), in every cgroup v1 hierarchy; a new
    # cpuset cgroup has no CPUs or memory nodes until given its parent's.
    local hierarchy
    for hierarchy in /sys/fs/cgroup/*/; do
        [[ -f "${hierarchy}cgroup.procs" && ! -f "${hierarchy}cgroup.controllers" ]] || continue
        mkdir -p "${hierarchy}${id}"
    done
    if [[ -d /sys/fs/cgroup/cpuset/${id} ]]; then
        cat /sys/fs/cgroup/cpuset/cpuset.cpus >"/sys/fs/cgroup/cpuset/${id}/cpuset.cpus"
        cat /sys/fs/cgroup/cpuset/cpuset.mems >"/sys/fs/cgroup/cpuset/${id}/cpuset.mems"
    fi

    local sysctl_dir="${workdir}/kubelet-sysctls" entry
    mkdir -p "${sysctl_dir}"
    for entry in "${KUBELET_SYSCTLS[@]}"; do
        printf '%s\n' "${entry#*=}" >"${sysctl_dir}/$(tr / . <<<"${entry%%=*}")"
    done
    touch "${dir}/mnt"
    # The mount namespace is made inside the network namespace, so its sysfs is the node's.
    nsenter --net="/run/netns/${id}" unshare --mount="${dir}/mnt" --propagation private \
        bash -euo pipefail -c '
            workdir="$1"; shift
            cg="${workdir}/.cgroup-bind"
            mkdir -p "${cg}"
            mount --rbind /sys/fs/cgroup "${cg}"
            umount -l /sys
            mount -t sysfs sysfs /sys
            mount --rbind "${cg}" /sys/fs/cgroup
            umount -l "${cg}"
            rmdir "${cg}"
            for entry in "$@"; do
                name="${entry%%=*}"
                file="${workdir}/kubelet-sysctls/$(tr / . <<<"${name}")"
                mount --bind "${file}" "/proc/sys/${name}"
                mount -o remount,bind,ro "/proc/sys/${name}"
            done
        ' realnode-ns "${workdir}" "${KUBELET_SYSCTLS[@]}"
    log "node ${id}: netns /run/netns/${id} (${NODE_IP} on ${NODE_BRIDGE}), mount ns ${dir}/mnt"
}

# Every pid whose network or mount namespace is node ID's, and every pid in its cgroups.
node_pids() { # ID
    local id="$1" dir="${RUN_ROOT}/$1" netns_ino="" mnt_ino="" pid
    [[ -e "/run/netns/${id}" ]] && netns_ino="$(stat -L -c %i "/run/netns/${id}" 2>/dev/null || true)"
    [[ -e "${dir}/mnt" ]] && mnt_ino="$(stat -L -c %i "${dir}/mnt" 2>/dev/null || true)"
    for pid in /proc/[0-9]*; do
        pid="${pid#/proc/}"
        [[ "${pid}" != "$$" && "${pid}" != "${BASHPID}" ]] || continue
        if [[ -n "${netns_ino}" && "$(stat -L -c %i "/proc/${pid}/ns/net" 2>/dev/null)" == "${netns_ino}" ]] \
            || [[ -n "${mnt_ino}" && "$(stat -L -c %i "/proc/${pid}/ns/mnt" 2>/dev/null)" == "${mnt_ino}" ]]; then
            printf '%s\n' "${pid}"
        fi
    done
    find /sys/fs/cgroup/*/"${id}" -name cgroup.procs -exec cat {} + 2>/dev/null || true
}

kill_node_processes() { # ID
    local id="$1" round pids
    for round in 1 2 3 4 5 6 7 8 9 10; do
        mapfile -t pids < <(node_pids "${id}" | sort -u)
        [[ ${#pids[@]} -gt 0 ]] || return 0
        # Frozen containers cannot die: thaw them first.
        find /sys/fs/cgroup/freezer/"${id}" -name freezer.state 2>/dev/null \
            | while read -r f; do echo THAWED >"${f}" 2>/dev/null || true; done
        kill -KILL "${pids[@]}" 2>/dev/null || true
        sleep "0.${round}"
    done
    mapfile -t pids < <(node_pids "${id}" | sort -u)
    [[ ${#pids[@]} -eq 0 ]] || log "warning: node ${id}: processes still alive: ${pids[*]}"
}

remove_cgroups() { # ID
    local id="$1" round left
    for round in 1 2 3 4 5; do
        # Deepest first; a cgroup dir is removed with rmdir, never rm -r.
        find /sys/fs/cgroup/*/"${id}" -depth -type d -exec rmdir {} + 2>/dev/null || true
        left="$(find /sys/fs/cgroup/*/"${id}" -maxdepth 0 -type d 2>/dev/null | head -n1 || true)"
        [[ -n "${left}" ]] || return 0
        sleep "0.${round}"
    done
    log "warning: node ${id}: cgroups left: $(find /sys/fs/cgroup/*/"${id}" -maxdepth 0 -type d 2>/dev/null | tr '\n' ' ')"
}

destroy() { # ID
    local id="$1" dir="${RUN_ROOT}/$1" workdir=""
    valid_id "${id}"
    [[ -f "${dir}/workdir" ]] && workdir="$(cat "${dir}/workdir")"
    kill_node_processes "${id}"
    if [[ -e "${dir}/mnt" ]]; then
        umount "${dir}/mnt" 2>/dev/null || umount -l "${dir}/mnt" 2>/dev/null || true
    fi
    if [[ -e "/run/netns/${id}" ]]; then
        ip netns del "${id}" 2>/dev/null || { umount -l "/run/netns/${id}" 2>/dev/null; rm -f "/run/netns/${id}"; }
    fi
    remove_cgroups "${id}"
    # Only a work dir this script was told about, and only under a temp dir.
    if [[ -n "${workdir}" && -d "${workdir}" && "${workdir}" == /tmp/canarywatch-realnode-* ]]; then
        # Anything still mounted there (a run killed mid-create) would make rm fail.
        { grep -F " ${workdir}/" /proc/self/mounts || true; } | awk '{print $2}' | sort -r \
            | while read -r m; do umount -l "${m}" 2>/dev/null || true; done
        rm -rf --one-file-system "${workdir}"
    fi
    rm -rf "${dir}"
    drop_run_root_if_empty
    log "node ${id}: destroyed"
}

# The last node gone: drop the run dir's private bind mount too (create makes it again).
drop_run_root_if_empty() {
    if [[ -d "${RUN_ROOT}" ]] && [[ -z "$(ls -A "${RUN_ROOT}")" ]]; then
        umount "${RUN_ROOT}" 2>/dev/null || true
        rmdir "${RUN_ROOT}" 2>/dev/null || true
    fi
}

sweep() {
    local dir id owner
    for dir in "${RUN_ROOT}"/cwrc-*; do
        [[ -d "${dir}" ]] || continue
        id="${dir##*/}"
        owner="$(cat "${dir}/owner.pid" 2>/dev/null || true)"
        if [[ -n "${owner}" ]] && kill -0 "${owner}" 2>/dev/null; then
            continue # its test run is still going
        fi
        log "node ${id}: owner ${owner:-?} is gone; destroying what it left"
        destroy "${id}"
    done
    # A network namespace of ours without a run dir (killed between the two steps).
    local orphans
    mapfile -t orphans < <(ip netns list 2>/dev/null | awk '{print $1}' | grep -E '^cwrc-[a-z0-9]+$' || true)
    for id in "${orphans[@]}"; do
        [[ -d "${RUN_ROOT}/${id}" ]] || destroy "${id}"
    done
    drop_run_root_if_empty
}

[[ ${EUID} -eq 0 ]] || die "run as root: namespaces, mounts and cgroups need it"
cmd="${1:-}"
shift || true
# One create/destroy/sweep at a time on this machine (two test runs may overlap); the
# lock is on this script itself, so nothing is left behind for it.
if [[ "${cmd}" != exec ]]; then
    exec 8<"${BASH_SOURCE[0]}"
    flock 8
fi
case "${cmd}" in
    create) [[ $# -eq 2 ]] || die "usage: $0 create ID WORKDIR"; create "$1" "$2" ;;
    destroy) [[ $# -eq 1 ]] || die "usage: $0 destroy ID"; destroy "$1" ;;
    sweep) [[ $# -eq 0 ]] || die "usage: $0 sweep"; sweep ;;
    exec)
        [[ $# -ge 2 ]] || die "usage: $0 exec ID CMD..."
        id="$1"; shift; valid_id "${id}"
        exec nsenter --net="/run/netns/${id}" --mount="${RUN_ROOT}/${id}/mnt" -- "$@"
        ;;
    *) sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//'; exit 2 ;;
esac
