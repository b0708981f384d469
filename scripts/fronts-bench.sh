#!/usr/bin/env bash
# The fronts against each other, in one run on one dev cluster (issue 6's closing figures):
# 4 KiB random read and random write at QD1 and QD32 through
#   client  basalt-bench volume        (basalt-client itself: the floor of every front)
#   engine  stock fio, --ioengine=external:libbasalt_fio.so
#   nbd     fio's built-in nbd engine → basalt-nbd serve (UNIX socket)
#   nbdkit  fio's built-in nbd engine → nbdkit memory (the NBD path's ceiling: no Basalt)
# Every cell (pattern × depth × path) runs --duration after a 1 s ramp; the whole grid
# runs --rounds times, paths interleaved inside each cell, so that drift of a shared
# machine hits every path alike. Prints one table (median over the rounds of IOPS, mean,
# p50, p99 latency, and the min–max of the mean) and the ratios engine ÷ client and
# basalt-nbd ÷ nbdkit; writes the same as Markdown to --out.
#
# Usage: scripts/fronts-bench.sh [--duration 10] [--rounds 2] [--no-build] [--stop]
#                                [--out FILE] [--volume NAME] [--region-mib 64]
#   --duration S   measured seconds per cell (default 10)
#   --rounds N     repetitions of the whole grid (default 2)
#   --no-build     use the release binaries as they are
#   --stop         stop the dev cluster at the end (default: leave it running)
#   --out FILE     Markdown report (default $CARGO_TARGET_DIR/bench/fronts.md)
#   --volume NAME  volume (created 1 GiB when missing; default fronts)
#   --region-mib M every path works in the first M MiB of its device (default 64)
# Environment: CARGO_TARGET_DIR (default target/); BASALT_DEV_CLUSTER_DIR and
# BASALT_CLIENT_CONF select a dev cluster other than the default one.
# Needs fio, nbdkit (with its memory plugin) and python3.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$(pwd)
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
export CARGO_TARGET_DIR=$TARGET_DIR
BIN=$TARGET_DIR/release
export BASALT_BIN_DIR=$BIN
export UCX_NET_DEVICES=${UCX_NET_DEVICES:-lo}
ENGINE=$BIN/libbasalt_fio.so

DURATION=10
ROUNDS=2
BUILD=1
STOP=0
OUT=$TARGET_DIR/bench/fronts.md
VOLUME=fronts
REGION_MIB=64
while [ $# -gt 0 ]; do
    case "$1" in
        --duration) DURATION=${2:?--duration needs a value}; shift ;;
        --rounds) ROUNDS=${2:?--rounds needs a value}; shift ;;
        --no-build) BUILD=0 ;;
        --stop) STOP=1 ;;
        --out) OUT=${2:?--out needs a value}; shift ;;
        --volume) VOLUME=${2:?--volume needs a value}; shift ;;
        --region-mib) REGION_MIB=${2:?--region-mib needs a value}; shift ;;
        -h|--help) sed -n '2,25p' "$0"; exit 0 ;;
        *) echo "fronts-bench.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
    esac
    shift
done
DURATION=${DURATION%s}
case "$DURATION$ROUNDS$REGION_MIB" in
    *[!0-9]*) echo "fronts-bench.sh: --duration, --rounds and --region-mib take whole numbers" >&2; exit 2 ;;
esac
for tool in fio nbdkit python3; do
    command -v "$tool" >/dev/null || { echo "fronts-bench.sh: needs $tool (scripts/setup.sh)" >&2; exit 1; }
done

stage() { echo "=== $* ===" >&2; }
basalt() { "$BIN/basalt" "$@"; }

if [ "$BUILD" = 1 ]; then
    stage "build (release)"
    # The demo's invocation (no rebuild of its output), then the engine.
    cargo build --release --bins -p basalt-mds -p basalt-chunkserver -p basalt-cli \
        -p basalt-nbd -p basalt-bench --features basalt-bench/ucx >&2
    cargo build --release -p basalt-fio --lib >&2
fi
for f in basalt basalt-bench basalt-nbd libbasalt_fio.so; do
    [ -e "$BIN/$f" ] || { echo "fronts-bench.sh: $BIN/$f missing (run without --no-build)" >&2; exit 1; }
done

WORK=$(mktemp -d "${TMPDIR:-/tmp}/basalt-fronts-bench.XXXXXX")
RES=$WORK/results
mkdir -p "$RES"
NBD_SOCK=$WORK/basalt-nbd.sock
KIT_SOCK=$WORK/nbdkit.sock
NBD_PID=
KIT_PID=

stop_pid() {
    local pid=$1
    [ -n "$pid" ] || return 0
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
}

cleanup() {
    local rc=$?
    stop_pid "$NBD_PID"
    stop_pid "$KIT_PID"
    if [ "$rc" -ne 0 ]; then
        echo "fronts-bench.sh: FAILED (exit $rc); logs in $WORK" >&2
    else
        rm -rf "$WORK"
    fi
    if [ "$STOP" = 1 ]; then
        basalt dev-cluster down >&2 || true
    fi
    exit "$rc"
}
trap cleanup EXIT

# wait_sock PID SOCK LOG: bounded wait for a server's UNIX socket.
wait_sock() {
    local pid=$1 sock=$2 log=$3
    for _ in $(seq 200); do
        [ -S "$sock" ] && return 0
        if ! kill -0 "$pid" 2>/dev/null; then
            echo "server exited: $(cat "$log")" >&2
            return 1
        fi
        sleep 0.05
    done
    echo "no socket $sock within 10 s: $(cat "$log")" >&2
    return 1
}

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

cluster_up
if ! basalt volume info "$VOLUME" >/dev/null 2>&1; then
    basalt volume create "$VOLUME" --size 1GiB >&2
fi

# Reads of never-written chunks answer zeros without a round trip: write the region
# first (the bench's prefill: sequential 1 MiB writes), and fill nbdkit's memory alike.
stage "prefill ${REGION_MIB} MiB of $VOLUME"
"$BIN/basalt-bench" --quiet --duration 1s --warmup 0s volume --volume "$VOLUME" \
    --region "${REGION_MIB}MiB" --cases randread:4K:1 --no-baselines >"$WORK/prefill.txt"

KIT_LOG=$WORK/nbdkit.log
nbdkit --foreground --unix "$KIT_SOCK" memory "${REGION_MIB}M" >"$KIT_LOG" 2>&1 &
KIT_PID=$!
wait_sock "$KIT_PID" "$KIT_SOCK" "$KIT_LOG"
fio --name=fill --ioengine=nbd --uri="nbd+unix:///?socket=$KIT_SOCK" --rw=write --bs=1m \
    --size="${REGION_MIB}m" --iodepth=4 --output="$WORK/kit-fill.txt" >/dev/null

# fio_cell PATH PATTERN QD OUT ARGS...: one fio run, JSON out.
fio_cell() {
    local out=$4
    shift 4
    fio --name=cell --rw="$PATTERN" --bs=4k --iodepth="$QD" --size="${REGION_MIB}m" \
        --norandommap --randrepeat=0 --time_based --ramp_time=1 --runtime="$DURATION" \
        --lat_percentiles=1 --output-format=json --output="$out" "$@" >/dev/null
}

run_path() {
    local path=$1
    local out=$RES/$path-$PATTERN-$QD-$ROUND.json
    echo "--- round $ROUND/$ROUNDS: $PATTERN QD$QD via $path" >&2
    case $path in
        client)
            "$BIN/basalt-bench" --quiet --duration "${DURATION}s" --warmup 1s --json "$out" \
                volume --volume "$VOLUME" --region "${REGION_MIB}MiB" \
                --cases "$PATTERN:4K:$QD" --no-baselines --no-prefill >"$out.txt"
            ;;
        engine)
            fio_cell engine "$PATTERN" "$QD" "$out" --ioengine=external:"$ENGINE" \
                --volume="$VOLUME"
            ;;
        nbd)
            # A server per cell: it opens the volume exclusively, as the bench and the
            # engine do in their turns.
            local log=$WORK/basalt-nbd.log
            rm -f "$NBD_SOCK"
            "$BIN/basalt-nbd" serve --volume "$VOLUME" --socket "$NBD_SOCK" >"$log" 2>&1 &
            NBD_PID=$!
            wait_sock "$NBD_PID" "$NBD_SOCK" "$log"
            fio_cell nbd "$PATTERN" "$QD" "$out" --ioengine=nbd \
                --uri="nbd+unix:///$VOLUME?socket=$NBD_SOCK"
            stop_pid "$NBD_PID"
            NBD_PID=
            ;;
        nbdkit)
            fio_cell nbdkit "$PATTERN" "$QD" "$out" --ioengine=nbd \
                --uri="nbd+unix:///?socket=$KIT_SOCK"
            ;;
    esac
}

PATHS=(client engine nbd nbdkit)
LOADS=()
for ((ROUND = 1; ROUND <= ROUNDS; ROUND++)); do
    for PATTERN in randread randwrite; do
        for QD in 1 32; do
            # Rotate the order each round so no path always runs first after a switch.
            n=${#PATHS[@]}
            for ((k = 0; k < n; k++)); do
                run_path "${PATHS[$(((k + ROUND - 1) % n))]}"
            done
        done
    done
    LOADS+=("round $ROUND: $(cut -d' ' -f1-3 /proc/loadavg)")
done

mkdir -p "$(dirname "$OUT")"
python3 - "$RES" "$ROUNDS" "$DURATION" "$REGION_MIB" "$VOLUME" "${LOADS[*]}" \
    "$(git rev-parse --short HEAD 2>/dev/null || echo unknown)$(git diff --quiet HEAD 2>/dev/null || echo ' (modified)')" \
    >"$OUT" <<'EOF'
import glob, json, os, statistics, sys, datetime
res, rounds, duration, region, volume, loads, rev = sys.argv[1:8]
rounds = int(rounds)
PATHS = ["client", "engine", "nbd", "nbdkit"]
LABEL = {
    "client": "basalt-bench volume (client)",
    "engine": "fio + libbasalt_fio.so",
    "nbd": "fio nbd → basalt-nbd",
    "nbdkit": "fio nbd → nbdkit memory",
}

def bench(path):
    m = json.load(open(path))["measurements"][-1]
    lat = m["latency"]
    return {"iops": m["ops"] / m["elapsed_s"], "mean": lat["mean_ns"] / 1e3,
            "p50": lat["p50_ns"] / 1e3, "p99": (lat.get("p99_ns") or 0) / 1e3}

def fio(path, pattern):
    job = json.load(open(path))["jobs"][0]
    side = job["read" if pattern == "randread" else "write"]
    lat = side["lat_ns"]
    pct = lat.get("percentile", {})
    return {"iops": side["iops"], "mean": lat["mean"] / 1e3,
            "p50": pct.get("50.000000", 0) / 1e3, "p99": pct.get("99.000000", 0) / 1e3}

cells = {}
for pattern in ("randread", "randwrite"):
    for qd in (1, 32):
        for p in PATHS:
            runs = []
            for r in range(1, rounds + 1):
                f = f"{res}/{p}-{pattern}-{qd}-{r}.json"
                if os.path.exists(f):
                    runs.append(bench(f) if p == "client" else fio(f, pattern))
            cells[(pattern, qd, p)] = runs

def med(runs, k):
    return statistics.median(r[k] for r in runs) if runs else float("nan")

now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
print("# Fronts: client vs fio engine vs NBD (4 KiB random, one run)")
print()
print(f"- revision {rev}, {now}, {os.cpu_count()} CPUs; load average (1/5/15 min) after each round: {loads}")
print(f"- volume `{volume}` on the local dev cluster (3 chunkservers, 3 replicas, TCP loopback); "
      f"every path works in the first {region} MiB; nbdkit memory has {region} MiB, written first")
print(f"- {duration} s measured per cell after 1 s ramp; {rounds} rounds, paths interleaved; "
      "figures are the median over the rounds, `mean min–max` their spread")
print("- latency: submission to completion (fio `lat_ns`, the bench's per-I/O time), µs")
print()
print("| case | path | kIOPS | mean µs | mean min–max | p50 µs | p99 µs |")
print("|---|---|---:|---:|---:|---:|---:|")
for (pattern, qd, p), runs in cells.items():
    if not runs:
        print(f"| {pattern} QD{qd} | {LABEL[p]} | – | – | – | – | – |")
        continue
    means = [r["mean"] for r in runs]
    print(f"| {pattern} QD{qd} | {LABEL[p]} | {med(runs,'iops')/1e3:.2f} | {med(runs,'mean'):.0f} | "
          f"{min(means):.0f}–{max(means):.0f} | {med(runs,'p50'):.0f} | {med(runs,'p99'):.0f} |")
print()
print("Ratios (median of per-round ratios, min–max in brackets). Target: the engine adds "
      "≤ 10 % latency over the client (engine ÷ client mean ≤ 1.10).")
print()
print("| case | engine ÷ client mean | engine ÷ client IOPS | basalt-nbd ÷ nbdkit mean | basalt-nbd ÷ nbdkit IOPS | basalt-nbd ÷ client mean |")
print("|---|---:|---:|---:|---:|---:|")
def ratio(pattern, qd, a, b, k):
    ra, rb = cells[(pattern, qd, a)], cells[(pattern, qd, b)]
    rs = [x[k] / y[k] for x, y in zip(ra, rb) if y[k] > 0]
    if not rs:
        return "–"
    return f"{statistics.median(rs):.2f} [{min(rs):.2f}–{max(rs):.2f}]"
for pattern in ("randread", "randwrite"):
    for qd in (1, 32):
        print(f"| {pattern} QD{qd} | {ratio(pattern,qd,'engine','client','mean')} | "
              f"{ratio(pattern,qd,'engine','client','iops')} | {ratio(pattern,qd,'nbd','nbdkit','mean')} | "
              f"{ratio(pattern,qd,'nbd','nbdkit','iops')} | {ratio(pattern,qd,'nbd','client','mean')} |")
EOF
cat "$OUT"
echo >&2
echo "report: $OUT" >&2
