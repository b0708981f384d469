#!/usr/bin/env bash
# Basalt's demo: the README's main command.
#
# Installs what is missing (scripts/setup.sh), builds the release binaries, starts the
# local dev cluster (1 etcd, 3 MDS, 3 chunkservers on loopback; reused when it already
# runs), creates a volume and runs the end-to-end volume benchmark through the client:
# 4 KiB random write and read at QD1 and QD32 and 1 MiB sequential writes, next to the
# raw disk and raw TCP baselines measured in the same run. Prints the table and the
# target ratios, writes JSON and an SVG latency plot, and leaves the cluster running with
# the commands to use it (or stops it with --stop).
#
# Usage: scripts/demo.sh [--stop] [--no-build] [--transport] [--duration 5s] [-- extra basalt-bench args]
#   --stop        stop the dev cluster at the end
#   --no-build    use the release binaries in $CARGO_TARGET_DIR/release as they are
#   --transport   also run the transport (RPC) benchmark
#   --duration D  measured time of each case (default 5s; warm-up 1s)
# Environment: CARGO_TARGET_DIR (default target/), BASALT_DEMO_OUT (default
# $CARGO_TARGET_DIR/bench), BASALT_DEMO_VOLUME (default demo).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$(pwd)
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
export CARGO_TARGET_DIR=$TARGET_DIR
OUT=${BASALT_DEMO_OUT:-$TARGET_DIR/bench}
VOLUME=${BASALT_DEMO_VOLUME:-demo}
export UCX_NET_DEVICES=${UCX_NET_DEVICES:-lo}
BIN=$TARGET_DIR/release
# The CLI starts the daemons found here (docs/cli.md).
export BASALT_BIN_DIR=$BIN
CASES=randwrite:4K:1,randread:4K:1,randwrite:4K:32,randread:4K:32,write:1M:4

STOP=0
BUILD=1
TRANSPORT=0
DURATION=5s
EXTRA=()
while [ $# -gt 0 ]; do
    case "$1" in
        --stop) STOP=1 ;;
        --no-build) BUILD=0 ;;
        --transport) TRANSPORT=1 ;;
        --duration) DURATION=${2:?--duration needs a value}; shift ;;
        --duration=*) DURATION=${1#--duration=} ;;
        --) shift; EXTRA=("$@"); break ;;
        -h|--help) sed -n '2,20p' "$0"; exit 0 ;;
        *) echo "demo.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
    esac
    shift
done

stage() { echo; echo "=== $* ==="; }

setup() {
    stage "set-up"
    bash scripts/setup.sh
}

build() {
    stage "build (release)"
    # One cargo invocation, so features unify the same way on every run (no rebuilds).
    cargo build --release --bins -p basalt-mds -p basalt-chunkserver -p basalt-cli \
        -p basalt-nbd -p basalt-bench --features basalt-bench/ucx
}

basalt() { "$BIN/basalt" "$@"; }

# 0: every recorded process runs; 1: no cluster recorded; 2: recorded but not all running.
cluster_state() {
    local json
    if ! json=$(basalt --format json dev-cluster status 2>/dev/null); then
        return 1
    fi
    if printf '%s' "$json" | grep -q '"state": *"\(dead\|stopped\)"'; then
        return 2
    fi
    return 0
}

cluster_up() {
    stage "dev cluster"
    local st=0
    cluster_state || st=$?
    case $st in
        0)
            echo "a dev cluster is already running: reusing it"
            basalt dev-cluster status
            return
            ;;
        2)
            echo "a dev cluster is recorded but not every process runs: restarting it cleanly"
            basalt dev-cluster down
            ;;
    esac
    basalt dev-cluster up --wait-copysets
}

volume() {
    stage "volume $VOLUME"
    if basalt volume info "$VOLUME" >/dev/null 2>&1; then
        echo "volume $VOLUME exists: reusing it"
        basalt volume info "$VOLUME"
    else
        basalt volume create "$VOLUME" --size 4GiB
    fi
}

volume_bench() {
    stage "volume benchmark (through basalt-client; raw disk and raw TCP baselines in the same run)"
    mkdir -p "$OUT"
    "$BIN/basalt-bench" --duration "$DURATION" --warmup 1s \
        --json "$OUT/volume.json" --plot "$OUT/volume.svg" \
        volume --volume "$VOLUME" --cases "$CASES" --breakdown "${EXTRA[@]}"
    echo "results: $OUT/volume.json, plot: $OUT/volume.svg"
}

transport_bench() {
    stage "transport benchmark (Basalt RPC vs raw TCP and ucx_perftest)"
    mkdir -p "$OUT"
    "$BIN/basalt-bench" --duration "$DURATION" \
        --json "$OUT/transport.json" --plot "$OUT/transport.svg" transport
    echo "results: $OUT/transport.json, plot: $OUT/transport.svg"
}

finish() {
    if [ "$STOP" = 1 ]; then
        stage "stopping the dev cluster"
        basalt dev-cluster down
        return
    fi
    stage "the cluster keeps running"
    cat <<EOF
Use it (the client configuration written by 'dev-cluster up' gives every tool the MDS addresses):
  CLI:    $BIN/basalt volume ls
          $BIN/basalt volume create mydisk --size 10GiB
  bench:  $BIN/basalt-bench volume --volume $VOLUME --cases randrw:4K:16 --rwmix-read 70
  NBD:    $BIN/basalt-nbd serve --volume $VOLUME --listen 127.0.0.1:10809 &
          nbdinfo nbd://127.0.0.1:10809/$VOLUME     (or: nbd-client / qemu-img / nbdcopy)
  fio:    cargo build --release -p basalt-fio    (docs/fio.md)
          fio --name=j --ioengine=external:$BIN/libbasalt_fio.so --volume=$VOLUME \\
              --rw=randwrite --bs=4k --iodepth=32 --size=256m --runtime=10 --time_based
  status: $BIN/basalt dev-cluster status
  stop:   $BIN/basalt dev-cluster down        (or: scripts/demo.sh --stop)
EOF
}

setup
if [ "$BUILD" = 1 ]; then
    build
fi
cluster_up
volume
volume_bench
if [ "$TRANSPORT" = 1 ]; then
    transport_bench
fi
finish
