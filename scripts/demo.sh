#!/usr/bin/env bash
# Basalt's demo: what the README's main command shows.
#
# Today: install what is missing, build the release binaries and run the transport
# benchmark, whose table compares Basalt's RPC latency and throughput (TCP, and UCX when
# built with it) with the raw baselines measured in the same run (a bare TCP socket
# ping-pong, ucx_perftest). The stages below are functions so that later work can add
# "cluster up, create a volume, run the volume benchmark" as further stages.
#
# Usage: scripts/demo.sh [--duration 5s]   (extra arguments go to basalt-bench)
# Environment: CARGO_TARGET_DIR (default target/), BASALT_DEMO_OUT (default
# target/demo: JSON and SVG results land there).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$(pwd)
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
export CARGO_TARGET_DIR=$TARGET_DIR
OUT=${BASALT_DEMO_OUT:-$TARGET_DIR/demo}
export UCX_NET_DEVICES=${UCX_NET_DEVICES:-lo}
BIN=$TARGET_DIR/release

stage() { echo; echo "=== $* ==="; }

setup() {
    stage "set-up"
    bash scripts/setup.sh
}

build() {
    stage "build (release, with UCX)"
    cargo build --release -p basalt-bench --features basalt-bench/ucx
}

transport_bench() {
    stage "transport benchmark (Basalt RPC vs raw TCP and ucx_perftest)"
    mkdir -p "$OUT"
    "$BIN/basalt-bench" transport \
        --json "$OUT/transport.json" --plot "$OUT/transport.svg" "$@"
    echo "results: $OUT/transport.json, plot: $OUT/transport.svg"
}

setup
build
transport_bench "$@"
