#!/usr/bin/env bash
# Basalt's full check: what CI runs (`bash .ci/run` execs this) and what every change must
# pass. Installs missing system packages (scripts/setup.sh), then: rustfmt, clippy without
# and with UCX, the whole test suite without and with UCX (cargo-nextest, profile `ci`:
# every test bounded, see .config/nextest.toml), a benchmark smoke run, and the
# cluster-level test scripts under scripts/cluster-tests/.
#
# Usage: scripts/test.sh
# Honours CARGO_TARGET_DIR (default: target/ in the repo), shared by every step so each
# feature set is built once.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$(pwd)

export UCX_NET_DEVICES=lo
export RUST_BACKTRACE=1
export CARGO_TERM_COLOR=never
# A one-shot build: incremental caches would only cost disk (several GB) and time.
export CARGO_INCREMENTAL=${CARGO_INCREMENTAL:-0}
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
export CARGO_TARGET_DIR=$TARGET_DIR

# The UCX feature set: the transport's UCX backend and the bench's UCX cases.
UCX_FEATURES="basalt-transport/ucx,basalt-bench/ucx"

T0=$(date +%s)
SUMMARY=()

# step NAME CMD...: run CMD, print its wall time, stop the script if it fails.
step() {
    local name=$1
    shift
    local start end rc=0
    start=$(date +%s)
    echo "==> $name"
    "$@" || rc=$?
    end=$(date +%s)
    SUMMARY+=("$(printf '%6ss  %s%s' "$((end - start))" "$name" "$([ "$rc" -eq 0 ] || echo "  FAILED (exit $rc)")")")
    echo "<== $name: $((end - start))s$([ "$rc" -eq 0 ] || echo ", FAILED (exit $rc)")"
    if [ "$rc" -ne 0 ]; then
        print_summary
        exit "$rc"
    fi
}

print_summary() {
    echo
    echo "== test.sh summary (total $(($(date +%s) - T0))s) =="
    printf '%s\n' "${SUMMARY[@]}"
    disk_report
}

# Cluster tests format chunkserver data dirs under $TMPDIR: a full disk shows up as a
# failed format, so say how much room there was.
disk_report() {
    mkdir -p "$TARGET_DIR"
    echo "disk space (target dir, temp dir):"
    df -h "$TARGET_DIR" "${TMPDIR:-/tmp}" 2>/dev/null | sed 's/^/    /' || true
}

# The functions below run under `step`'s `||`, where bash ignores `set -e`: every command
# that can fail is checked explicitly.
nextest() {
    cargo nextest run --profile ci --no-tests=warn "$@"
}

# Cluster-level tests start other packages' daemons (basalt-mds, basalt-chunkserver, ...),
# which cargo does not build for a test of another package: build every binary first.
bins() {
    cargo build --workspace --bins "$@"
}

bench_smoke() {
    cargo build -p basalt-bench --bins --features basalt-bench/ucx || return
    # A smoke run (debug build): proves every backend and baseline runs, figures are not
    # meaningful. Exit 3 if a Basalt backend could not be measured.
    timeout 300 "$TARGET_DIR/debug/basalt-bench" transport --duration 1s --warmup 100ms \
        --sizes 64,4K --stream-sizes 128K --require-backends --json "$TARGET_DIR/bench-smoke.json"
}

# The cargo-fuzz targets (fuzz/, a workspace of its own) on stable without sanitizers, each
# for FUZZ_SECONDS (20) from the committed seeds; a crash fails the step and prints the
# reproducer. Its own target dir: the fuzz build uses other rustc flags.
fuzz_bounded() {
    FUZZ_TARGET_DIR="$TARGET_DIR/fuzz" scripts/fuzz.sh --ci
}

cluster_tests() {
    local dir=scripts/cluster-tests ran=0 failed=0 t
    if [ -d "$dir" ]; then
        for t in "$dir"/*.sh; do
            [ -x "$t" ] || continue
            echo "--- $t"
            if timeout 900 "$t"; then
                ran=$((ran + 1))
            else
                echo "--- $t FAILED"
                failed=$((failed + 1))
            fi
        done
    fi
    echo "cluster tests: $ran passed, $failed failed"
    [ "$failed" -eq 0 ]
}

disk_report
step "setup" bash scripts/setup.sh
step "rustfmt" cargo fmt --all -- --check --color never
step "clippy" cargo clippy --workspace --all-targets -- -D warnings
step "clippy (ucx)" cargo clippy --workspace --all-targets --features "$UCX_FEATURES" -- -D warnings
step "build binaries" bins
step "tests" nextest --workspace
# The UCX feature changes the transport and what embeds it; the rest of the workspace is
# built and linted with UCX above, and its tests do not depend on the feature.
step "tests (ucx)" nextest --features "$UCX_FEATURES" -p basalt-transport -p basalt-client -p basalt-bench
# Disk-error tests need the chunkserver's failpoints (a feature never in production builds).
step "tests (failpoints)" nextest --features basalt-chunkserver/failpoints -p basalt-chunkserver \
    -E 'binary(disk_faults) | test(failpoints)'
step "fuzz (bounded)" fuzz_bounded
step "bench smoke" bench_smoke
step "cluster tests" cluster_tests

print_summary
echo "test.sh: all steps passed"
