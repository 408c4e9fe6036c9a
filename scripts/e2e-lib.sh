# Shared by the end-to-end scripts (sourced, not run): logging with the seconds since
# start, failing with the last logs of this run's containers, a container's address and
# HTTP status codes, and cleaning up exactly what this run made (containers labelled $RUN_ID, network $RUN_ID, mounts and files under
# $WORK). The sourcing script sets E2E_NAME, RUN_ID and WORK first.
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
