#!/usr/bin/env bash
# End-to-end test of under storage, with Docker standing in for Kubernetes (scenario 6 of
# scripts/e2e-docker.sh): a Fluid Dataset mounting an S3 bucket's prefix
# (s3://ml-datasets/imagenet at /imagenet, read-only) is cached read-through.
#
#   - An S3 server (s3s-fs, which checks SigV4 signatures) runs in a container on the
#     run's network as the service minio.ml.svc.cluster.local:9000; its root is a host
#     directory, so objects are made by writing files: bucket ml-datasets with nested
#     objects under imagenet/ (one of 64 MiB + 4 KiB, an empty one) and keys beside the
#     prefix that must not show (imagenet-v2/, other/).
#   - A CacheRuntime of 1 master, 1 worker and a client as scenario 1, with the dataset's
#     Secret files mounted read-only at /etc/fluid/secrets/<secret>/{access-key,secret-key}
#     in the master and the worker only, as Fluid mounts them.
#   - mount-ufs with a Secret holding a wrong secret key fails within Fluid's 60 s with a
#     line naming mounts[0] and never prints a key; then with the right one it prints
#     exactly {"mounted":["/imagenet"]}, twice.
#   - An app pod (the CSI bind of the client's mount) lists the dataset (same files and
#     directories as the bucket's prefix) and reads train/ cold, compared by sha256;
#     report-summary's cachedPercentage is then train/'s share of the bytes; writes,
#     removals and mkdir under the read-only mount fail with EROFS.
#   - A DataLoad pod (no runtime config, no secrets) loads /imagenet: exit 0, then
#     report-summary says 100.0%, and every file reads back with the bucket's sha256.
#   - An object written into the bucket appears through the mount within the mount's
#     sync_interval (2 s) plus a margin, with its content; removed, it disappears.
#   - No log of master or worker holds the secret key.
#
# Usage: scripts/e2e-ufs.sh          env: IMAGE (default curvine-fluid:latest),
#        S3S_FS (default target/tools/bin/s3s-fs, where scripts/deps.sh installs it, then PATH),
#        E2E_BUILD=0 to use an existing image instead of `make docker-build-fluid`,
#        E2E_KEEP=1 to leave the containers, network and mounts for a look afterwards.
# Needs root (mounts), Docker, /dev/fuse and jq.
set -euo pipefail
cd "$(dirname "$0")/.."

IMAGE=${IMAGE:-curvine-fluid:latest}
RUN_ID=cfufs-$$
WORK=$(mktemp -d /tmp/curvine-ufs-e2e.XXXXXX)
NS=default
RT=imagenet
BIN=/usr/local/bin/curvine-fluid
TARGET=/runtime-mnt/cache/$NS/$RT/cache-fuse
ROOT=$WORK/runtime-mnt
E2E_NAME=e2e-ufs
# log, fail, cleanup (on exit), the CacheRuntime pods
. scripts/e2e-lib.sh

S3_HOST=minio.ml.svc.cluster.local
S3=$WORK/s3                       # the S3 server's root: buckets are its directories
DATA=$S3/ml-datasets/imagenet     # the mounted prefix, as files
MNT=$ROOT/cache/$NS/$RT/cache-fuse # the client's mount, seen from the host
SYNC_S=2                          # the mount's sync_interval, in seconds
ACCESS_KEY=AKIACURVINEE2E$(printf '%06d' $((RANDOM * 31 % 1000000)))
SECRET_KEY=$(head -c 30 /dev/urandom | base64 | tr -d '/+=\n')
WRONG_KEY=$(head -c 30 /dev/urandom | base64 | tr -d '/+=\n')

command -v jq >/dev/null || fail "jq not found (scripts/deps.sh installs it)"
[ "$(id -u)" = 0 ] || fail "needs root (bind mounts with shared propagation)"
[ -c /dev/fuse ] || fail "/dev/fuse is missing"
if [ -z "${S3S_FS:-}" ]; then
  S3S_FS=$PWD/target/tools/bin/s3s-fs
  [ -x "$S3S_FS" ] || S3S_FS=$(command -v s3s-fs || true)
fi
[ -n "$S3S_FS" ] && [ -x "$S3S_FS" ] ||
  fail "the S3 server s3s-fs is missing: scripts/deps.sh installs it into target/tools/bin (or set S3S_FS)"
scripts/docker-engine.sh
if [ "${E2E_BUILD:-1}" != 0 ]; then
  make --no-print-directory docker-build-fluid
fi
docker image inspect "$IMAGE" >/dev/null 2>&1 || fail "image $IMAGE missing: make docker-build-fluid"

# ---------------------------------------------------------------- the bucket
rnd() { head -c "$2" /dev/urandom > "$DATA/$1"; } # key-under-prefix bytes
mkdir -p "$DATA/train/n01440764" "$DATA/train/n01443537" "$DATA/train/shards" \
  "$DATA/val/shards" "$S3/ml-datasets/imagenet-v2" "$S3/ml-datasets/other"
seq 1 400 | sed 's/^/n0144 label /' > "$DATA/labels.txt"
: > "$DATA/empty.txt"
rnd train/n01440764/n01440764_10026.JPEG 119813
rnd train/n01440764/n01440764_10027.JPEG $((1048576 + 5))
rnd train/n01443537/n01443537_10007.JPEG 307200
rnd train/shards/train-00000.tar $((64 * 1048576 + 4096))
rnd val/ILSVRC2012_val_00000001.JPEG 204800
rnd val/shards/val-00000.tar $((8 * 1048576 + 3))
echo "beside the prefix: must not show" > "$S3/ml-datasets/imagenet-v2/leak.txt"
echo "another prefix" > "$S3/ml-datasets/other/readme.txt"
# What the app pod must see: files, directories, contents.
mkdir -p "$WORK/expect"
(cd "$DATA" && find . -type f | sort > "$WORK/expect/files.txt" &&
  find . -mindepth 1 -type d | sort > "$WORK/expect/dirs.txt" &&
  sha256sum $(cat "$WORK/expect/files.txt") > "$WORK/expect/sha256.txt")
total_bytes=$(find "$DATA" -type f -printf '%s\n' | awk '{ s += $1 } END { print s }')
train_bytes=$(find "$DATA/train" -type f -printf '%s\n' | awk '{ s += $1 } END { print s }')
log "bucket ml-datasets: $(wc -l < "$WORK/expect/files.txt") objects, $total_bytes bytes under imagenet/"

# The dataset's Secrets as Fluid mounts them (one directory per Secret, a file per key).
secret() { # name access secret
  mkdir -p "$WORK/secrets/$1"
  printf '%s' "$2" > "$WORK/secrets/$1/access-key"
  printf '%s' "$3" > "$WORK/secrets/$1/secret-key"
}
secret imagenet-s3-cred "$ACCESS_KEY" "$SECRET_KEY"
secret imagenet-s3-rotated "$ACCESS_KEY" "$WRONG_KEY"

docker network create --label "$RUN_ID" "$RUN_ID" >/dev/null
shared_mount_root

# ---------------------------------------------------------------- the S3 server
docker run -d --label "$RUN_ID" --name "$RUN_ID-minio" --hostname minio-0 --network "$RUN_ID" \
  --network-alias "$S3_HOST" -v "$S3S_FS:/usr/local/bin/s3s-fs:ro" -v "$S3:/data" \
  --entrypoint /usr/local/bin/s3s-fs "$IMAGE" \
  --host 0.0.0.0 --port 9000 --access-key "$ACCESS_KEY" --secret-key "$SECRET_KEY" /data >/dev/null
for i in $(seq 1 60); do
  [ "$(http_code minio 9000 /)" != 000 ] && break
  [ "$i" = 60 ] && fail "the S3 server does not answer on port 9000 within 30 s"
  sleep 0.5
done
log "S3 server s3s-fs answers at $S3_HOST:9000"

# ---------------------------------------------------------------- the runtime
mounts() { # secret
  printf '[{"mountPoint":"s3://ml-datasets/imagenet","options":{"endpoint_url":"http://%s:9000","path_style":"true","region_name":"us-east-1","sync_interval":"%ds"},"encryptOptions":{"access":"/etc/fluid/secrets/%s/access-key","secret":"/etc/fluid/secrets/%s/secret-key"},"name":"imagenet","path":"/imagenet","readOnly":true}]' \
    "$S3_HOST" "$SYNC_S" "$1" "$1"
}
conf=$WORK/config
mkdir -p "$conf"
runtime_json 1 1 "$(mounts imagenet-s3-cred)" '["ReadOnlyMany"]' > "$conf/runtime.json"
# The same Dataset after its Secret was replaced by one with a wrong secret key.
runtime_json 1 1 "$(mounts imagenet-s3-rotated)" '["ReadOnlyMany"]' > "$conf/runtime-rotated.json"
jq -e . "$conf/runtime.json" >/dev/null || fail "runtime.json is not JSON"
start_pods "$conf" 1 1 \
  -v "$WORK/secrets/imagenet-s3-cred:/etc/fluid/secrets/imagenet-s3-cred:ro" \
  -v "$WORK/secrets/imagenet-s3-rotated:/etc/fluid/secrets/imagenet-s3-rotated:ro"
log "CacheRuntime $RT: master, worker and client ready"

summary() { # -> report-summary's JSON on stdout
  timeout 40 docker exec "$RUN_ID-$RT-master-0" $BIN report-summary 2>"$WORK/report.err" ||
    fail "report-summary failed: $(tail -3 "$WORK/report.err")"
}

# ---------------------------------------------------------------- mount-ufs
# A wrong secret key: refused within Fluid's 60 s, naming the mount, printing no key.
t0=$(date +%s%N)
rc=0
timeout 90 docker exec -e FLUID_RUNTIME_CONFIG_PATH=/etc/fluid/config/runtime-rotated.json \
  "$RUN_ID-$RT-master-0" $BIN mount-ufs > "$WORK/wrong.out" 2> "$WORK/wrong.err" || rc=$?
took_ms=$(( ($(date +%s%N) - t0) / 1000000 ))
[ "$rc" != 0 ] || fail "mount-ufs with a wrong secret key exited 0: $(cat "$WORK/wrong.out")"
[ "$rc" != 124 ] || fail "mount-ufs with a wrong secret key still ran after 90 s"
[ "$took_ms" -lt 60000 ] || fail "mount-ufs with a wrong secret key took ${took_ms} ms (Fluid gives 60 s)"
grep 'mounts\[0\]' "$WORK/wrong.err" | grep -qiE 'key|credential|secret' ||
  fail "mount-ufs with a wrong secret key did not name mounts[0] and the keys: $(tail -3 "$WORK/wrong.err")"
if grep -qF -e "$SECRET_KEY" -e "$WRONG_KEY" "$WORK/wrong.out" "$WORK/wrong.err"; then
  fail "mount-ufs printed a secret key"
fi
log "wrong secret key refused in ${took_ms} ms (exit $rc): $(grep -m1 'mounts\[0\]' "$WORK/wrong.err")"

out=$(timeout 90 docker exec "$RUN_ID-$RT-master-0" $BIN mount-ufs 2>"$WORK/mount-ufs.err") ||
  fail "mount-ufs failed: $(tail -3 "$WORK/mount-ufs.err")"
[ "$out" = '{"mounted":["/imagenet"]}' ] || fail "mount-ufs printed '$out'"
out2=$(timeout 90 docker exec "$RUN_ID-$RT-master-0" $BIN mount-ufs 2>/dev/null) || fail "mount-ufs failed the second time"
[ "$out2" = "$out" ] || fail "mount-ufs is not idempotent: $out then $out2"
log "mount-ufs: $out (twice)"

# ---------------------------------------------------------------- reads through the mount
# The listing, then train/ cold: every byte fetched by the worker from S3.
t0=$(date +%s%N)
app_pod 'cd /data/imagenet
  find . -type f | sort | diff -u /expect/files.txt - >&2
  find . -mindepth 1 -type d | sort | diff -u /expect/dirs.txt - >&2
  grep " \./train/" /expect/sha256.txt | sha256sum --quiet -c -
  [ "$(stat -c %s train/shards/train-00000.tar)" = 67112960 ] && [ ! -s empty.txt ]
  [ ! -e /data/imagenet-v2 ] && [ ! -e /data/other ]' -v "$WORK/expect:/expect:ro" \
  > "$WORK/app.log" 2>&1 || fail "the app pod's listing or cold read of train/ failed: $(tail -15 "$WORK/app.log")"
took_ms=$(( ($(date +%s%N) - t0) / 1000000 ))
log "listing as the bucket's; train/ ($train_bytes bytes) read cold and matched in ${took_ms} ms"

# cachedPercentage is train/'s share of the bytes once the reads are reported.
want=$(awk -v a="$train_bytes" -v b="$total_bytes" 'BEGIN { printf "%.1f", 100 * a / b }')
for i in $(seq 1 40); do
  out=$(summary)
  pct=$(echo "$out" | jq -r .cachedPercentage | tr -d %)
  awk -v p="$pct" -v w="$want" 'BEGIN { exit !(p - w <= 0.2 && w - p <= 0.2) }' && break
  [ "$i" = 40 ] && fail "after reading train/, cachedPercentage is not ${want}% within 20 s: $out"
  sleep 0.5
done
log "report-summary after the cold read: $out (train/ is ${want}% of the bytes)"

# Read-only: no file, directory or removal reaches the bucket.
app_pod 'cd /data/imagenet
  for try in "echo x > new.txt" "mkdir newdir" "rm labels.txt" "echo x >> labels.txt" "mv labels.txt l2.txt"; do
    if bash -c "$try" 2>/tmp/err; then echo "allowed: $try"; exit 1; fi
    grep -q "Read-only file system" /tmp/err || { echo "$try: $(cat /tmp/err)"; exit 1; }
  done' > "$WORK/ro.log" 2>&1 || fail "the read-only mount took a change: $(cat "$WORK/ro.log")"
[ ! -e "$DATA/new.txt" ] && [ ! -e "$DATA/newdir" ] && [ -e "$DATA/labels.txt" ] ||
  fail "a change through the read-only mount reached the bucket"
cmp -s "$DATA/labels.txt" <(seq 1 400 | sed 's/^/n0144 label /') || fail "labels.txt changed in the bucket"
log "writes, mkdir, rm and mv under /imagenet fail with EROFS"

# ---------------------------------------------------------------- DataLoad
# A DataLoad pod as Fluid starts it: no runtime config, no secrets; the workers fetch.
t0=$(date +%s%N)
timeout 120 docker run --rm --label "$RUN_ID" --network "$RUN_ID" --hostname "$RT-load-loader-job-q8w2e" \
  -e FLUID_DATALOAD_METADATA=false -e FLUID_DATALOAD_DATA_PATH=/imagenet \
  -e FLUID_DATALOAD_PATH_REPLICAS=1 -e FLUID_RUNTIME_CONFIG_PATH=/etc/fluid/config/runtime.json \
  "$IMAGE" load > "$WORK/load.log" 2>&1 || fail "DataLoad of /imagenet failed: $(tail -5 "$WORK/load.log")"
took_ms=$(( ($(date +%s%N) - t0) / 1000000 ))
for i in $(seq 1 40); do
  out=$(summary)
  [ "$(echo "$out" | jq -r .cachedPercentage)" = "100.0%" ] && break
  [ "$i" = 40 ] && fail "after the DataLoad, cachedPercentage is not 100.0% within 20 s: $out"
  sleep 0.5
done
echo "$out" | jq -e '(.cached|type=="string") and (.cacheCapacity|endswith("GiB"))
  and (.cacheHitRatio|endswith("%"))' >/dev/null || fail "report-summary printed $out"
log "DataLoad of /imagenet in ${took_ms} ms; report-summary: $out"
app_pod 'cd /data/imagenet && sha256sum --quiet -c /expect/sha256.txt' \
  -v "$WORK/expect:/expect:ro" > "$WORK/app2.log" 2>&1 ||
  fail "files read after the DataLoad differ from the bucket: $(tail -5 "$WORK/app2.log")"
# Those reads found their blocks cached: the hit ratio moves off 0 once reported.
for i in $(seq 1 40); do
  out=$(summary)
  [ "$(echo "$out" | jq -r .cacheHitRatio)" != "0.0%" ] && break
  [ "$i" = 40 ] && fail "reads served from the cache are not counted as hits within 20 s: $out"
  sleep 0.5
done
log "every file read back after the DataLoad matches the bucket; cacheHitRatio $(echo "$out" | jq -r .cacheHitRatio)"

# ---------------------------------------------------------------- the bucket changes
# Within the sync interval plus a margin (kernel entry caches, the poll itself).
within_ms=$(( (SYNC_S + 8) * 1000 ))
wait_listing() { # present|absent name -> ms it took
  local t0 end
  t0=$(date +%s%N); end=$(( t0 / 1000000 + within_ms ))
  while :; do
    if timeout 5 ls "$MNT/imagenet/val" 2>/dev/null | grep -qxF "$2"; then
      [ "$1" = present ] && break
    else
      [ "$1" = absent ] && break
    fi
    [ "$(( $(date +%s%N) / 1000000 ))" -lt "$end" ] ||
      fail "val/$2 not $1 through the mount ${within_ms} ms after the bucket changed"
    sleep 0.2
  done
  echo $(( ($(date +%s%N) - t0) / 1000000 ))
}
NEW=ILSVRC2012_val_00000002.JPEG
timeout 5 ls "$MNT/imagenet/val" > /dev/null || fail "val/ does not list through the mount on the host"
rnd "val/$NEW" 333333
took_ms=$(wait_listing present "$NEW")
cmp -s "$DATA/val/$NEW" "$MNT/imagenet/val/$NEW" || fail "the new object reads differently through the mount"
log "a new object appeared through the mount after ${took_ms} ms (sync_interval ${SYNC_S} s) and reads as written"
rm "$DATA/val/$NEW"
took_ms=$(wait_listing absent "$NEW")
log "the removed object disappeared after ${took_ms} ms"

# ---------------------------------------------------------------- secrets stay secret
for c in "$RT-master-0" "$RT-worker-0" "$RT-client-x1"; do
  docker logs "$RUN_ID-$c" > "$WORK/logs.txt" 2>&1 || true
  if grep -qF "$SECRET_KEY" "$WORK/logs.txt"; then fail "the secret key is in $c's log"; fi
done
log "no log holds the secret key"
log "under-storage scenario passed"
