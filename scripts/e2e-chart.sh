#!/usr/bin/env bash
# End-to-end test of the Helm chart's cluster, with Docker standing in for Kubernetes.
# `helm template` renders charts/curvine-fluid (3 masters, 2 workers, the FUSE DaemonSet);
# scripts/chart_tool.py turns each rendered pod into a `docker run` of exactly its
# container: the rendered image, command and args, env (with Kubernetes' $(VAR) expansion
# and the downward API's pod name), the ConfigMap's files at the rendered mount path,
# emptyDir/hostPath/claim volumes as directories, privileged, and network aliases equal to
# the chart's DNS names (<release>-master-<i>.<release>-master-headless.<ns>.svc.cluster.local,
# and each Service's name for the pods it selects). It waits for every pod's rendered
# readiness probe, then runs the helm test pod's script (from the rendered test Pod)
# against them, and checks the FUSE pod's mount from the "node" (this host) both ways.
# Then a Fluid ThinRuntime thin-fuse container mounts the chart's cluster with
# master-endpoints as README gives them, and Fluid's CSI mount check (target path plus the
# profile's fileSystemType in the mount table) must hold.
# The cluster runs secured (security.secretName): a Secret with a cluster token and a TLS
# certificate for the headless services' names, made here with openssl; a client without
# the token is refused, and the thin-fuse container mounts the Secret as the profile says.
#
# Usage: scripts/e2e-chart.sh            env: IMAGE (default curvine-fluid:latest),
#        E2E_BUILD=0 to use an existing image instead of `make docker-build-fluid`,
#        E2E_KEEP=1 to leave the containers, network and mounts for a look afterwards.
# scripts/e2e-docker.sh runs it as its last scenario. Needs root (mounts) and Docker.
set -euo pipefail
cd "$(dirname "$0")/.."

IMAGE=${IMAGE:-curvine-fluid:latest}
RUN_ID=cfchart-$$
WORK=$(mktemp -d /tmp/curvine-chart-e2e.XXXXXX)
RELEASE=cv
NS=curvine
TOOLS=${TOOLS_DIR:-$PWD/target/tools}
E2E_NAME=e2e-chart
# log, fail, cleanup (on exit)
. scripts/e2e-lib.sh

command -v jq >/dev/null || fail "jq not found (scripts/deps.sh installs it)"
command -v openssl >/dev/null || fail "openssl not found (scripts/deps.sh installs it)"
[ "$(id -u)" = 0 ] || fail "needs root (bind mounts with shared propagation)"
[ -c /dev/fuse ] || fail "/dev/fuse is missing"
scripts/tools.sh
scripts/docker-engine.sh
if [ "${E2E_BUILD:-1}" != 0 ]; then
  make --no-print-directory docker-build-fluid
fi
docker image inspect "$IMAGE" >/dev/null 2>&1 || fail "image $IMAGE missing: make docker-build-fluid"

# The Secret curvine-security: token, ca.crt, and tls.crt/tls.key naming every master and
# worker by its headless service (short and full names).
SECRET=$WORK/secrets/curvine-security
mkdir -p "$SECRET"
head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n' > "$SECRET/token"
sans=""
for svc in "$RELEASE-master-headless" "$RELEASE-worker-headless"; do
  sans="$sans,DNS:*.$svc.$NS.svc,DNS:*.$svc.$NS.svc.cluster.local"
done
openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=e2e-ca" \
  -keyout "$WORK/ca.key" -out "$SECRET/ca.crt" 2>/dev/null || fail "openssl: CA"
openssl req -newkey rsa:2048 -nodes -subj "/CN=$RELEASE" -keyout "$SECRET/tls.key" \
  -out "$WORK/tls.csr" 2>/dev/null || fail "openssl: key"
printf 'subjectAltName=%s\n' "${sans#,}" > "$WORK/san.ext"
openssl x509 -req -in "$WORK/tls.csr" -CA "$SECRET/ca.crt" -CAkey "$WORK/ca.key" -CAcreateserial \
  -days 2 -extfile "$WORK/san.ext" -out "$SECRET/tls.crt" 2>/dev/null || fail "openssl: certificate"

log "helm template $RELEASE -n $NS: 3 masters, 2 workers, FUSE DaemonSet, token and TLS, image $IMAGE"
"$TOOLS/bin/helm" template "$RELEASE" charts/curvine-fluid --namespace "$NS" \
  --set master.replicas=3 --set worker.replicas=2 --set fuse.enabled=true \
  --set security.secretName=curvine-security \
  --set image.repository="${IMAGE%:*}" --set image.tag="${IMAGE##*:}" \
  > "$WORK/rendered.yaml" || fail "helm template failed"

# The node's directories (hostPath) on a shared mount, as Bidirectional propagation needs.
mkdir -p "$WORK/node"
mount --bind "$WORK/node" "$WORK/node"
mount --make-rshared "$WORK/node"
"$TOOLS/venv/bin/python3" scripts/chart_tool.py pods "$WORK/rendered.yaml" "$WORK" > "$WORK/pods.jsonl" ||
  fail "the rendered pods cannot be translated to docker run"

docker network create --label "$RUN_ID" "$RUN_ID" >/dev/null

# docker run of one pod line of pods.jsonl; extra docker arguments first (e.g. --rm, -d).
run_pod() { # json docker-args...
  local json=$1 pod image docker_args container_args
  shift
  pod=$(jq -r .pod <<<"$json")
  image=$(jq -r .image <<<"$json")
  mapfile -d '' -t docker_args < <(jq -j '.docker[] + "\u0000"' <<<"$json")
  mapfile -d '' -t container_args < <(jq -j '.args[] + "\u0000"' <<<"$json")
  docker run "$@" --label "$RUN_ID" --name "$RUN_ID-$pod" --network "$RUN_ID" \
    "${docker_args[@]}" "$image" "${container_args[@]}"
}

servers=0
while IFS= read -r line; do
  [ "$(jq -r .kind <<<"$line")" = Pod ] && continue
  run_pod "$line" -d >/dev/null || fail "docker run of $(jq -r .pod <<<"$line") failed"
  log "started $(jq -r '.pod + " (" + .component + "): " + (.args | join(" ")) + "; DNS " + (.aliases[0] // "-")' <<<"$line")"
  servers=$((servers + 1))
done < "$WORK/pods.jsonl"
[ "$servers" = 6 ] || fail "expected 6 pods (3 masters, 2 workers, 1 FUSE), rendered $servers"

# Every pod's rendered readiness probe.
while IFS= read -r line; do
  pod=$(jq -r .pod <<<"$line")
  [ "$(jq -r .kind <<<"$line")" = Pod ] && continue
  port=$(jq -r .ready.port <<<"$line")
  path=$(jq -r .ready.path <<<"$line")
  [ "$port" != null ] || fail "$pod has no readiness probe"
  for i in $(seq 1 120); do
    [ "$(http_code "$pod" "$port" "$path")" = 200 ] && break
    [ "$(docker inspect -f '{{.State.Running}}' "$RUN_ID-$pod")" = true ] || fail "$pod exited before it was ready"
    [ "$i" = 120 ] && fail "$pod: readiness probe $path on port $port not 200 within 60 s"
    sleep 0.5
  done
done < "$WORK/pods.jsonl"
log "all 6 pods ready (their rendered readiness probes answer 200)"

# The helm test pod, as rendered: its script against the cluster.
test_pod=$(jq -c 'select(.kind == "Pod")' "$WORK/pods.jsonl")
[ -n "$test_pod" ] || fail "the chart rendered no helm test pod"
run_pod "$test_pod" --rm > "$WORK/test.log" 2>&1 ||
  fail "the helm test pod's script failed: $(tail -5 "$WORK/test.log")"
grep -q '^ok: wrote, read back and removed' "$WORK/test.log" ||
  fail "the helm test pod did not report ok: $(tail -5 "$WORK/test.log")"
grep -c ': ready$' "$WORK/test.log" | grep -qx 5 || fail "the helm test pod did not find 5 ready servers"
log "helm test pod passed: $(tail -1 "$WORK/test.log")"

# The FUSE DaemonSet's mount, seen on the node (this host) through the shared hostPath.
mnt=$WORK/node$("$TOOLS/venv/bin/python3" -c 'import sys, tomllib; print(tomllib.load(open(sys.argv[1], "rb"))["fuse"]["mnt_path"])' \
  "$WORK/configmaps/$RELEASE-config/client.toml")
awk -v p="$mnt" '$5 == p && / - fuse/' /proc/self/mountinfo | grep -q . || fail "no FUSE mount at $mnt on the host"
echo "written on the node" > "$mnt/from-node.txt" || fail "cannot write through the FUSE mount at $mnt"
got=$(docker exec "$RUN_ID-$RELEASE-master-0" curvine-fluid fs cat /from-node.txt 2>"$WORK/cat.err") ||
  fail "fs cat in master-0 failed: $(cat "$WORK/cat.err")"
[ "$got" = "written on the node" ] || fail "master-0 reads '$got' for a file written through the mount"
echo "written in the cluster" | docker exec -i "$RUN_ID-$RELEASE-worker-1" curvine-fluid fs put - /from-cluster.txt ||
  fail "fs put in worker-1 failed"
[ "$(cat "$mnt/from-cluster.txt")" = "written in the cluster" ] || fail "the node does not read a file written in the cluster"
log "FUSE pod: $mnt on the node reads and writes the cluster"

# Over TLS without the token: refused, saying what to set.
docker exec "$RUN_ID-$RELEASE-master-0" bash -c 'mkdir -p /tmp/ca-only && cp /etc/curvine-security/ca.crt /tmp/ca-only/ &&
  CURVINE_SECURITY_DIR=/tmp/ca-only curvine-fluid fs ls /' > /dev/null 2> "$WORK/refused.err" &&
  fail "a client without the token listed the cluster"
grep -q "requires its token" "$WORK/refused.err" || fail "a client without the token got: $(cat "$WORK/refused.err")"
# (Read whole first: grep -q closing the pipe early would fail it under pipefail.)
docker logs "$RUN_ID-$RELEASE-master-0" > "$WORK/master-0.log" 2>&1
grep -q "RPCs use TLS" "$WORK/master-0.log" || fail "master-0 does not log that RPCs use TLS"
log "token and TLS: a client without the token is refused ($(head -c 120 "$WORK/refused.err"))"

# A Fluid ThinRuntime mounting the chart's cluster: a thin-fuse container with Fluid's env
# and config.json, the profile's args (thin-runtime/curvine-thinruntime.yaml), and
# master-endpoints as README gives them, <pod>.<headless service>.<ns>.svc:port, completed by
# a pod's DNS search path (namespace default, ndots 5) as in Kubernetes.
PROFILE=thin-runtime/curvine-thinruntime.yaml
read -r fs_type security_mount security_env thin_args < <("$TOOLS/venv/bin/python3" -c '
import sys, yaml
p = [d for d in yaml.safe_load_all(open(sys.argv[1])) if d and d["kind"] == "ThinRuntimeProfile"][0]["spec"]
mount = [m for m in p["fuse"]["volumeMounts"] if m["name"] == "security"][0]["mountPath"]
env = " ".join(e["name"] + "=" + e["value"] for e in p["fuse"]["env"])
print(p["fileSystemType"], mount, env, " ".join(p["fuse"]["args"]))' "$PROFILE")
THIN_RT=curvine-thin
THIN_TARGET=/runtime-mnt/thin/default/$THIN_RT/thin-fuse
endpoints=$(for i in 0 1 2; do printf '%s-master-%d.%s-master-headless.%s.svc:8995,' "$RELEASE" "$i" "$RELEASE" "$NS"; done)
mkdir -p "$WORK/thin-conf" "$WORK/node/runtime-mnt/thin/default/$THIN_RT"
printf '{"mounts":[{"mountPoint":"curvine:///","options":{"master-endpoints":"%s"},"name":"curvine"}],"targetPath":"%s","accessModes":["ReadWriteMany"]}\n' \
  "${endpoints%,}" "$THIN_TARGET" > "$WORK/thin-conf/config.json"
docker run -d --label "$RUN_ID" --name "$RUN_ID-thin-fuse" --hostname e2e-node --network "$RUN_ID" \
  --dns-search default.svc.cluster.local --dns-search svc.cluster.local --dns-search cluster.local \
  --dns-option ndots:5 --device /dev/fuse --cap-add SYS_ADMIN --security-opt apparmor=unconfined \
  -v "$WORK/thin-conf:/etc/fluid/config:ro" -v "$SECRET:$security_mount:ro" -e "$security_env" \
  -v "$WORK/node/runtime-mnt/thin/default/$THIN_RT:/runtime-mnt/thin/default/$THIN_RT:rshared" \
  -e FLUID_RUNTIME_TYPE=thin -e FLUID_RUNTIME_NS=default -e FLUID_RUNTIME_NAME=$THIN_RT \
  -e MOUNT_POINT=$THIN_TARGET "$IMAGE" $thin_args >/dev/null || fail "docker run of thin-fuse failed"
thin_host=$WORK/node$THIN_TARGET
for i in $(seq 1 120); do
  [ -e "$thin_host/from-cluster.txt" ] && break
  [ "$(docker inspect -f '{{.State.Running}}' "$RUN_ID-thin-fuse")" = true ] || fail "thin-fuse exited"
  [ "$i" = 120 ] && fail "thin-fuse did not mount the chart's cluster at $THIN_TARGET within 60 s"
  sleep 0.5
done
[ "$(cat "$thin_host/from-cluster.txt")" = "written in the cluster" ] || fail "the ThinRuntime mount reads the wrong content"
# Fluid's CSI check: a mount-table line with the target path and the profile's fileSystemType.
grep -F " $thin_host " /proc/self/mountinfo | grep -qF " $fs_type " ||
  fail "no mount-table line holds $thin_host and the profile's fileSystemType $fs_type"
docker stop -t 30 "$RUN_ID-thin-fuse" >/dev/null
log "ThinRuntime thin-fuse mounted the chart's cluster (master-endpoints ${endpoints%%,*},...; type $fs_type)"

t0=$(date +%s%N)
docker stop -t 30 "$RUN_ID-$RELEASE-fuse-e2e" >/dev/null
code=$(docker inspect -f '{{.State.ExitCode}}' "$RUN_ID-$RELEASE-fuse-e2e")
[ "$code" = 0 ] || fail "the FUSE pod exited $code on docker stop"
awk -v p="$mnt" '$5 == p' /proc/self/mountinfo | grep -q . && fail "the FUSE mount is still there after docker stop"
log "FUSE pod stopped in $(( ($(date +%s%N) - t0) / 1000000 )) ms (exit 0, unmounted)"
log "chart scenario passed"
