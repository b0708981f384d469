#!/usr/bin/env bash
# Compare two revisions on this machine: build both (release) from `git archive`
# snapshots under $BASALT_AB_DIR (the repository's working tree, index and worktree list
# are never touched), then run the same benchmark alternately (A B A B ..., so that drift
# of a shared machine hits both alike) and print, per measurement and figure, the ratio
# B ÷ A with its spread over the rounds (min / median / max).
#
# Usage: scripts/ab.sh REV_A REV_B [--rounds 5] [-- BENCH ARGS]
#   BENCH ARGS   basalt-bench arguments (default: --duration 3s volume --cases
#                randwrite:4K:1,randread:4K:1,randread:4K:32).
#                A `volume` run gets its own dev cluster per revision (both run side by
#                side; only the one measured is loaded); the region is written on each
#                revision's first round only.
# Needs python3 (for the JSON comparison). Environment: BASALT_AB_DIR (default
# /tmp/basalt-ab), CARGO_TARGET_DIR (default $BASALT_AB_DIR/target; one target dir serves
# both revisions).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
AB=${BASALT_AB_DIR:-${TMPDIR:-/tmp}/basalt-ab}

if [ $# -lt 2 ]; then
    sed -n '2,17p' "$0"
    exit 2
fi
REV_A=$1
REV_B=$2
shift 2
ROUNDS=5
BENCH=()
while [ $# -gt 0 ]; do
    case "$1" in
        --rounds) ROUNDS=${2:?--rounds needs a value}; shift ;;
        --rounds=*) ROUNDS=${1#--rounds=} ;;
        --) shift; BENCH=("$@"); break ;;
        *) echo "ab.sh: unknown argument $1" >&2; exit 2 ;;
    esac
    shift
done
if [ "${#BENCH[@]}" -eq 0 ]; then
    BENCH=(--duration 3s volume --cases randwrite:4K:1,randread:4K:1,randread:4K:32)
fi
command -v python3 >/dev/null || { echo "ab.sh: needs python3" >&2; exit 1; }

# Is this a volume run (needs a cluster)?
VOLUME_RUN=0
for a in "${BENCH[@]}"; do
    if [ "$a" = volume ]; then VOLUME_RUN=1; fi
done

mkdir -p "$AB"
# One shared target dir: dependencies are compiled once; each revision's binaries are
# copied out after its build.
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$AB/target}
export UCX_NET_DEVICES=${UCX_NET_DEVICES:-lo}

# prepare LABEL REV: source snapshot, build, binaries in $AB/bin-LABEL.
prepare() {
    local label=$1 rev=$2 sha src=$AB/src
    sha=$(git rev-parse --verify "$rev^{commit}")
    echo "=== $label: $rev ($sha): build ===" >&2
    # Cargo identifies workspace crates by their path inside the workspace, not by the
    # workspace's location, and judges freshness by the mtimes of the files its last
    # build of them read, wherever those were: a tree at another path (or files carrying
    # their commit's older mtimes) would be taken as up to date and the other tree's
    # binaries reused. So each revision is unpacked with fresh mtimes (tar -m) and the
    # workspace crates' fingerprints are dropped: they are always rebuilt from this tree
    # (dependencies stay cached).
    rm -rf "$src"
    mkdir -p "$src"
    git archive "$sha" | tar -x -m -C "$src"
    rm -rf "$CARGO_TARGET_DIR"/release/.fingerprint/basalt-* \
        "$CARGO_TARGET_DIR"/release/.fingerprint/ucx-sys-*
    (cd "$src" && cargo build --release --bins -p basalt-mds -p basalt-chunkserver \
        -p basalt-cli -p basalt-bench) >&2
    rm -rf "$AB/bin-$label"
    mkdir -p "$AB/bin-$label"
    for b in basalt basalt-mds basalt-chunkserver basalt-bench; do
        if [ -x "$CARGO_TARGET_DIR/release/$b" ]; then
            cp "$CARGO_TARGET_DIR/release/$b" "$AB/bin-$label/"
        fi
    done
    echo "$sha" >"$AB/bin-$label/REVISION"
}

cluster_up() {
    local label=$1
    local state=$AB/cluster-$label
    if BASALT_BIN_DIR=$AB/bin-$label "$AB/bin-$label/basalt" dev-cluster --state-dir "$state" \
        status >/dev/null 2>&1; then
        BASALT_BIN_DIR=$AB/bin-$label "$AB/bin-$label/basalt" dev-cluster --state-dir "$state" down >&2
    fi
    echo "=== $label: dev cluster in $state ===" >&2
    BASALT_BIN_DIR=$AB/bin-$label "$AB/bin-$label/basalt" dev-cluster --state-dir "$state" \
        up --no-client-config --wait-copysets >&2
    "$AB/bin-$label/basalt" --client-config "$state/client.toml" volume create ab \
        --size 4GiB >/dev/null
}

cluster_down() {
    local label=$1
    BASALT_BIN_DIR=$AB/bin-$label "$AB/bin-$label/basalt" dev-cluster \
        --state-dir "$AB/cluster-$label" down >/dev/null 2>&1 || true
}

prepare A "$REV_A"
prepare B "$REV_B"
rm -rf "$AB/src"
if [ "$VOLUME_RUN" = 1 ]; then
    trap 'cluster_down A; cluster_down B' EXIT
    cluster_up A
    cluster_up B
fi

RESULTS=$AB/results
rm -rf "$RESULTS"
mkdir -p "$RESULTS"
for ((i = 1; i <= ROUNDS; i++)); do
    for label in A B; do
        echo "=== round $i/$ROUNDS: $label ===" >&2
        extra=()
        if [ "$VOLUME_RUN" = 1 ]; then
            state=$AB/cluster-$label
            extra=(--client-config "$state/client.toml" --state-dir "$state" --volume ab)
            # The region was written in this revision's first round.
            if [ "$i" -gt 1 ]; then extra+=(--no-prefill); fi
        fi
        rc=0
        "$AB/bin-$label/basalt-bench" --quiet --json "$RESULTS/$label-$i.json" \
            "${BENCH[@]}" "${extra[@]}" >"$RESULTS/$label-$i.txt" || rc=$?
        # 3: some measurement was skipped (listed in the output); the rest still counts.
        if [ "$rc" != 0 ] && [ "$rc" != 3 ]; then
            echo "ab.sh: basalt-bench ($label, round $i) failed with exit $rc:" >&2
            tail -n 20 "$RESULTS/$label-$i.txt" >&2
            exit 1
        fi
        grep '^skipped:' "$RESULTS/$label-$i.txt" | sed "s/^/  $label: /" >&2 || true
    done
    echo "round $i: load average $(cut -d' ' -f1-3 /proc/loadavg)" >>"$RESULTS/load.txt"
done

python3 - "$RESULTS" "$ROUNDS" "$REV_A" "$REV_B" <<'EOF'
import json, statistics, sys
res, rounds, rev_a, rev_b = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]

def figures(path):
    out = {}
    for m in json.load(open(path))["measurements"]:
        f = {}
        lat = m.get("latency") or {}
        for key, name in (("p50_ns", "p50"), ("mean_ns", "mean"), ("p99_ns", "p99")):
            if lat.get(key):
                f[name] = lat[key]
        if m["elapsed_s"] > 0 and m["ops"] > 0:
            f["IOPS"] = m["ops"] / m["elapsed_s"]
        if m.get("cpu_ns_per_op"):
            f["cpu/op"] = m["cpu_ns_per_op"]
        out[m["name"]] = f
    return out

ratios = {}
for i in range(1, rounds + 1):
    a, b = figures(f"{res}/A-{i}.json"), figures(f"{res}/B-{i}.json")
    for name, fa in a.items():
        for fig, va in fa.items():
            vb = b.get(name, {}).get(fig)
            if vb is not None and va > 0:
                ratios.setdefault((name, fig), []).append(vb / va)

print(f"B ÷ A  (A = {rev_a}, B = {rev_b}; {rounds} interleaved rounds)")
print(open(f"{res}/load.txt").read().strip())
print("latency and cpu/op: < 1 means B is faster/cheaper; IOPS: > 1 means B does more")
print(f"{'measurement':<40} {'figure':<7} {'min':>7} {'median':>7} {'max':>7}")
for (name, fig), rs in sorted(ratios.items()):
    print(f"{name:<40} {fig:<7} {min(rs):>7.3f} {statistics.median(rs):>7.3f} {max(rs):>7.3f}")
EOF
