#!/usr/bin/env bash
# Run every cargo-fuzz target in fuzz/ for a bounded time each (default 60 s).
# Needs a nightly toolchain (`cargo +nightly`) and cargo-fuzz (installed if missing).
# The committed seeds (fuzz/corpus/TARGET) are read, never written: new corpus entries go
# to a scratch corpus under the target dir; crashes land in fuzz/artifacts/TARGET.
#
# Usage: scripts/fuzz.sh [seconds-per-target]
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
SECONDS_PER_TARGET=${1:-60}
case $SECONDS_PER_TARGET in
    '' | *[!0-9]*) echo "usage: scripts/fuzz.sh [seconds-per-target]" >&2; exit 2 ;;
esac
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$(pwd)/fuzz/target}

if ! cargo +nightly --version >/dev/null 2>&1; then
    echo "fuzz.sh: a nightly toolchain is needed (rustup toolchain install nightly)" >&2
    exit 1
fi
if ! cargo +nightly fuzz --version >/dev/null 2>&1; then
    cargo install cargo-fuzz --locked
fi

failed=0
for target in $(cd fuzz && cargo +nightly fuzz list); do
    scratch=$CARGO_TARGET_DIR/fuzz-corpus/$target
    mkdir -p "$scratch" "fuzz/corpus/$target"
    echo "==> $target for ${SECONDS_PER_TARGET}s"
    if ! (cd fuzz && cargo +nightly fuzz run "$target" "$scratch" "corpus/$target" -- \
        -max_total_time="$SECONDS_PER_TARGET" -print_final_stats=1); then
        echo "<== $target FAILED (see fuzz/artifacts/$target)"
        failed=1
    fi
done
exit "$failed"
