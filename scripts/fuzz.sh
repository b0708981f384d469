#!/usr/bin/env bash
# Run every cargo-fuzz target in fuzz/ for a bounded time each.
#
# Two modes:
#   (default)  nightly toolchain + AddressSanitizer: the thorough run, by hand. A cold
#              sanitizer build takes ~25 min on 2 cores; keep FUZZ_TARGET_DIR between runs.
#   --ci       the stable toolchain, no sanitizer (`cargo fuzz -s none`): libFuzzer's coverage
#              instrumentation is plain rustc flags (`-Cpasses=sancov-module`, stable), only the
#              sanitizers need nightly. Debug assertions and overflow checks stay on, so panics,
#              overflows, hangs and out-of-memory are still caught; memory errors inside
#              `unsafe` code are not (no ASan). 16 codegen units shorten the cold build. This is
#              what scripts/test.sh runs.
#
# The committed seeds (fuzz/corpus/TARGET) are read, never written: new corpus entries go
# to a scratch corpus under the target dir. A crash, a panic, an input slower than
# FUZZ_INPUT_TIMEOUT or an out-of-memory stops that target; its input is kept in
# fuzz/artifacts/TARGET/ (the path is printed, with the input in base64 when it is small, so a
# CI log alone is enough to reproduce it), the other targets still run, and the script
# exits 1.
#
# Usage: scripts/fuzz.sh [--ci] [seconds-per-target] [target...]
#   FUZZ_SECONDS        seconds per target when not given as an argument
#                       (default 10; 20 with --ci)
#   FUZZ_TARGET_DIR     cargo target dir of the fuzz build (default fuzz/target)
#   FUZZ_INPUT_TIMEOUT  seconds one input may take before it counts as a hang (default 10)
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
CI_MODE=0
if [ "${1:-}" = --ci ]; then
    CI_MODE=1
    shift
fi
if [ "$CI_MODE" -eq 1 ]; then
    DEFAULT_SECONDS=20
else
    DEFAULT_SECONDS=10
fi
SECONDS_PER_TARGET=${1:-${FUZZ_SECONDS:-$DEFAULT_SECONDS}}
case $SECONDS_PER_TARGET in
    '' | *[!0-9]*) echo "usage: scripts/fuzz.sh [--ci] [seconds-per-target] [target...]" >&2; exit 2 ;;
esac
shift || true
export CARGO_TARGET_DIR=${FUZZ_TARGET_DIR:-$(pwd)/fuzz/target}
INPUT_TIMEOUT=${FUZZ_INPUT_TIMEOUT:-10}

if [ "$CI_MODE" -eq 1 ]; then
    CARGO=(cargo)
    # The same options for `build` and every `run`, so each run finds the build fresh.
    BUILD_OPTS=(--sanitizer none --codegen-units 16)
else
    CARGO=(cargo +nightly)
    BUILD_OPTS=()
    if ! cargo +nightly --version >/dev/null 2>&1; then
        echo "fuzz.sh: a nightly toolchain is needed (rustup toolchain install nightly);" \
            "scripts/fuzz.sh --ci runs on stable without sanitizers" >&2
        exit 1
    fi
fi
if ! "${CARGO[@]}" fuzz --version >/dev/null 2>&1; then
    cargo install cargo-fuzz --locked
fi

cd fuzz
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
    mapfile -t targets < <("${CARGO[@]}" fuzz list)
fi
# One build for all targets (each `fuzz run` below then only checks it is fresh).
build_start=$(date +%s)
"${CARGO[@]}" fuzz build "${BUILD_OPTS[@]}"
echo "fuzz.sh: build took $(($(date +%s) - build_start))s"

# report_crash TARGET MARKER: print where this run's failing input is (files newer than
# MARKER: older runs' artifacts stay in the directory), and the input itself when small.
report_crash() {
    local f
    for f in $(find "artifacts/$1" -type f -newer "$2" | sort); do
        echo "    reproducer: fuzz/$f ($(stat -c %s "$f") bytes);" \
            "rerun: cd fuzz && ${CARGO[*]} fuzz run ${BUILD_OPTS[*]} $1 $f" >&2
        if [ "$(stat -c %s "$f")" -le 4096 ]; then
            echo "    base64 (decode with \`base64 -d\`): $(base64 -w0 "$f")" >&2
        fi
    done
}

failed=()
results=()
for target in "${targets[@]}"; do
    scratch=$CARGO_TARGET_DIR/fuzz-corpus/$target
    log=$CARGO_TARGET_DIR/fuzz-logs/$target.log
    mkdir -p "$scratch" "$(dirname "$log")" "corpus/$target" "artifacts/$target"
    marker=$CARGO_TARGET_DIR/fuzz-logs/$target.start
    touch "$marker"
    echo "==> $target for ${SECONDS_PER_TARGET}s"
    rc=0
    "${CARGO[@]}" fuzz run "${BUILD_OPTS[@]}" "$target" "$scratch" "corpus/$target" -- \
        -max_total_time="$SECONDS_PER_TARGET" -timeout="$INPUT_TIMEOUT" \
        -print_final_stats=1 2>&1 | tee "$log" || rc=$?
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
    if [ "$rc" -ne 0 ]; then
        echo "<== $target FAILED (exit $rc); input kept in fuzz/artifacts/$target/:" >&2
        report_crash "$target" "$marker"
        failed+=("$target")
        results+=("$(printf '%-18s %10s execs  FAILED' "$target" "${execs:-?}")")
    else
        results+=("$(printf '%-18s %10s execs  ok' "$target" "${execs:-?}")")
    fi
done
echo "fuzz.sh: ${SECONDS_PER_TARGET}s per target$([ "$CI_MODE" -eq 1 ] && echo ' (stable, no sanitizer)'):"
printf '    %s\n' "${results[@]}"
if [ ${#failed[@]} -gt 0 ]; then
    echo "fuzz.sh: failing targets: ${failed[*]}" >&2
    exit 1
fi
echo "fuzz.sh: ${#targets[@]} targets, ${SECONDS_PER_TARGET}s each, no crash"
