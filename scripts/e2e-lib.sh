# Shared by the end-to-end scripts (sourced, not run): logging with the seconds since
# start, failing with the last logs of this run's containers, a container's address and
# HTTP status codes, cleaning up exactly what this run made (containers labelled $RUN_ID,
# network $RUN_ID, mounts and files under $WORK), and CacheRuntime pods started as Fluid
# starts them. The sourcing script sets E2E_NAME, RUN_ID and WORK first; the pod helpers
# also read IMAGE, NS, RT (the runtime's name), TARGET (the client's targetPath) and ROOT
# (the host's mount root, $WORK/runtime-mnt).
STARTED=$(date +%s)

log() { echo "$E2E_NAME [$(( $(date +%s) - STARTED ))s] $*"; }
fail() {
  echo "$E2E_NAME FAILED: $*" >&2
  for c in $(docker ps -a --filter "label=$RUN_ID" --format '{{.Names}}' 2>/dev/null); do
    echo "----- docker logs $c (last 30 lines) -----" >&2
    docker logs --tail 30 "$c" >&2 2>&1 || true
  done
  exit 1
}

# The address of this run's container named $RUN_ID-<name>.
ip_of() { docker inspect -f '{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}' "$RUN_ID-$1"; }

# HTTP status of GET path on a container's port (bash's /dev/tcp; no curl needed).
http_code() { # container port path
  local ip; ip=$(ip_of "$1")
  [ -n "$ip" ] || { echo 000; return; }
  timeout 3 bash -c "exec 3<>/dev/tcp/$ip/$2 && printf 'GET $3 HTTP/1.0\r\n\r\n' >&3 && head -1 <&3" 2>/dev/null |
    awk '{ print $2 }' | grep . || echo 000
}

# The body of GET path on a container's port.
http_body() { # container port path
  local ip; ip=$(ip_of "$1")
  [ -n "$ip" ] || return 1
  timeout 3 bash -c "exec 3<>/dev/tcp/$ip/$2 && printf 'GET $3 HTTP/1.0\r\n\r\n' >&3 && cat <&3" 2>/dev/null |
    sed '1,/^\r*$/d'
}

cleanup() {
  local ids
  if [ "${E2E_KEEP:-0}" = 1 ]; then
    echo "$E2E_NAME: E2E_KEEP=1: left containers labelled $RUN_ID, network $RUN_ID and $WORK" >&2
    return
  fi
  ids=$(docker ps -aq --filter "label=$RUN_ID" 2>/dev/null || true)
  [ -n "$ids" ] && docker rm -f $ids >/dev/null 2>&1 || true
  docker network rm "$RUN_ID" >/dev/null 2>&1 || true
  # Mounts left under the work dir (a killed client leaves a dead one), deepest first.
  awk -v w="$WORK" '$5 ~ "^"w { print $5 }' /proc/self/mountinfo | sort -r |
    while read -r m; do umount -l "$m" 2>/dev/null || true; done
  rm -rf "$WORK"
}
trap cleanup EXIT

# ---------------------------------------------------------------- CacheRuntime pods
# The host's mount root, shared both ways like Fluid's Bidirectional hostPath.
shared_mount_root() {
  mkdir -p "$ROOT"
  mount --bind "$ROOT" "$ROOT"
  mount --make-rshared "$ROOT"
}

# A pod's DNS name: component, ordinal.
fqdn() { echo "$RT-$1-$2.svc-$RT-$1.$NS.svc.cluster.local"; }

# runtime.json as Fluid's generator writes it (compact, key order of CacheRuntimeConfig).
runtime_json() { # masters workers mounts-json access-modes-json
  printf '{"mounts":%s,"accessModes":%s,"targetPath":"%s","master":{"enabled":true,"name":"%s-master","options":{"journal_port":"8996","rpc_port":"8995","web_port":"9000"},"replicas":%d,"service":{"name":"svc-%s-master"}},"worker":{"enabled":true,"name":"%s-worker","options":{"dir_reserved":"0","rpc_port":"8997","web_port":"9001"},"replicas":%d,"service":{"name":"svc-%s-worker"},"tieredStoreLevels":[{"mountPaths":["/etc/fluid/mount/tiered-store/level-0-index-0-emptydir"],"mediumType":"HDD","quotas":["2Gi"],"high":"0.9","low":"0.7"}]},"client":{"enabled":true,"name":"%s-client","service":{"name":""}}}' \
    "$3" "$4" "$TARGET" "$RT" "$1" "$RT" "$RT" "$2" "$RT" "$RT"
}

# Starts one CacheRuntime pod: component, pod name, config dir, extra docker args.
pod() {
  local component=$1 name=$2 conf=$3; shift 3
  local svc="svc-$RT-$component" sockets=()
  [ "$component" = client ] && svc=""
  # Workers and clients share the node's short-circuit socket directory, as the
  # CacheRuntimeClass's hostPath /var/run/curvine-fluid does.
  if [ "$component" != master ]; then
    mkdir -p "$WORK/sockets"
    sockets=(-v "$WORK/sockets:/var/run/curvine-fluid" -e CURVINE_DOMAIN_SOCKET_DIR=/var/run/curvine-fluid)
  fi
  docker run -d --label "$RUN_ID" --name "$RUN_ID-$name" --hostname "$name" \
    --network "$RUN_ID" "${sockets[@]}" \
    -v "$conf:/etc/fluid/config:ro" \
    -e FLUID_DATASET_NAME=$RT -e FLUID_DATASET_NAMESPACE=$NS \
    -e FLUID_RUNTIME_CONFIG_PATH=/etc/fluid/config/runtime.json \
    -e FLUID_RUNTIME_MOUNT_PATH=$TARGET \
    -e FLUID_RUNTIME_COMPONENT_TYPE="$component" \
    -e FLUID_RUNTIME_COMPONENT_SVC_NAME="$svc" \
    "$@" "$IMAGE" >/dev/null
}

# A client pod: FUSE device and capability, and the host directory bound at exactly the
# targetPath with rshared propagation, as Fluid's hostPath (DirectoryOrCreate,
# Bidirectional) is: the client mounts on top of that bind.
client_pod() { # name conf
  mkdir -p "$WORK$TARGET"
  pod client "$1" "$2" --device /dev/fuse --cap-add SYS_ADMIN \
    -v "$WORK$TARGET:$TARGET:rshared"
}

wait_ready() { # container port what
  for _ in $(seq 1 120); do
    [ "$(http_code "$1" "$2" /healthz)" = 200 ] && return 0
    [ "$(docker inspect -f '{{.State.Running}}' "$RUN_ID-$1" 2>/dev/null)" = true ] ||
      fail "$1 exited before it was ready"
    sleep 0.5
  done
  fail "$1 ($3) not ready within 60 s"
}

# The app pod: the CSI bind of targetPath at /data, running a script (for 3 minutes at
# most); extra docker args (more volumes) after it.
app_pod() { # script [docker args...]
  local script=$1; shift
  timeout 180 docker run --rm --label "$RUN_ID" -v "$ROOT/cache/$NS/$RT/cache-fuse:/data:rslave" "$@" \
    --entrypoint bash "$IMAGE" -euo pipefail -c "$script"
}

# Whether a container's log has a line matching the pattern (read whole: no SIGPIPE).
logs_have() { # container pattern
  docker logs "$RUN_ID-$1" > "$WORK/logs.txt" 2>&1 || true
  grep -q -- "$2" "$WORK/logs.txt"
}

is_mounted() { awk -v p="$1" '$5 == p && / - fuse/' /proc/self/mountinfo | grep -q .; }

# Masters, workers and a client on the runtime config in conf; extra docker args go to
# the masters and workers only (Fluid mounts the dataset's secrets there, not in clients).
start_pods() { # conf masters workers [docker args...]
  local conf=$1 masters=$2 workers=$3 i
  shift 3
  for i in $(seq 0 $((masters - 1))); do
    # The pod's FQDN, and the headless service's name, which resolves to every master.
    pod master "$RT-master-$i" "$conf" --network-alias "$(fqdn master "$i")" \
      --network-alias "svc-$RT-master.$NS.svc.cluster.local" "$@"
  done
  for i in $(seq 0 $((workers - 1))); do
    pod worker "$RT-worker-$i" "$conf" --network-alias "$(fqdn worker "$i")" "$@"
  done
  client_pod "$RT-client-x1" "$conf"
  for i in $(seq 0 $((masters - 1))); do wait_ready "$RT-master-$i" 9000 master; done
  for i in $(seq 0 $((workers - 1))); do wait_ready "$RT-worker-$i" 9001 worker; done
  wait_ready "$RT-client-x1" 9002 "client mount"
  is_mounted "$ROOT/cache/$NS/$RT/cache-fuse" || fail "the client's mount is not seen on the host"
}

stop_cache_runtime() {
  local ids; ids=$(docker ps -aq --filter "label=$RUN_ID")
  [ -n "$ids" ] && docker rm -f $ids >/dev/null
  umount -l "$ROOT/cache/$NS/$RT/cache-fuse" 2>/dev/null || true
}
