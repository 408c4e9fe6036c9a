#!/usr/bin/env bash
# End-to-end test of the image as Fluid runs it, with Docker standing in for Kubernetes:
# containers named and addressed like Fluid's pods (network aliases are the Kubernetes
# FQDNs <rt>-master-<i>.svc-<rt>-master.<ns>.svc.cluster.local), the runtime config
# mounted read-only at /etc/fluid/config/runtime.json, the env vars Fluid injects, FUSE
# containers with --device /dev/fuse --cap-add SYS_ADMIN, and the mount root shared with
# the host through an rshared bind, as Fluid's Bidirectional hostPath does.
#
# Scenarios:
#   1. CacheRuntime 1 master + 1 worker + client: the test pod's script on the mount, then
#      mount-ufs and report-summary executed in master-0 and their stdout parsed as JSON.
#   2. CacheRuntime 3 masters + 2 workers + client: master-0 killed, the mount keeps working.
#   3. ThinRuntime: a thin-fuse container mounts the running cluster at its targetPath.
#   4. thin-fuse killed on top of its mount and started again: it clears the dead mount;
#      then `docker stop` unmounts it within the grace period. The CacheRuntime client
#      killed: its dead mount (under Fluid's hostPath at exactly the target) is cleared
#      with `curvine-fluid umount` from the node, and the client starts again.
#   5. The Helm chart's cluster (scripts/e2e-chart.sh): the containers the chart renders
#      for 3 masters, 2 workers and the FUSE DaemonSet, and its helm test pod's script.
#   6. Under storage (scripts/e2e-ufs.sh): an S3 server's bucket prefix mounted read-only
#      as a dataset, read cold through the client, loaded by a DataLoad, followed when
#      objects come and go; a wrong secret key refused by mount-ufs.
#
# Usage: scripts/e2e-docker.sh          env: IMAGE (default curvine-fluid:latest),
#        E2E_BUILD=0 to use an existing image instead of `make docker-build-fluid`,
#        E2E_KEEP=1 to leave the containers, network and mounts for a look afterwards.
set -euo pipefail
cd "$(dirname "$0")/.."

IMAGE=${IMAGE:-curvine-fluid:latest}
RUN_ID=cfe2e-$$
WORK=$(mktemp -d /tmp/curvine-e2e.XXXXXX)
NS=default
RT=curvine-demo
BIN=/usr/local/bin/curvine-fluid
TARGET=/runtime-mnt/cache/$NS/$RT/cache-fuse
ROOT=$WORK/runtime-mnt
E2E_NAME=e2e
# log, fail, cleanup (on exit), the CacheRuntime pods
. scripts/e2e-lib.sh

need() { command -v "$1" >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$2" >/dev/null; }; }
need jq jq
scripts/docker-engine.sh
if [ "${E2E_BUILD:-1}" != 0 ]; then
  make --no-print-directory docker-build-fluid
fi
docker image inspect "$IMAGE" >/dev/null 2>&1 || fail "image $IMAGE missing: make docker-build-fluid"
[ -c /dev/fuse ] || fail "/dev/fuse is missing"

docker network create --label "$RUN_ID" "$RUN_ID" >/dev/null

# The mount root, shared both ways like Fluid's Bidirectional hostPath.
shared_mount_root

# runtime.json of scenarios 1 to 4: the cluster's own /data at the dataset path /curvine.
start_cache_runtime() { # masters workers
  local conf=$WORK/config-$1m$2w
  mkdir -p "$conf"
  runtime_json "$1" "$2" '[{"mountPoint":"curvine:///data","name":"curvine","path":"/curvine"}]' \
    '["ReadWriteMany"]' > "$conf/runtime.json"
  start_pods "$conf" "$1" "$2"
}

# ---------------------------------------------------------------- scenario 1
log "scenario 1: CacheRuntime 1 master + 1 worker + client"
start_cache_runtime 1 1
logs_have "$RT-master-0" 'detected mode mode=cache-runtime component=master' ||
  fail "master-0's log does not show the detected mode"
logs_have "$RT-client-x1" "INFO mounted path=$TARGET" || fail "the client's log does not show the mount"

# mountUFS first, as Fluid does once master and worker are ready.
out=$(docker exec "$RUN_ID-$RT-master-0" $BIN mount-ufs 2>"$WORK/mount-ufs.err") ||
  fail "mount-ufs failed: $(cat "$WORK/mount-ufs.err")"
[ "$(echo "$out" | jq -c '.mounted | sort')" = '["/curvine"]' ] || fail "mount-ufs printed $out"
out2=$(docker exec "$RUN_ID-$RT-master-0" $BIN mount-ufs 2>/dev/null)
[ "$out2" = "$out" ] || fail "mount-ufs is not idempotent: $out then $out2"
log "mount-ufs: $out"

# The test pod's script (runtime-class/test-pod.yaml) through the mount.
app_pod 'echo "hello curvine" > /data/curvine/hello.txt
  [ "$(cat /data/curvine/hello.txt)" = "hello curvine" ]
  mkdir -p /data/curvine/dir1/dir2
  for i in 1 2 3; do echo "file-$i" > /data/curvine/dir1/f$i.txt; done
  [ "$(ls /data/curvine/dir1 | tr "\n" " ")" = "dir2 f1.txt f2.txt f3.txt " ]
  dd if=/dev/urandom of=/data/curvine/big.bin bs=1M count=32 status=none
  sha256sum /data/curvine/big.bin > /data/big.sha
  ls -l /data /data/curvine >/dev/null' || fail "the test pod's script failed on the mount"
app_pod 'cd /data/curvine && sha256sum -c /data/big.sha >/dev/null' || fail "big.bin read back wrong"
[ "$(cat "$ROOT/cache/$NS/$RT/cache-fuse/data/hello.txt")" = "hello curvine" ] ||
  fail "the host does not see the file under the mount's source /data"

# DataLoad: a pod with only what Fluid gives it (no runtime config); it finds the masters
# through the dataset's service, named after the DataLoad (curvine-demo-load).
docker run --rm --label "$RUN_ID" --network "$RUN_ID" --hostname "$RT-load-loader-job-x7k2m" \
  -e FLUID_DATALOAD_METADATA=false -e FLUID_DATALOAD_DATA_PATH=/curvine:/curvine/dir1 \
  -e FLUID_DATALOAD_PATH_REPLICAS=1:1 -e FLUID_RUNTIME_CONFIG_PATH=/etc/fluid/config/runtime.json \
  "$IMAGE" load > "$WORK/load.log" 2>&1 || fail "DataLoad failed: $(tail -5 "$WORK/load.log")"
grep -q 'loaded path=/data/big.bin bytes=33554432' "$WORK/load.log" ||
  fail "DataLoad did not load big.bin: $(tail -5 "$WORK/load.log")"
log "DataLoad: $(grep -c 'INFO loaded' "$WORK/load.log") files loaded"

# Short-circuit I/O: the client shares the worker's socket directory, so big.bin was
# written into the worker's block files directly, and a read from the client's container
# opens them the same way; the worker's /metrics counts both.
docker exec "$RUN_ID-$RT-client-x1" $BIN fs cat /data/big.bin > "$WORK/sc.bin" 2>"$WORK/sc.err" ||
  fail "fs cat in the client failed: $(tail -3 "$WORK/sc.err")"
[ "$(sha256sum < "$WORK/sc.bin" | cut -d' ' -f1)" = "$(app_pod 'cut -d" " -f1 /data/big.sha')" ] ||
  fail "big.bin read through the short circuit differs"
http_body "$RT-worker-0" 9001 /metrics > "$WORK/worker-metrics.txt" || fail "no worker /metrics"
sc_read=$(awk '/^curvine_worker_short_circuit_opens_total\{mode="read"\}/ { print $2 }' "$WORK/worker-metrics.txt")
sc_write=$(awk '/^curvine_worker_short_circuit_opens_total\{mode="write"\}/ { print $2 }' "$WORK/worker-metrics.txt")
awk -v r="${sc_read:-0}" -v w="${sc_write:-0}" 'BEGIN { exit !(r > 0 && w > 0) }' ||
  fail "short circuit not taken: read opens ${sc_read:-none}, write opens ${sc_write:-none}"
http_body "$RT-client-x1" 9002 /metrics > "$WORK/client-metrics.txt" || fail "no client /metrics"
cl_write=$(awk '/^curvine_client_short_circuit_opens_total\{mode="write"\}/ { print $2 }' "$WORK/client-metrics.txt")
awk -v w="${cl_write:-0}" 'BEGIN { exit !(w > 0) }' ||
  fail "the mount wrote no block through the short circuit: ${cl_write:-none}"
log "short circuit: $sc_read block reads, $sc_write block writes through the worker's socket"

# Reads that reach the workers (the mount's reads were served from the page cache), then
# report-summary until a heartbeat has carried the workers' hit counters.
docker exec "$RUN_ID-$RT-master-0" $BIN fs cat /data/big.bin > /dev/null 2>&1 || fail "fs cat failed"
for _ in $(seq 1 20); do
  out=$(docker exec "$RUN_ID-$RT-master-0" $BIN report-summary 2>"$WORK/report.err") ||
    fail "report-summary failed: $(cat "$WORK/report.err")"
  [ "$(echo "$out" | jq -r .cacheHitRatio)" != "0.0%" ] && break
  sleep 0.5
done
[ "$(echo "$out" | jq -r .cacheHitRatio)" = "100.0%" ] || fail "hit ratio not counted: $out"
echo "$out" | jq -e '(.cached|type=="string") and (.cachedPercentage|endswith("%"))
  and (.cacheCapacity|endswith("GiB")) and (.cacheHitRatio|endswith("%"))' >/dev/null ||
  fail "report-summary printed $out"
[ "$(echo "$out" | jq -r .cachedPercentage)" = "100.0%" ] || fail "not all data cached: $out"
log "report-summary: $out"
stop_cache_runtime

# ---------------------------------------------------------------- scenario 2
log "scenario 2: CacheRuntime 3 masters + 2 workers + client; master-0 killed"
start_cache_runtime 3 2
docker exec "$RUN_ID-$RT-master-0" $BIN mount-ufs >/dev/null 2>&1 || fail "mount-ufs on 3 masters failed"
app_pod 'echo before > /data/curvine/before.txt' || fail "write before the kill failed"
docker kill "$RUN_ID-$RT-master-0" >/dev/null
log "master-0 killed"
app_pod 'for i in $(seq 1 20); do echo "after-$i" > /data/curvine/after-$i.txt; done
  [ "$(cat /data/curvine/before.txt)" = before ]
  [ "$(cat /data/curvine/after-20.txt)" = after-20 ]
  [ "$(ls /data/curvine | grep -c ^after-)" = 20 ]' || fail "the mount stopped working after master-0 was killed"
docker exec "$RUN_ID-$RT-master-1" $BIN report > "$WORK/report.txt" 2>&1 || fail "report failed: $(cat "$WORK/report.txt")"
grep -q leader "$WORK/report.txt" || fail "no leader after the kill: $(cat "$WORK/report.txt")"
log "mount kept working; $(grep -m1 -i leader "$WORK/report.txt")"

# ---------------------------------------------------------------- scenario 3
log "scenario 3: ThinRuntime thin-fuse against the running masters"
THIN_RT=curvine-thin
THIN_TARGET=/runtime-mnt/thin/$NS/$THIN_RT/thin-fuse
THIN_HOST=$WORK$THIN_TARGET   # the same mount seen on the host through the rshared bind
mkdir -p "$WORK/thin-conf" "$ROOT/thin/$NS/$THIN_RT"
endpoints="$(fqdn master 0):8995,$(fqdn master 1):8995,$(fqdn master 2):8995"
printf '{"mounts":[{"mountPoint":"curvine:///data","options":{"master-endpoints":"%s"},"name":"curvine"}],"targetPath":"%s","accessModes":["ReadWriteMany"]}\n' \
  "$endpoints" "$THIN_TARGET" > "$WORK/thin-conf/config.json"
docker run -d --label "$RUN_ID" --name "$RUN_ID-thin-fuse" --hostname node-a7 --network "$RUN_ID" \
  --device /dev/fuse --cap-add SYS_ADMIN \
  -v "$WORK/thin-conf:/etc/fluid/config:ro" \
  -v "$ROOT/thin/$NS/$THIN_RT:/runtime-mnt/thin/$NS/$THIN_RT:rshared" \
  -e FLUID_RUNTIME_TYPE=thin -e FLUID_RUNTIME_NS=$NS -e FLUID_RUNTIME_NAME=$THIN_RT \
  -e MOUNT_POINT=$THIN_TARGET \
  "$IMAGE" fluid-thin-runtime >/dev/null
thin_mounted() { awk -v p="$THIN_HOST" '$5 == p && / - fuse/' /proc/self/mountinfo | grep -q .; }
wait_thin() {
  for _ in $(seq 1 120); do
    thin_mounted && [ -e "$THIN_HOST/before.txt" ] && return 0
    sleep 0.5
  done
  fail "the thin-fuse container did not mount $THIN_TARGET"
}
wait_thin
[ "$(cat "$THIN_HOST/before.txt")" = before ] || fail "the thin mount does not show the cluster's /data"
log "thin-fuse mounted the cluster's /data"

# ---------------------------------------------------------------- scenario 4
# A FUSE container killed (OOM, node pressure) leaves a dead mount on the host; the next
# container must clear it and mount again. The ThinRuntime hostPath is the parent of the
# target, so the container starts over its dead mount.
log "scenario 4: thin-fuse killed on top of its mount, then started again"
expect_stale() { # host path
  if ls "$1" >/dev/null 2>"$WORK/stale.err"; then fail "the killed client's mount at $1 still answers"; fi
  grep -q 'Transport endpoint is not connected' "$WORK/stale.err" ||
    fail "expected a stale mount at $1, got: $(cat "$WORK/stale.err")"
}
docker kill "$RUN_ID-thin-fuse" >/dev/null
docker wait "$RUN_ID-thin-fuse" >/dev/null || true
expect_stale "$THIN_HOST"
docker start "$RUN_ID-thin-fuse" >/dev/null
wait_thin
logs_have thin-fuse 'detached a dead fuse.curvinefs mount' ||
  fail "the restarted thin-fuse did not report the stale mount it cleared"
log "thin-fuse recovered from its stale mount"

# `docker stop` as kubelet stops a pod: SIGTERM, 30 s grace.
t0=$(date +%s%N)
docker stop -t 30 "$RUN_ID-thin-fuse" >/dev/null
took_ms=$(( ($(date +%s%N) - t0) / 1000000 ))
code=$(docker inspect -f '{{.State.ExitCode}}' "$RUN_ID-thin-fuse")
[ "$code" = 0 ] || fail "thin-fuse exited $code on docker stop"
[ "$took_ms" -lt 30000 ] || fail "thin-fuse took ${took_ms} ms to stop"
thin_mounted && fail "the thin mount is still there after docker stop"
log "thin-fuse stopped cleanly in ${took_ms} ms (exit 0, unmounted)"

# The CacheRuntime client's hostPath is the target itself: with a dead mount there the
# container runtime cannot even bind it (kubelet neither), so the image cannot clear it
# from inside. `curvine-fluid umount <targetPath>` run on the node (here from a container
# with the mount root bound rshared, like a node debug pod) clears it, and the client
# starts again.
log "scenario 4b: the CacheRuntime client killed; its dead mount cleared from the node"
docker kill "$RUN_ID-$RT-client-x1" >/dev/null
docker wait "$RUN_ID-$RT-client-x1" >/dev/null || true
expect_stale "$WORK$TARGET"
docker run --rm --label "$RUN_ID" --cap-add SYS_ADMIN -v "$ROOT:/runtime-mnt:rshared" \
  "$IMAGE" umount "$TARGET" > "$WORK/umount.log" 2>&1 || fail "umount failed: $(cat "$WORK/umount.log")"
is_mounted "$WORK$TARGET" && fail "umount left the dead mount"
docker start "$RUN_ID-$RT-client-x1" >/dev/null
wait_ready "$RT-client-x1" 9002 "client mount after restart"
app_pod '[ "$(cat /data/curvine/after-7.txt)" = after-7 ] && echo again > /data/curvine/again.txt' ||
  fail "the mount does not work after the client restart"
log "client mounted again after its dead mount was cleared"
stop_cache_runtime

# ---------------------------------------------------------------- scenario 5
log "scenario 5: the Helm chart's cluster (scripts/e2e-chart.sh)"
IMAGE=$IMAGE E2E_BUILD=0 scripts/e2e-chart.sh || fail "the Helm chart scenario failed"

# ---------------------------------------------------------------- scenario 6
log "scenario 6: under storage, an S3 bucket's prefix (scripts/e2e-ufs.sh)"
IMAGE=$IMAGE E2E_BUILD=0 scripts/e2e-ufs.sh || fail "the under-storage scenario failed"

log "all scenarios passed"
