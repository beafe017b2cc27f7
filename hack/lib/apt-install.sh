# Sourced by the hack/ installers: `apt_install SERVICE PACKAGE...` installs Debian
# packages without recommends, non-interactively, as root (or through sudo), and leaves
# no system SERVICE running (`-` for none): the tests start their own instances, and a
# system one would only hold ports and state directories.
#
# The caller defines `log` and `die`.

apt_install() {
    local service=$1
    shift
    command -v apt-get >/dev/null 2>&1 \
        || die "apt-get not found; install $* (or their equivalents) any way you like"
    local as_root=()
    if [[ ${EUID} -ne 0 ]]; then
        command -v sudo >/dev/null 2>&1 || die "run as root (or install sudo): apt-get needs it"
        as_root=(sudo)
    fi

    # invoke-rc.d and deb-systemd-invoke ask /usr/sbin/policy-rc.d whether a package may
    # start its service; exit code 101 means "no".  Container images usually ship one;
    # when there is none, hold one in place for the install only.
    local policy=/usr/sbin/policy-rc.d made_policy=false
    if [[ ! -e ${policy} ]]; then
        printf '#!/bin/sh\n# temporary, from canarywatch hack/lib/apt-install.sh\nexit 101\n' \
            | "${as_root[@]}" tee "${policy}" >/dev/null
        "${as_root[@]}" chmod 0755 "${policy}"
        made_policy=true
    fi

    local apt=(env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300
        -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold)
    local status=0
    # A fresh image has empty package lists; a stale one may 404 on a superseded version.
    log "apt-get update"
    "${as_root[@]}" "${apt[@]}" update -qq || status=$?
    if [[ ${status} -eq 0 ]]; then
        log "apt-get install $* (without recommends)"
        "${as_root[@]}" "${apt[@]}" install -y -qq --no-install-recommends "$@" || status=$?
    fi
    if [[ ${made_policy} == true ]]; then
        "${as_root[@]}" rm -f "${policy}"
    fi
    [[ ${status} -eq 0 ]] || die "apt-get install $* failed (exit ${status})"

    # If something let the service start anyway (a policy that allows it, systemd's own
    # preset), stop it and keep it from starting at boot.
    [[ ${service} == - ]] && return 0
    if [[ -d /run/systemd/system ]] && command -v systemctl >/dev/null 2>&1; then
        "${as_root[@]}" systemctl disable --now "${service}.service" >/dev/null 2>&1 || true
    elif [[ -x /etc/init.d/${service} ]]; then
        "${as_root[@]}" "/etc/init.d/${service}" stop >/dev/null 2>&1 || true
    fi
}

# `apt_install_missing SERVICE PACKAGE...`: apt_install only the PACKAGEs not installed
# yet (none: says so and installs nothing), so an installer run twice is a no-op.
apt_install_missing() {
    local service=$1
    shift
    local missing=() pkg
    for pkg in "$@"; do
        if [[ "$(dpkg-query -W -f='${Status}' "${pkg}" 2>/dev/null || true)" != "install ok installed" ]]; then
            missing+=("${pkg}")
        fi
    done
    if [[ ${#missing[@]} -eq 0 ]]; then
        log "already installed: $*"
        return 0
    fi
    apt_install "${service}" "${missing[@]}"
}
