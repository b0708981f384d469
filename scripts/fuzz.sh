#!/usr/bin/env bash
# Run every cargo-fuzz target in fuzz/ for a bounded time each.
# Needs a nightly toolchain (`cargo +nightly`) and cargo-fuzz (installed if missing).
#
# The committed seeds (fuzz/corpus/TARGET) are read, never written: new corpus entries go
# to a scratch corpus under the target dir. A crash, a panic, a leak, an input slower than
# FUZZ_INPUT_TIMEOUT or an out-of-memory stops that target; its input is kept in
# fuzz/artifacts/TARGET/ (reproduce with `cargo +nightly fuzz run TARGET ARTIFACT`), the
# other targets still run, and the script exits 1.
#
# Usage: scripts/fuzz.sh [seconds-per-target] [target...]
#   FUZZ_SECONDS        seconds per target when not given as an argument (default 10)
#   FUZZ_TARGET_DIR     cargo target dir of the sanitizer build (default fuzz/target)
#   FUZZ_INPUT_TIMEOUT  seconds one input may take before it counts as a hang (default 10)
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
SECONDS_PER_TARGET=${1:-${FUZZ_SECONDS:-10}}
case $SECONDS_PER_TARGET in
    '' | *[!0-9]*) echo "usage: scripts/fuzz.sh [seconds-per-target] [target...]" >&2; exit 2 ;;
esac
shift || true
export CARGO_TARGET_DIR=${FUZZ_TARGET_DIR:-$(pwd)/fuzz/target}
INPUT_TIMEOUT=${FUZZ_INPUT_TIMEOUT:-10}

if ! cargo +nightly --version >/dev/null 2>&1; then
    echo "fuzz.sh: a nightly toolchain is needed (rustup toolchain install nightly)" >&2
    exit 1
fi
if ! cargo +nightly fuzz --version >/dev/null 2>&1; then
    cargo install cargo-fuzz --locked
fi

cd fuzz
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
    mapfile -t targets < <(cargo +nightly fuzz list)
fi
# One build for all targets (each `fuzz run` below then only checks it is fresh).
cargo +nightly fuzz build

failed=()
for target in "${targets[@]}"; do
    scratch=$CARGO_TARGET_DIR/fuzz-corpus/$target
    mkdir -p "$scratch" "corpus/$target" "artifacts/$target"
    echo "==> $target for ${SECONDS_PER_TARGET}s"
    if ! cargo +nightly fuzz run "$target" "$scratch" "corpus/$target" -- \
        -max_total_time="$SECONDS_PER_TARGET" -timeout="$INPUT_TIMEOUT" \
        -print_final_stats=1; then
        echo "<== $target FAILED; input kept in fuzz/artifacts/$target/:" >&2
        ls -l "artifacts/$target" >&2 || true
        failed+=("$target")
    fi
done
if [ ${#failed[@]} -gt 0 ]; then
    echo "fuzz.sh: failing targets: ${failed[*]}" >&2
    exit 1
fi
echo "fuzz.sh: ${#targets[@]} targets, ${SECONDS_PER_TARGET}s each, no crash"
