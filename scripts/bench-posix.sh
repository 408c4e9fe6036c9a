#!/usr/bin/env bash
# POSIX conformance of the mount next to a bindfs passthrough mount of a local directory,
# with a pjdfstest build you provide (it is not in the package registries this project
# uses; build it from its sources: autoreconf -ifs && ./configure && make pjdfstest).
# Runs as root (the suite changes owners); prints the cases passed per group for both
# mounts. Stops only the processes it started.
#
# Usage: PJDFSTEST=/path/to/pjdfstest scripts/bench-posix.sh [group...]
#   groups default to chmod chown link mkdir mkfifo mknod open rename rmdir symlink
#   truncate unlink utimensat; BIN defaults to target/release/curvine-fluid.
set -euo pipefail
cd "$(dirname "$0")/.."

PJDFSTEST=${PJDFSTEST:?set PJDFSTEST to a built pjdfstest directory (holding pjdfstest and tests/)}
BIN=${BIN:-target/release/curvine-fluid}
GROUPS_TO_RUN=("$@")
[ ${#GROUPS_TO_RUN[@]} -gt 0 ] || GROUPS_TO_RUN=(chmod chown link mkdir mkfifo mknod open rename rmdir symlink truncate unlink utimensat)
[ "$(id -u)" = 0 ] || { echo "error: run as root (the suite changes owners and modes)" >&2; exit 1; }
[ -x "$PJDFSTEST/pjdfstest" ] || { echo "error: $PJDFSTEST/pjdfstest is not built" >&2; exit 1; }
[ -x "$BIN" ] || { echo "error: $BIN is missing (cargo build --release)" >&2; exit 1; }
command -v prove >/dev/null || { echo "error: prove (perl) is missing" >&2; exit 1; }
command -v bindfs >/dev/null || { echo "error: bindfs is missing (apt-get install bindfs)" >&2; exit 1; }

WORK=$(mktemp -d /tmp/curvine-posix.XXXXXX)
PID=
cleanup() {
  [ -n "$PID" ] && kill "$PID" 2>/dev/null && wait "$PID" 2>/dev/null || true
  for m in "$WORK/ours" "$WORK/bindfs"; do
    mountpoint -q "$m" && umount -l "$m" 2>/dev/null || true
  done
  rm -rf "$WORK"
}
trap cleanup EXIT

# Our mount: a standalone cluster on ports apart from the defaults.
cat > "$WORK/c.toml" <<EOF
cluster_id = "posix"
[master]
hostname = "127.0.0.1"
rpc_port = 28995
web_port = 29000
meta_dir = "$WORK/data/meta"
[journal]
hostname = "127.0.0.1"
rpc_port = 28996
journal_addrs = [{ hostname = "127.0.0.1", port = 28996, id = 1 }]
journal_dir = "$WORK/data/journal"
[worker]
hostname = "127.0.0.1"
rpc_port = 28997
web_port = 29001
data_dir = ["[DISK]$WORK/data/worker"]
[client]
master_addrs = [{ hostname = "127.0.0.1", port = 28995 }]
[fuse]
web_port = 29002
EOF
mkdir -p "$WORK/ours" "$WORK/bindfs" "$WORK/src"
"$BIN" --conf "$WORK/c.toml" standalone --data-dir "$WORK/data" --mnt "$WORK/ours" >"$WORK/ours.log" 2>&1 &
PID=$!
for _ in $(seq 1 100); do
  grep -q " $WORK/ours fuse.curvinefs " /proc/self/mounts && break
  sleep 0.1
done
grep -q " $WORK/ours fuse.curvinefs " /proc/self/mounts || { cat "$WORK/ours.log" >&2; echo "error: the mount did not come up" >&2; exit 1; }
bindfs "$WORK/src" "$WORK/bindfs"

# Cases passed and run per group, from prove's TAP output.
run() {
  local mnt=$1 group=$2 out
  mkdir -p "$mnt/w"
  out=$(cd "$mnt/w" && timeout -k 10 900 prove -v -r "$PJDFSTEST/tests/$group" 2>&1 || true)
  printf '%s %s\n' "$(grep -c '^ok ' <<<"$out")" "$(grep -cE '^(not )?ok ' <<<"$out")"
}

printf '%-10s %16s %16s\n' group ours bindfs
total=(0 0 0 0)
for g in "${GROUPS_TO_RUN[@]}"; do
  read -r op on < <(run "$WORK/ours" "$g")
  read -r bp bn < <(run "$WORK/bindfs" "$g")
  printf '%-10s %7s / %-6s %7s / %-6s\n' "$g" "$op" "$on" "$bp" "$bn"
  total=($((total[0] + op)) $((total[1] + on)) $((total[2] + bp)) $((total[3] + bn)))
done
pct() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f%%", (b ? 100 * a / b : 0) }'; }
printf '%-10s %7s / %-6s %7s / %-6s\n' total "${total[0]}" "${total[1]}" "${total[2]}" "${total[3]}"
echo "passed: ours $(pct "${total[0]}" "${total[1]}"), bindfs $(pct "${total[2]}" "${total[3]}")"
