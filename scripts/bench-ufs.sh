#!/usr/bin/env bash
# Under-storage benchmark on this machine: an S3 server (s3s-fs on 127.0.0.1, its root
# under the work dir) holds bucket `bench` with an object of BENCH_UFS_BYTES (1 GiB) under
# data/read/ and another under data/load/, uploaded through the product's client (so the
# server keeps their ETags, as S3 does), and 10,000 small objects under data/many/. A
# standalone cluster with its FUSE mount (`curvine-fluid standalone --mnt`) mounts
# s3://bench/data at /bench with `mount-ufs`. Printed as a table (also $WORK/bench-ufs.md):
#   (a) the object read straight from the server with the product's client
#       (benches/ufs.rs: `Ufs::read_range` in sequential 8 MiB ranges, and each range
#       as BENCH_UFS_PARTS parallel parts with `Ufs::read_range_parallel`);
#   (b) a cold read through the mount (dd bs=8M to /dev/null: the worker fetches every
#       block from the server), and its ratio to (a);
#   (c) the same read again, warm (served from the worker's cache);
#   (d) a DataLoad (`curvine-fluid load /bench/load`) of the second object;
#   (e) the first listing of the 10,000 keys through the mount (`ls | wc -l`), and a second.
# The page cache is dropped before each measure (reads come from the disks, not memory).
# Everything it starts (s3s-fs, the standalone cluster) is stopped by PID on exit, its
# mount unmounted, and the data and keys removed (the logs and the table stay in the work dir).
#
# Usage: scripts/bench-ufs.sh     (as root: FUSE and drop_caches)
# Env knobs:
#   BENCH_UFS_BYTES  size of each big object (default 1073741824)
#   BENCH_UFS_KEYS   objects in the listed prefix (default 10000)
#   BENCH_UFS_PARTS  parallel parts per 8 MiB range in (a) (default 4)
#   BIN              curvine-fluid binary (default target/release/curvine-fluid, built)
#   S3S_FS           the s3s-fs binary (default target/tools/bin/s3s-fs, then PATH;
#                    scripts/deps.sh installs it)
#   BENCH_S3_PORT    the S3 server's port on 127.0.0.1 (default 19014)
#   BENCH_WORK       work dir (default: a new mktemp -d under /tmp)
#   BENCH_KEEP=1     keep the objects and the cluster's data too
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
BYTES=${BENCH_UFS_BYTES:-1073741824}
KEYS=${BENCH_UFS_KEYS:-10000}
PARTS=${BENCH_UFS_PARTS:-4}
S3_PORT=${BENCH_S3_PORT:-19014}
WORK=""
S3_PID=""   # the s3s-fs this script started
CV_PID=""   # the curvine-fluid standalone this script started
MNT=""

die() { echo "bench-ufs: $*" >&2; exit 1; }
now_ms() { echo $(( $(date +%s%N) / 1000000 )); }
is_mounted() { awk -v m="$1" '$2 == m { found = 1 } END { exit !found }' /proc/self/mounts; }
mount_usable() {
  awk -v m="$1" '$2 == m && $3 ~ /^fuse/ { found = 1 } END { exit !found }' /proc/self/mounts &&
    timeout -s KILL 5 stat -f "$1" >/dev/null 2>&1 && timeout -s KILL 5 ls "$1" >/dev/null 2>&1
}
drop_caches() { sync; echo 3 > /proc/sys/vm/drop_caches; }
mibps() { awk -v b="$1" -v ms="$2" 'BEGIN { printf "%.1f", b / 1048576 / (ms / 1000) }'; } # bytes ms

# Stops a process this script started: SIGTERM, 30 s, then SIGKILL.
stop_pid() { # pid name
  local pid=$1 end; end=$(( $(now_ms) + 30000 ))
  kill -TERM "$pid" 2>/dev/null || return 0
  while kill -0 "$pid" 2>/dev/null && [ "$(now_ms)" -lt "$end" ]; do sleep 0.1; done
  if kill -0 "$pid" 2>/dev/null; then
    echo "bench-ufs: $2 ($pid) still running 30 s after SIGTERM; SIGKILL" >&2
    kill -KILL "$pid" 2>/dev/null || true
  fi
  wait "$pid" 2>/dev/null || true
}

cleanup() {
  [ -n "$CV_PID" ] && stop_pid "$CV_PID" "curvine-fluid standalone"
  if [ -n "$MNT" ] && is_mounted "$MNT"; then
    echo "bench-ufs: $MNT still mounted; umount -l" >&2
    umount -l "$MNT" 2>/dev/null || true
  fi
  [ -n "$S3_PID" ] && stop_pid "$S3_PID" s3s-fs
  if [ -n "$WORK" ] && [ "${BENCH_KEEP:-0}" != 1 ]; then rm -rf "$WORK/s3" "$WORK/data" "$WORK/secrets"; fi
  return 0
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---------------------------------------------------------------- prerequisites
[ "$(id -u)" = 0 ] && [ -w /proc/sys/vm/drop_caches ] || die "must run as root (FUSE mount, drop_caches)"
[ -c /dev/fuse ] || die "/dev/fuse is missing"
command -v jq >/dev/null || die "jq not found (scripts/deps.sh installs it)"
if [ -z "${S3S_FS:-}" ]; then
  S3S_FS=$ROOT/target/tools/bin/s3s-fs
  [ -x "$S3S_FS" ] || S3S_FS=$(command -v s3s-fs || true)
fi
[ -n "$S3S_FS" ] && [ -x "$S3S_FS" ] || die "s3s-fs not found: scripts/deps.sh installs it into target/tools/bin (or set S3S_FS)"
if [ -z "${BIN:-}" ]; then
  BIN=$ROOT/target/release/curvine-fluid
  (cd "$ROOT" && cargo build --release --locked --bin curvine-fluid) || die "cargo build --release failed"
fi
[ -x "$BIN" ] || die "$BIN is not an executable"
HELPER=$(cd "$ROOT" && cargo bench --locked --bench ufs --no-run --message-format=json |
  jq -r 'select(.reason == "compiler-artifact" and .target.name == "ufs" and .executable != null) | .executable' | tail -1)
[ -n "$HELPER" ] && [ -x "$HELPER" ] || die "cargo bench --bench ufs --no-run built no executable"

if [ -n "${BENCH_WORK:-}" ]; then mkdir -p "$BENCH_WORK"; WORK=$(cd "$BENCH_WORK" && pwd)
else WORK=$(mktemp -d /tmp/bench-ufs.XXXXXX); fi
echo "bench-ufs: work dir $WORK, objects of $BYTES bytes, $KEYS keys, s3s-fs $S3S_FS"

# ---------------------------------------------------------------- the S3 server
ACCESS_KEY=AKIABENCHUFS$(printf '%08d' $((RANDOM * RANDOM % 100000000)))
SECRET_KEY=$(head -c 30 /dev/urandom | base64 | tr -d '/+=\n')
mkdir -p "$WORK/secrets" "$WORK/s3/bench/data/many"
printf '%s' "$ACCESS_KEY" > "$WORK/secrets/access-key"
printf '%s' "$SECRET_KEY" > "$WORK/secrets/secret-key"
"$S3S_FS" --host 127.0.0.1 --port "$S3_PORT" --access-key "$ACCESS_KEY" --secret-key "$SECRET_KEY" \
  "$WORK/s3" > "$WORK/s3s-fs.log" 2>&1 &
S3_PID=$!
end=$(( $(now_ms) + 15000 ))
until timeout 2 bash -c "exec 3<>/dev/tcp/127.0.0.1/$S3_PORT" 2>/dev/null; do
  kill -0 "$S3_PID" 2>/dev/null || die "s3s-fs exited (port $S3_PORT taken? set BENCH_S3_PORT); see $WORK/s3s-fs.log"
  [ "$(now_ms)" -lt "$end" ] || die "s3s-fs does not answer on 127.0.0.1:$S3_PORT within 15 s"
  sleep 0.1
done

# The mount as Fluid gives it: mounts[0] of a runtime config, the keys in secret files.
cat > "$WORK/runtime.json" <<EOF
{"mounts":[{"mountPoint":"s3://bench/data","options":{"endpoint_url":"http://127.0.0.1:$S3_PORT","path_style":"true","region_name":"us-east-1"},"encryptOptions":{"access":"$WORK/secrets/access-key","secret":"$WORK/secrets/secret-key"},"name":"bench","path":"/bench","readOnly":true}],"accessModes":["ReadOnlyMany"],"targetPath":"$WORK/mnt"}
EOF
export BENCH_UFS_RUNTIME_JSON=$WORK/runtime.json

echo "== uploading read/object.bin and load/object.bin ($BYTES bytes each), writing $KEYS keys"
"$HELPER" put read/object.bin "$BYTES" || die "upload of read/object.bin failed"
"$HELPER" put load/object.bin "$BYTES" || die "upload of load/object.bin failed"
for i in $(seq -w 1 "$KEYS"); do echo "$i" > "$WORK/s3/bench/data/many/key-$i"; done
[ "$(ls "$WORK/s3/bench/data/many" | wc -l)" = "$KEYS" ] || die "the $KEYS keys were not written"

# ---------------------------------------------------------------- (a) straight from S3
echo "== (a) reading read/object.bin straight from the server"
"$HELPER" read read/object.bin "$PARTS" | tee "$WORK/direct.log" || die "the direct read failed"
direct_seq=$(awk '$1 == "RESULT" && $2 == "direct_seq" { print $3 }' "$WORK/direct.log")
direct_par=$(awk '$1 == "RESULT" && $2 == "direct_parallel" { print $3 }' "$WORK/direct.log")
[ -n "$direct_seq" ] && [ -n "$direct_par" ] || die "the direct read printed no result"

# ---------------------------------------------------------------- the cluster
MNT=$WORK/mnt
mkdir -p "$WORK/data" "$MNT"
"$BIN" standalone --data-dir "$WORK/data" --mnt "$MNT" > "$WORK/standalone.log" 2>&1 &
CV_PID=$!
end=$(( $(now_ms) + 30000 ))
until mount_usable "$MNT"; do
  kill -0 "$CV_PID" 2>/dev/null || die "curvine-fluid standalone exited (ports 8995-9001 taken?); see $WORK/standalone.log"
  [ "$(now_ms)" -lt "$end" ] || die "$MNT not usable after 30 s; see $WORK/standalone.log"
  sleep 0.05
done
printf '[client]\nmaster_addrs = [{ hostname = "127.0.0.1", port = 8995 }]\n' > "$WORK/cv.toml"
t0=$(now_ms)
out=$(FLUID_RUNTIME_CONFIG_PATH=$WORK/runtime.json "$BIN" --conf "$WORK/cv.toml" mount-ufs 2>"$WORK/mount-ufs.log") ||
  die "mount-ufs failed: $(tail -3 "$WORK/mount-ufs.log")"
mount_ms=$(( $(now_ms) - t0 ))
[ "$out" = '{"mounted":["/bench"]}' ] || die "mount-ufs printed $out"
echo "mount-ufs: $out in $mount_ms ms"

# One timed dd of a file through the mount; prints ms. Fails unless every byte came.
timed_dd() { # file
  local t0 ms copied
  drop_caches
  t0=$(now_ms)
  dd if="$1" of=/dev/null bs=8M 2> "$WORK/dd.err" || die "dd of $1 failed: $(cat "$WORK/dd.err")"
  ms=$(( $(now_ms) - t0 ))
  copied=$(awk '/bytes/ { print $1; exit }' "$WORK/dd.err")
  [ "$copied" = "$BYTES" ] || die "dd read $copied bytes of $1, expected $BYTES"
  echo "$ms"
}

# ---------------------------------------------------------------- (b) cold, (c) warm
echo "== (b) cold read through the mount"
cold_ms=$(timed_dd "$MNT/bench/read/object.bin")
cold=$(mibps "$BYTES" "$cold_ms")
echo "cold: $cold MiB/s"
echo "== (c) warm read through the mount"
warm_ms=$(timed_dd "$MNT/bench/read/object.bin")
warm=$(mibps "$BYTES" "$warm_ms")
echo "warm: $warm MiB/s"
cmp "$WORK/s3/bench/data/read/object.bin" "$MNT/bench/read/object.bin" ||
  die "read/object.bin reads differently through the mount"

# ---------------------------------------------------------------- (d) DataLoad
echo "== (d) DataLoad of /bench/load"
drop_caches
t0=$(now_ms)
"$BIN" --conf "$WORK/cv.toml" load /bench/load > "$WORK/load.log" 2>&1 ||
  die "load /bench/load failed: $(tail -5 "$WORK/load.log")"
load_ms=$(( $(now_ms) - t0 ))
load=$(mibps "$BYTES" "$load_ms")
echo "DataLoad: $load MiB/s"

# ---------------------------------------------------------------- (e) listing
echo "== (e) listing $KEYS keys through the mount"
list_once() {
  local t0 n
  drop_caches
  t0=$(now_ms)
  n=$(ls "$MNT/bench/many" | wc -l)
  [ "$n" = "$KEYS" ] || die "ls of /bench/many gave $n entries, expected $KEYS"
  echo $(( $(now_ms) - t0 ))
}
list1_ms=$(list_once)
list2_ms=$(list_once)

# ---------------------------------------------------------------- the table
secs() { awk -v ms="$1" 'BEGIN { printf "%.2f", ms / 1000 }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }
{
  echo "# bench-ufs $(date -u +%FT%TZ), $(nproc) cores, kernel $(uname -r), object $BYTES bytes, s3s-fs on loopback"
  echo
  echo "| measure | result |"
  echo "|---|---:|"
  echo "| (a) straight from S3, sequential 8 MiB ranges (\`Ufs::read_range\`) | $direct_seq MiB/s |"
  echo "| (a) straight from S3, 8 MiB ranges in $PARTS parallel parts (\`read_range_parallel\`) | $direct_par MiB/s |"
  echo "| (b) cold read through the mount (dd bs=8M) | $cold MiB/s |"
  echo "| (b) cold / (a) sequential | $(ratio "$cold" "$direct_seq") |"
  echo "| (b) cold / (a) parallel | $(ratio "$cold" "$direct_par") |"
  echo "| (c) warm read through the mount | $warm MiB/s |"
  echo "| (d) DataLoad (\`curvine-fluid load\`) | $load MiB/s |"
  echo "| (e) first listing of $KEYS keys (\`ls \| wc -l\`) | $(secs "$list1_ms") s |"
  echo "| (e) second listing | $(secs "$list2_ms") s |"
  echo "| mount-ufs (probe and mount table) | $mount_ms ms |"
} > "$WORK/bench-ufs.md"
echo
cat "$WORK/bench-ufs.md"
echo
echo "table written to $WORK/bench-ufs.md"
