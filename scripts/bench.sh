#!/usr/bin/env bash
# The standard benchmark suite: every basalt-bench subcommand this build has, against the
# local dev cluster where one is needed, each with its baselines measured in the same run.
# Writes $CARGO_TARGET_DIR/bench/REPORT.md (the tables and target ratios), one JSON report
# and one SVG latency plot per subcommand.
#
# Usage: scripts/bench.sh [--duration 5s] [--no-build] [--stop]
#   --duration D  measured time of each measurement (default 5s)
#   --no-build    use the release binaries as they are
#   --stop        stop the dev cluster at the end (default: leave it running)
# Environment: CARGO_TARGET_DIR (default target/), BASALT_BENCH_OUT (default
# $CARGO_TARGET_DIR/bench), BASALT_BENCH_VOLUME (default demo: the demo's volume, since
# the dev cluster's chunk pools are small and both work in its first 128 MiB).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$(pwd)
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
export CARGO_TARGET_DIR=$TARGET_DIR
OUT=${BASALT_BENCH_OUT:-$TARGET_DIR/bench}
VOLUME=${BASALT_BENCH_VOLUME:-demo}
export UCX_NET_DEVICES=${UCX_NET_DEVICES:-lo}
BIN=$TARGET_DIR/release
export BASALT_BIN_DIR=$BIN
VOLUME_CASES=randwrite:4K:1,randread:4K:1,randwrite:4K:32,randread:4K:32,randrw:4K:16,write:1M:4,read:1M:4

DURATION=5s
BUILD=1
STOP=0
while [ $# -gt 0 ]; do
    case "$1" in
        --duration) DURATION=${2:?--duration needs a value}; shift ;;
        --duration=*) DURATION=${1#--duration=} ;;
        --no-build) BUILD=0 ;;
        --stop) STOP=1 ;;
        -h|--help) sed -n '2,13p' "$0"; exit 0 ;;
        *) echo "bench.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
    esac
    shift
done

stage() { echo; echo "=== $* ===" >&2; }
basalt() { "$BIN/basalt" "$@"; }

if [ "$BUILD" = 1 ]; then
    stage "build (release)"
    # The same invocation as scripts/demo.sh, so that neither rebuilds the other's output.
    cargo build --release --bins -p basalt-mds -p basalt-chunkserver -p basalt-cli \
        -p basalt-nbd -p basalt-bench --features basalt-bench/ucx
fi

# Subcommands this build has.
has() { "$BIN/basalt-bench" --help | grep -qE "^  $1( |$)"; }

cluster_up() {
    stage "dev cluster"
    local json
    if json=$(basalt --format json dev-cluster status 2>/dev/null); then
        if ! printf '%s' "$json" | grep -q '"state": *"\(dead\|stopped\)"'; then
            echo "reusing the running dev cluster" >&2
            return
        fi
        basalt dev-cluster down >&2
    fi
    basalt dev-cluster up --wait-copysets >&2
}

mkdir -p "$OUT"
REPORT=$OUT/REPORT.md
{
    echo "# Basalt benchmark report"
    echo
    echo "- revision: $(git rev-parse --short HEAD 2>/dev/null || echo unknown)$(git diff --quiet HEAD 2>/dev/null || echo ' (modified)')"
    echo "- date: $(date -u '+%Y-%m-%d %H:%M UTC')"
    echo "- host: $(nproc) CPUs, $(uname -sr)"
    echo "- duration per measurement: $DURATION"
    echo
    echo "Ratios compare with the baseline measured in the same run (docs/benchmarking.md)."
} >"$REPORT"

# run NAME ARGS...: one subcommand, its table into the report.
run() {
    local name=$1
    shift
    stage "$name"
    local log=$OUT/$name.txt
    local rc=0
    "$BIN/basalt-bench" --duration "$DURATION" \
        --json "$OUT/$name.json" --plot "$OUT/$name.svg" "$name" "$@" | tee "$log" || rc=$?
    {
        echo
        echo "## $name"
        echo
        echo "\`basalt-bench $name $*\` — [JSON]($name.json), [plot]($name.svg)"
        if [ "$rc" != 0 ]; then
            echo
            echo "**exit status $rc** (see the skipped lines)"
        fi
        echo
        echo '```'
        cat "$log"
        echo '```'
    } >>"$REPORT"
}

run transport
if has chunkstore; then run chunkstore; fi
if has raft; then run raft; fi
if has volume; then
    cluster_up
    if ! basalt volume info "$VOLUME" >/dev/null 2>&1; then
        basalt volume create "$VOLUME" --size 4GiB >&2
    fi
    run volume --volume "$VOLUME" --cases "$VOLUME_CASES" --breakdown
    if [ "$STOP" = 1 ]; then
        basalt dev-cluster down >&2
    fi
fi

echo
echo "report: $REPORT"
