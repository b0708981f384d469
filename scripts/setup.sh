#!/usr/bin/env bash
# Install what Basalt needs to build and test on Debian 12. Idempotent and quick when
# nothing is missing: each package is checked with dpkg-query first, `apt-get update` runs
# at most once and only when something has to be installed.
#
# Usage: scripts/setup.sh
set -euo pipefail

PACKAGES=(
    libucx-dev ucx-utils libibverbs-dev librdmacm-dev pkg-config
    clang libclang-dev protobuf-compiler libprotobuf-dev
    etcd-server fio libnbd-bin nbdkit qemu-utils liburing-dev
    iproute2 iptables procps
    gcc dpkg-dev
    g++
)

export DEBIAN_FRONTEND=noninteractive

# Run as root directly; otherwise through sudo when it exists.
SUDO=()
if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1; then
        SUDO=(sudo -n --preserve-env=DEBIAN_FRONTEND)
    else
        # Only fatal if something actually needs root (no_root fails then).
        SUDO=(no_root)
    fi
fi

no_root() {
    echo "setup.sh: need root for: $*; run as root or install sudo" >&2
    return 1
}

installed() {
    [ "$(dpkg-query -W -f='${Status}' "$1" 2>/dev/null || true)" = "install ok installed" ]
}

missing=()
for p in "${PACKAGES[@]}"; do
    installed "$p" || missing+=("$p")
done

did=()
if [ "${#missing[@]}" -gt 0 ]; then
    "${SUDO[@]}" apt-get update -o DPkg::Lock::Timeout=600 -qq
    "${SUDO[@]}" apt-get install -y -qq -o DPkg::Lock::Timeout=600 --no-install-recommends \
        "${missing[@]}" >/dev/null
    did+=("installed ${missing[*]}")
fi

# Debian's etcd-server package starts a system etcd on 2379/2380 when an init system is
# present. Our test etcds never use those ports (they pick free ports and own data dirs),
# so a package-started one only gets in the way: stop and disable it. Never touch any
# other etcd.
stop_system_etcd() {
    local stopped=0
    if command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
        if systemctl is-active --quiet etcd 2>/dev/null; then
            "${SUDO[@]}" systemctl stop etcd && stopped=1
        fi
        if systemctl is-enabled --quiet etcd 2>/dev/null; then
            "${SUDO[@]}" systemctl disable --quiet etcd || true
        fi
    elif [ -x /etc/init.d/etcd ] && command -v service >/dev/null 2>&1; then
        if service etcd status >/dev/null 2>&1; then
            "${SUDO[@]}" service etcd stop >/dev/null 2>&1 && stopped=1
        fi
        if command -v update-rc.d >/dev/null 2>&1; then
            "${SUDO[@]}" update-rc.d etcd disable >/dev/null 2>&1 || true
        fi
    fi
    # Last resort: an etcd still serving the package's default client port 2379 and run
    # as the package's `etcd` user or with its data dir (/var/lib/etcd) is the package's;
    # signal that pid only.
    if command -v ss >/dev/null 2>&1; then
        local pid
        for pid in $(ss -Hltnp 'sport = :2379' 2>/dev/null | grep -o 'pid=[0-9]*' | cut -d= -f2 | sort -u); do
            if [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = etcd ] \
                && { [ "$(stat -c %U "/proc/$pid" 2>/dev/null)" = etcd ] \
                    || tr '\0' ' ' <"/proc/$pid/cmdline" | grep -q -- '/var/lib/etcd' \
                    || tr '\0' '\n' <"/proc/$pid/environ" 2>/dev/null | grep -q '^ETCD_DATA_DIR=/var/lib/etcd'; }; then
                "${SUDO[@]}" kill "$pid" && stopped=1
            fi
        done
    fi
    if [ "$stopped" -eq 1 ]; then
        did+=("stopped the package's system etcd on :2379")
    fi
}
stop_system_etcd

if ! cargo fmt --version >/dev/null 2>&1 || ! cargo clippy --version >/dev/null 2>&1; then
    if command -v rustup >/dev/null 2>&1; then
        rustup component add rustfmt clippy
        did+=("added rustfmt and clippy")
    else
        echo "setup.sh: cargo fmt/clippy missing and no rustup to add them" >&2
        exit 1
    fi
fi

if ! cargo nextest --version >/dev/null 2>&1; then
    cargo install cargo-nextest --locked
    did+=("installed cargo-nextest")
fi

# The bounded fuzz step (scripts/fuzz.sh --ci) drives its stable, sanitizer-free build
# through cargo-fuzz; libFuzzer itself is C++ (built by libfuzzer-sys with g++, above).
if ! cargo fuzz --version >/dev/null 2>&1; then
    cargo install cargo-fuzz --locked
    did+=("installed cargo-fuzz")
fi

if [ "${#did[@]}" -eq 0 ]; then
    echo "setup.sh: all ${#PACKAGES[@]} packages, cargo-nextest and cargo-fuzz present; nothing to do"
else
    printf 'setup.sh: %s\n' "$(IFS=';'; echo "${did[*]}")"
fi
