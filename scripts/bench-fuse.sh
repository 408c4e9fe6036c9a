#!/usr/bin/env bash
# FUSE benchmark: runs the reference jobs of shared/bench (fiobench.sh: sequential write/read,
# 4 parallel readers, 4k random reads buffered and O_DIRECT; metabench.py: create/stat/rename/
# unlink of 10,000 files with 16 threads), and one job of ours (4 KiB appends each followed
# by fsync, a log writer) against up to three targets on this machine:
#   curvine  our FUSE mount: "$BIN standalone --data-dir $WORK/data --mnt $WORK/cv"
#   bindfs   a bindfs passthrough mount of $WORK/bind-src on $WORK/bind
#   local    the plain local directory $WORK/local
# and prints a Markdown table (also written to $WORK/bench-fuse.md) with ratios of curvine to
# bindfs and to local. Needs root (the jobs drop the page cache), fio, bindfs, fuse3, python3.
# Usage: scripts/bench-fuse.sh
# Env knobs:
#   TARGETS      targets to run, in order (default "curvine bindfs local")
#   BIN          curvine-fluid binary (default target/release/curvine-fluid; built if missing)
#   BENCH_WORK   work dir (default: a new mktemp -d under /tmp); raw results are kept there
#   BENCH_JOBS   dir holding fiobench.sh and metabench.py (default <repo>/../shared/bench)
#   SKIP_DIRECT  1 = skip the O_DIRECT random read job (passed through to fiobench.sh)
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
jobs_dir=${BENCH_JOBS:-$(dirname "$0")/../../shared/bench}
BENCH_JOBS=$(cd "$jobs_dir" 2>/dev/null && pwd) || BENCH_JOBS=$jobs_dir
BIN=${BIN:-$ROOT/target/release/curvine-fluid}
TARGETS=${TARGETS:-curvine bindfs local}
export SKIP_DIRECT=${SKIP_DIRECT:-0}
WORK=""     # set by make_work once the prerequisites are checked

MOUNTS=()    # mount points this script mounted
CV_PID=""    # the curvine process this script started

die() { echo "bench-fuse: $*" >&2; exit 1; }
now_ms() { echo $(( $(date +%s%N) / 1000000 )); }
is_mounted() { awk -v m="$1" '$2 == m { found = 1 } END { exit !found }' /proc/self/mounts; }
# A FUSE mount that answers: listed as fuse*, and statfs + readdir return.
mount_usable() {
    awk -v m="$1" '$2 == m && $3 ~ /^fuse/ { found = 1 } END { exit !found }' /proc/self/mounts &&
        timeout -s KILL 5 stat -f "$1" >/dev/null 2>&1 && timeout -s KILL 5 ls "$1" >/dev/null 2>&1
}

check_prereqs() {
    local t need_fuse=0
    for t in $TARGETS; do
        case $t in
            curvine) need_fuse=1 ;;
            bindfs) need_fuse=1; command -v bindfs >/dev/null || die "bindfs not found: apt-get install fio bindfs fuse3"
                command -v fusermount3 >/dev/null || die "fusermount3 not found: apt-get install fio bindfs fuse3" ;;
            local) ;;
            *) die "unknown target '$t' in TARGETS (known: curvine bindfs local)" ;;
        esac
    done
    command -v fio >/dev/null || die "fio not found: apt-get install fio bindfs fuse3"
    command -v python3 >/dev/null || die "python3 not found: apt-get install python3"
    if [ "$(id -u)" != 0 ] || [ ! -w /proc/sys/vm/drop_caches ]; then
        die "must run as root (the jobs write /proc/sys/vm/drop_caches)"
    fi
    [ "$need_fuse" = 0 ] || [ -c /dev/fuse ] || die "/dev/fuse missing: apt-get install fio bindfs fuse3 (and modprobe fuse)"
    if [ ! -r "$BENCH_JOBS/fiobench.sh" ] || [ ! -r "$BENCH_JOBS/metabench.py" ]; then
        die "reference jobs not found in $BENCH_JOBS (set BENCH_JOBS)"
    fi
}

make_work() {
    if [ -n "${BENCH_WORK:-}" ]; then mkdir -p "$BENCH_WORK"; WORK=$(cd "$BENCH_WORK" && pwd)
    else WORK=$(mktemp -d /tmp/bench-fuse.XXXXXX); fi
}

# Waits up to $2 seconds for mount point $1 to disappear.
wait_unmounted() {
    local end=$(( $(now_ms) + $2 * 1000 ))
    while is_mounted "$1"; do [ "$(now_ms)" -lt "$end" ] || return 1; sleep 0.1; done
}

start_curvine() {
    if [ ! -x "$BIN" ]; then
        echo "== building $BIN"
        (cd "$ROOT" && cargo build --release --locked)
        [ -x "$BIN" ] || die "$BIN still missing after cargo build"
    fi
    mkdir -p "$WORK/data" "$WORK/cv"
    local t0 end; t0=$(now_ms); end=$(( t0 + 30000 ))
    "$BIN" standalone --data-dir "$WORK/data" --mnt "$WORK/cv" >"$WORK/standalone.log" 2>&1 &
    CV_PID=$!; MOUNTS+=("$WORK/cv")
    until mount_usable "$WORK/cv"; do
        kill -0 "$CV_PID" 2>/dev/null || die "curvine exited before its mount was usable; see $WORK/standalone.log"
        [ "$(now_ms)" -lt "$end" ] || die "$WORK/cv not usable after 30 s; see $WORK/standalone.log"
        sleep 0.05
    done
    local ms=$(( $(now_ms) - t0 ))
    echo "mount usable after $ms ms"; echo "$ms" >"$WORK/curvine-mount-ms"
}

stop_curvine() {
    [ -n "$CV_PID" ] || return 0
    local pid=$CV_PID rc=0 end; end=$(( $(now_ms) + 30000 )); CV_PID=""
    kill -TERM "$pid" 2>/dev/null || true
    while kill -0 "$pid" 2>/dev/null && [ "$(now_ms)" -lt "$end" ]; do sleep 0.1; done
    if kill -0 "$pid" 2>/dev/null; then
        echo "bench-fuse: curvine ($pid) still running 30 s after SIGTERM; sending SIGKILL" >&2
        kill -KILL "$pid" 2>/dev/null || true
    fi
    wait "$pid" 2>/dev/null || rc=$?
    echo "curvine exited with status $rc"
    if ! wait_unmounted "$WORK/cv" 30; then
        echo "bench-fuse: $WORK/cv still mounted 30 s after stop; umount -l" >&2
        umount -l "$WORK/cv" || true
    fi
}

start_bindfs() {
    mkdir -p "$WORK/bind-src" "$WORK/bind"
    bindfs "$WORK/bind-src" "$WORK/bind"; MOUNTS+=("$WORK/bind")
    local end=$(( $(now_ms) + 5000 ))
    until mount_usable "$WORK/bind"; do [ "$(now_ms)" -lt "$end" ] || die "bindfs mount on $WORK/bind not usable after 5 s"; sleep 0.1; done
}

stop_bindfs() { is_mounted "$WORK/bind" && { fusermount3 -u "$WORK/bind" || umount "$WORK/bind"; }; return 0; }

# On any exit: stop what this script started, unmount what it mounted.
cleanup() {
    local m
    stop_curvine || true
    for m in "${MOUNTS[@]}"; do
        is_mounted "$m" || continue
        echo "bench-fuse: unmounting $m" >&2
        fusermount3 -u "$m" 2>/dev/null || umount "$m" 2>/dev/null || umount -l "$m" || true
    done
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Runs both reference jobs in dir $2, saving output under $WORK as label $1.
run_jobs() {
    echo "== $1: fio in $2"
    OUT="$WORK/fio-$1" bash "$BENCH_JOBS/fiobench.sh" "$2" "$1" 2>&1 | tee "$WORK/fio-$1.log"
    # Ours, beside the reference jobs: a log appender, 4 KiB appends each followed by fsync.
    echo "== $1: append + fsync in $2"
    fio --name=appendsync --directory="$2" --filename=appendsync.dat --rw=write --bs=4k \
        --size=4m --fsync=1 --ioengine=psync --output-format=json \
        --output="$WORK/fio-$1/$1-appendsync.json" 2>&1 | tee -a "$WORK/fio-$1.log"
    rm -f "$2/appendsync.dat"
    echo "== $1: metadata in $2"
    python3 "$BENCH_JOBS/metabench.py" "$2" 2>&1 | tee "$WORK/meta-$1.log"
}

# Builds the Markdown table from $WORK/fio-LABEL/*.json and $WORK/meta-LABEL.log.
report() {
    python3 - "$WORK" "$TARGETS" <<'PY'
import json, os, sys
work, targets = sys.argv[1], sys.argv[2].split()
skip_direct = os.environ.get("SKIP_DIRECT", "0") == "1"
problems = []
def fio(label, job, kind, unit):
    if job == "randread-direct" and skip_direct:
        return "skipped"
    try:
        text = open(f"{work}/fio-{label}/{label}-{job}.json").read()
        j = json.JSONDecoder().raw_decode(text[text.index("{"):])[0]["jobs"][0]
        if j.get("error") or j[kind]["io_bytes"] <= 0:
            raise ValueError("fio error %s, %d bytes" % (j.get("error"), j[kind]["io_bytes"]))
        return j[kind]["bw"] / 1024.0 if unit == "MiB/s" else j[kind]["iops"]
    except Exception as e:
        problems.append(f"{label} fio {job}: {e!r}")
def meta(label, phase):
    try:
        lines = open(f"{work}/meta-{label}.log").read().splitlines()
        if any(l.startswith("ERRORS in") for l in lines):
            raise ValueError("metabench reported errors")
        d = json.loads([l for l in lines if l.startswith("JSON ")][-1][5:])
        return d["results"][phase]["ops_per_s"]
    except Exception as e:
        problems.append(f"{label} metabench {phase}: {e!r}")
rows = [("seqwrite 1M", "MiB/s", lambda t: fio(t, "seqwrite", "write", "MiB/s")),
        ("seqread 1M cold", "MiB/s", lambda t: fio(t, "seqread", "read", "MiB/s")),
        ("seqread4 1M, 4 readers", "MiB/s", lambda t: fio(t, "seqread4", "read", "MiB/s")),
        ("randread 4k buffered", "IOPS", lambda t: fio(t, "randread", "read", "IOPS")),
        ("randread 4k O_DIRECT", "IOPS", lambda t: fio(t, "randread-direct", "read", "IOPS")),
        ("append 4k + fsync", "IOPS", lambda t: fio(t, "appendsync", "write", "IOPS"))]
rows += [(p, "ops/s", lambda t, p=p: meta(t, p)) for p in ("create", "stat", "rename", "unlink")]
cols = ["curvine", "bindfs", "local"]
def cell(v, unit):
    if isinstance(v, str): return v
    if v is None: return "FAIL"
    return "%.1f" % v if unit == "MiB/s" else "%.0f" % v
def ratio(a, b):
    return "%.2f" % (a / b) if isinstance(a, (int, float)) and isinstance(b, (int, float)) and b else "–"
out = ["| measure | unit | " + " | ".join(cols) + " | curvine/bindfs | curvine/local |",
       "|---|---|" + "---:|" * (len(cols) + 2)]
for name, unit, get in rows:
    v = {c: get(c) if c in targets else "–" for c in cols}
    out.append(f"| {name} | {unit} | " + " | ".join(cell(v[c], unit) for c in cols) +
               f" | {ratio(v['curvine'], v['bindfs'])} | {ratio(v['curvine'], v['local'])} |")
if os.path.exists(f"{work}/curvine-mount-ms"):
    out += ["", "curvine mount usable after %s ms" % open(f"{work}/curvine-mount-ms").read().strip()]
print("\n".join(out))
for p in problems: print("bench-fuse: FAILED", p, file=sys.stderr)
sys.exit(1 if problems else 0)
PY
}

main() {
    check_prereqs
    make_work
    echo "bench-fuse: targets '$TARGETS', work dir $WORK, jobs from $BENCH_JOBS"
    local t
    for t in $TARGETS; do
        case $t in
            curvine) start_curvine; run_jobs curvine "$WORK/cv"; stop_curvine ;;
            bindfs) start_bindfs; run_jobs bindfs "$WORK/bind"; stop_bindfs ;;
            local) mkdir -p "$WORK/local"; run_jobs local "$WORK/local" ;;
        esac
    done
    local rc=0
    { echo "# bench-fuse $(date -u +%FT%TZ), $(nproc) cores, kernel $(uname -r), SKIP_DIRECT=$SKIP_DIRECT"
      echo; report; } >"$WORK/bench-fuse.md" || rc=$?
    echo; cat "$WORK/bench-fuse.md"; echo
    echo "table written to $WORK/bench-fuse.md"
    return "$rc"
}

main "$@"
