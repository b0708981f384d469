#!/usr/bin/env bash
# The fronts against a real local cluster (etcd, 3 MDS, 3 chunkservers): the NBD server
# driven by stock userspace NBD clients (nbdinfo, qemu-io, qemu-img, nbdcopy, fio's nbd
# engine) and the fio external engine on Debian's fio, with data crossing between them
# (written through one front, checked through the other) and across 16 MiB chunk
# boundaries. Run by scripts/test.sh after the debug build; stand-alone:
#   CARGO_TARGET_DIR=target scripts/cluster-tests/fronts.sh
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/../.."
TARGET_DIR=${CARGO_TARGET_DIR:-$(pwd)/target}
BIN=$TARGET_DIR/debug
ENGINE=$BIN/libbasalt_fio.so

for b in basalt basalt-nbd basalt-mds basalt-chunkserver; do
    [ -x "$BIN/$b" ] || { echo "fronts.sh: $BIN/$b missing (cargo build --workspace --bins)" >&2; exit 1; }
done
# Always: a test build leaves the engine in deps/ only, and a stale .so would be tested.
cargo build -p basalt-fio --lib

WORK=$(mktemp -d "${TMPDIR:-/tmp}/basalt-fronts.XXXXXX")
export BASALT_DEV_CLUSTER_DIR=$WORK/cluster
export BASALT_CLIENT_CONF=$WORK/client.toml
SOCK=$WORK/nbd.sock
NBD_PID=

cleanup() {
    local rc=$?
    if [ -n "$NBD_PID" ]; then
        kill "$NBD_PID" 2>/dev/null
        wait "$NBD_PID" 2>/dev/null
    fi
    if [ "$rc" -ne 0 ]; then
        echo "fronts.sh: FAILED (exit $rc); last log lines:" >&2
        find "$WORK" -name '*.log' -exec tail -n 15 {} + >&2 2>/dev/null || true
    fi
    "$BIN/basalt" dev-cluster down >/dev/null 2>&1 || true
    rm -rf "$WORK"
    exit "$rc"
}
trap cleanup EXIT

say() { echo "fronts.sh: $*"; }

# Wait (bounded) until the NBD server's socket exists.
nbd_up() {
    rm -f "$SOCK"
    "$BIN/basalt-nbd" serve --volume "$1" --socket "$SOCK" >"$WORK/nbd.log" 2>&1 &
    NBD_PID=$!
    for _ in $(seq 100); do
        [ -S "$SOCK" ] && return 0
        if ! kill -0 "$NBD_PID" 2>/dev/null; then
            echo "basalt-nbd exited: $(cat "$WORK/nbd.log")" >&2
            NBD_PID=
            return 1
        fi
        sleep 0.1
    done
    echo "basalt-nbd did not listen within 10 s" >&2
    return 1
}

nbd_down() {
    kill "$NBD_PID"
    wait "$NBD_PID" 2>/dev/null || true
    NBD_PID=
}

uri() { echo "nbd+unix:///$1?socket=$SOCK"; }

# qemu-io URI CMD...: run each command; qemu-io exits 0 even when a command fails (a
# pattern mismatch included), so its output is checked: every command must report its
# bytes and nothing may fail.
qio() {
    local target=$1 out args=() c
    shift
    for c in "$@"; do args+=(-c "$c"); done
    out=$(qemu-io -f raw "${args[@]}" "$target" 2>&1)
    if grep -qiE "fail|error" <<<"$out" || [ "$(grep -cE '^(read|wrote) ' <<<"$out")" -ne $# ]; then
        echo "qemu-io: $out" >&2
        return 1
    fi
}

say "starting a dev cluster"
"$BIN/basalt" dev-cluster up --timeout 60 --wait-copysets >/dev/null
"$BIN/basalt" volume create fronts-nbd --size 1GiB >/dev/null
"$BIN/basalt" volume create fronts-fio --size 1GiB >/dev/null

say "NBD: nbdinfo, qemu-io patterns across a chunk boundary"
nbd_up fronts-nbd
nbdinfo "$(uri fronts-nbd)" | grep -q "export-size: 1073741824"
# 1 MiB of 0xab from 15.5 MiB to 16.5 MiB crosses the first chunk boundary; 0xcd at 40 MiB.
qio "$(uri fronts-nbd)" "write -P 0xab 16252928 1048576" "write -P 0xcd 41943040 65536"
qio "$(uri fronts-nbd)" "read -P 0xab 16252928 1048576" "read -P 0xcd 41943040 65536" \
    "read -P 0 0 16252928"
# The check can fail: a wrong pattern is reported.
if qio "$(uri fronts-nbd)" "read -P 0xac 16252928 4096" 2>/dev/null; then
    echo "qemu-io did not report a pattern mismatch" >&2
    exit 1
fi

say "NBD: qemu-img convert in, nbdcopy out (whole volume), compare both ways"
head -c $((24 << 20)) /dev/urandom >"$WORK/img.raw"
qemu-img convert -n -f raw -O raw "$WORK/img.raw" "$(uri fronts-nbd)"
nbdcopy "$(uri fronts-nbd)" "$WORK/back.raw"
cmp -n $((24 << 20)) "$WORK/img.raw" "$WORK/back.raw"
# The rest of the volume: the 0xcd block at 40 MiB, zeros elsewhere.
cmp <(head -c 65536 /dev/zero | tr '\0' '\315') \
    <(tail -c +$((40 * 1048576 + 1)) "$WORK/back.raw" | head -c 65536)
say "NBD: nbdcopy in from a (partly sparse) file, qemu-img compare against the export"
head -c $((8 << 20)) /dev/urandom >"$WORK/img2.raw"
truncate -s 32M "$WORK/img2.raw"
nbdcopy "$WORK/img2.raw" "$(uri fronts-nbd)"
nbdcopy "$(uri fronts-nbd)" "$WORK/back2.raw"
truncate -s 32M "$WORK/back2.raw"
qemu-img compare -f raw -F raw "$WORK/img2.raw" "$WORK/back2.raw" >/dev/null
rm -f "$WORK"/*.raw

say "NBD: fio's nbd engine, randwrite + crc32c verify"
fio --name=nbdv --ioengine=nbd --uri="$(uri fronts-nbd)" --rw=randwrite --bs=4k \
    --offset=32m --size=8m --iodepth=8 --verify=crc32c --do_verify=1 --minimal --verify_state_save=0 \
    --output="$WORK/fio-nbd.out" >/dev/null
awk -F';' '{ if ($5 != 0) exit 1 }' "$WORK/fio-nbd.out"
nbd_down

say "fio engine: randwrite + crc32c verify at QD1 and QD16 across a chunk boundary"
for qd in 1 16; do
    fio --name=eng --ioengine=external:"$ENGINE" --volume=fronts-fio --rw=randwrite \
        --bs=4k --offset=12m --size=8m --iodepth=$qd --verify=crc32c --do_verify=1 \
        --minimal --verify_state_save=0 --output="$WORK/fio-eng.out" >/dev/null
    awk -F';' '{ if ($5 != 0) exit 1 }' "$WORK/fio-eng.out"
done

say "cross-front: fio engine writes a pattern, NBD reads it back"
fio --name=pat --ioengine=external:"$ENGINE" --volume=fronts-fio --rw=write --bs=64k \
    --offset=48m --size=4m --iodepth=4 --verify=pattern --verify_pattern=0x5a \
    --do_verify=0 --minimal --verify_state_save=0 --output="$WORK/fio-pat.out" >/dev/null
nbd_up fronts-fio
qio "$(uri fronts-fio)" "read -P 0x5a 50331648 4194304"
nbd_down

say "cross-front: NBD wrote 0xcd at 40 MiB of fronts-nbd, the fio engine verifies it"
fio --name=chk --ioengine=external:"$ENGINE" --volume=fronts-nbd --rw=read --bs=64k \
    --offset=40m --size=64k --verify=pattern --verify_pattern=0xcd --verify_only=1 \
    --minimal --verify_state_save=0 --output="$WORK/fio-chk.out" >/dev/null
awk -F';' '{ if ($5 != 0) exit 1 }' "$WORK/fio-chk.out"

say "all fronts checks passed"
