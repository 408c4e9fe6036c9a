#!/usr/bin/env bash
# Overwrite benchmark: fio 4 KiB random writes with an fsync every $FSYNC_EVERY writes into a
# $SIZE file laid out first, on our FUSE mount ("$BIN standalone --data-dir $WORK/data --mnt
# $WORK/cv") and on the plain local directory $WORK/local. Also reports the most space the
# FUSE client's temp directory ($WORK/client-tmp, its TMPDIR) held during the job: rewrites
# are block-level copy-on-write on the workers, so it should stay 0.
# Prints a Markdown table (also written to $WORK/bench-overwrite.md). Needs root, /dev/fuse,
# fio (apt-get install -y fio).
# Usage: scripts/bench-overwrite.sh
# Env knobs:
#   BIN          curvine-fluid binary (default target/release/curvine-fluid; built if missing)
#   BENCH_WORK   work dir (default: a new mktemp -d under /tmp); fio's JSON is kept there
#   SIZE         file size (default 1g)
#   RUNTIME      seconds per job (default 30)
#   FSYNC_EVERY  fio's fsync=N (default 32)
#   DATA_DIR     the cluster's data dir (default $WORK/data); put it on a file system with
#                reflinks (XFS, btrfs) to see the worker's block copies share extents
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
BIN=${BIN:-$ROOT/target/release/curvine-fluid}
SIZE=${SIZE:-1g}
RUNTIME=${RUNTIME:-30}
FSYNC_EVERY=${FSYNC_EVERY:-32}
WORK=""
CV_PID=""
WATCH_PID=""

die() { echo "bench-overwrite: $*" >&2; exit 1; }
now_ms() { echo $(( $(date +%s%N) / 1000000 )); }
is_mounted() { awk -v m="$1" '$2 == m { found = 1 } END { exit !found }' /proc/self/mounts; }

cleanup() {
    [ -z "$WATCH_PID" ] || kill "$WATCH_PID" 2>/dev/null || true
    if [ -n "$CV_PID" ]; then
        kill -TERM "$CV_PID" 2>/dev/null || true
        local end=$(( $(now_ms) + 30000 ))
        while kill -0 "$CV_PID" 2>/dev/null && [ "$(now_ms)" -lt "$end" ]; do sleep 0.2; done
        kill -KILL "$CV_PID" 2>/dev/null || true
    fi
    if [ -n "$WORK" ] && is_mounted "$WORK/cv"; then umount -l "$WORK/cv" || true; fi
}
trap cleanup EXIT

command -v fio >/dev/null || die "fio not found: apt-get install -y fio"
[ "$(id -u)" = 0 ] || die "must run as root (FUSE mount)"
[ -c /dev/fuse ] || die "/dev/fuse missing"
if [ -n "${BENCH_WORK:-}" ]; then mkdir -p "$BENCH_WORK"; WORK=$(cd "$BENCH_WORK" && pwd)
else WORK=$(mktemp -d /tmp/bench-overwrite.XXXXXX); fi
if [ ! -x "$BIN" ]; then
    echo "== building $BIN"
    (cd "$ROOT" && cargo build --release --locked)
fi

DATA_DIR=${DATA_DIR:-$WORK/data}
mkdir -p "$DATA_DIR" "$WORK/cv" "$WORK/local" "$WORK/client-tmp"
echo "== starting curvine (standalone) on $WORK/cv"
TMPDIR="$WORK/client-tmp" "$BIN" standalone --data-dir "$DATA_DIR" --mnt "$WORK/cv" \
    >"$WORK/standalone.log" 2>&1 &
CV_PID=$!
end=$(( $(now_ms) + 60000 ))
until is_mounted "$WORK/cv" && ls "$WORK/cv" >/dev/null 2>&1; do
    kill -0 "$CV_PID" 2>/dev/null || die "curvine exited; see $WORK/standalone.log"
    [ "$(now_ms)" -lt "$end" ] || die "no mount within 60 s; see $WORK/standalone.log"
    sleep 0.2
done

# The most bytes under the client's temp dir, sampled every 0.2 s while the jobs run.
watch_tmp() {
    local most=0 now
    while :; do
        now=$(du -sb "$WORK/client-tmp" | cut -f1)
        [ "$now" -le "$most" ] || { most=$now; echo "$most" >"$WORK/client-tmp.max"; }
        sleep 0.2
    done
}
echo 0 >"$WORK/client-tmp.max"
# du counts the directory itself; measure from that baseline.
base=$(du -sb "$WORK/client-tmp" | cut -f1)
watch_tmp &
WATCH_PID=$!

run() { # target dir
    local name=$1 dir=$2
    echo "== $name: lay out $SIZE, then 4k randwrite, fsync every $FSYNC_EVERY, ${RUNTIME}s"
    fio --name=layout --directory="$dir" --filename=ow.bin --size="$SIZE" --rw=write --bs=1m \
        --ioengine=psync --end_fsync=1 --output-format=terse >/dev/null
    fio --name=randwrite --directory="$dir" --filename=ow.bin --size="$SIZE" --rw=randwrite \
        --bs=4k --ioengine=psync --fsync="$FSYNC_EVERY" --time_based --runtime="$RUNTIME" \
        --randrepeat=0 --output-format=json >"$WORK/$name.json"
}
run curvine "$WORK/cv"
run local "$WORK/local"
kill "$WATCH_PID" 2>/dev/null || true
WATCH_PID=""
tmp_max=$(( $(cat "$WORK/client-tmp.max") - base ))
[ "$tmp_max" -ge 0 ] || tmp_max=0

iops() { python3 -c 'import json,sys; print(round(json.load(open(sys.argv[1]))["jobs"][0]["write"]["iops"]))' "$1"; }
cv=$(iops "$WORK/curvine.json")
lo=$(iops "$WORK/local.json")
{
    echo "| target | 4k randwrite IOPS (fsync every $FSYNC_EVERY, $SIZE file) | client temp space, most |"
    echo "|---|---|---|"
    echo "| curvine FUSE ($(df --output=fstype "$DATA_DIR" | tail -1) data dir) | $cv | $tmp_max bytes |"
    echo "| local dir | $lo | - |"
} | tee "$WORK/bench-overwrite.md"
echo "results in $WORK"
