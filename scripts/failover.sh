#!/usr/bin/env bash
# Failover check: three masters and a worker as separate processes on loopback, a writer
# creating directories one after the other through the CLI, and the leader killed with
# SIGKILL several times (restarted after each kill, so a quorum stays). Prints, per kill,
# the failover time (leader killed -> first write started after the kill acknowledged), then the writes
# acknowledged and the writes found afterwards, which must be equal.
# Usage: scripts/failover.sh            env: KILLS (default 3), BIN, WORK, BASE_PORT
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
BIN=${BIN:-$ROOT/target/release/curvine-fluid}
KILLS=${KILLS:-3}
BASE_PORT=${BASE_PORT:-29000}
WORK=${WORK:-$(mktemp -d /tmp/curvine-failover.XXXXXX)}
mkdir -p "$WORK"
PIDS=()      # every process this script started
MASTER_PID=("" "" "")

die() { echo "failover: $*" >&2; exit 1; }
[ -x "$BIN" ] || (cd "$ROOT" && cargo build --release --locked) || die "cannot build $BIN"
command -v python3 >/dev/null || die "python3 not found (apt-get install python3)"

cleanup() {
  touch "$WORK/stop"
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap cleanup EXIT

now_ms() { date +%s%3N; }
port() { echo $((BASE_PORT + $1)); }

# Ports: master i: rpc 10i+1, journal 10i+2, web 10i+3; worker: 41, 42.
journal_addrs() {
  local out="" i
  for i in 0 1 2; do
    out+="{ id = $((i + 1)), hostname = \"127.0.0.1\", port = $(port $((10 * i + 2))) }, "
  done
  echo "[${out%, }]"
}
master_addrs() {
  local out="" i
  for i in 0 1 2; do out+="{ hostname = \"127.0.0.1\", port = $(port $((10 * i + 1))) }, "; done
  echo "[${out%, }]"
}
client_section() {
  printf '[client]\nmaster_addrs = %s\nrpc_retry_max_duration_ms = 20000\nrpc_timeout_ms = 3000\n' "$(master_addrs)"
}

write_configs() {
  local i
  for i in 0 1 2; do
    cat > "$WORK/master-$i.toml" <<EOF
cluster_id = "failover"
[master]
hostname = "127.0.0.1"
rpc_port = $(port $((10 * i + 1)))
web_port = $(port $((10 * i + 3)))
meta_dir = "$WORK/m$i/meta"
heartbeat_interval = "200ms"
[journal]
hostname = "127.0.0.1"
rpc_port = $(port $((10 * i + 2)))
journal_dir = "$WORK/m$i/journal"
journal_addrs = $(journal_addrs)
$(client_section)
EOF
  done
  cat > "$WORK/worker.toml" <<EOF
cluster_id = "failover"
[worker]
hostname = "127.0.0.1"
rpc_port = $(port 41)
web_port = $(port 42)
data_dir = ["[DISK]$WORK/worker"]
[journal]
journal_addrs = $(journal_addrs)
$(client_section)
EOF
  { echo 'cluster_id = "failover"'; client_section; } > "$WORK/client.toml"
}

start_master() {
  "$BIN" --conf "$WORK/master-$1.toml" master start >> "$WORK/master-$1.log" 2>&1 &
  MASTER_PID[$1]=$!
  PIDS+=("$!")
  disown "$!"  # a SIGKILLed master is expected: no job-control notice
}

# The index (0-2) of the current leader, from the cluster report.
leader() {
  "$BIN" --conf "$WORK/client.toml" report --json 2>/dev/null |
    python3 -c 'import json,sys; d=json.load(sys.stdin); print(int(d["leader"]["id"]) - 1)'
}

wait_leader() {
  local i
  for i in $(seq 1 300); do
    if l=$(leader) && [ "$l" -ge 0 ]; then echo "$l"; return 0; fi
    sleep 0.1
  done
  die "no leader within 30 s (logs in $WORK)"
}

# The writer: one mkdir at a time; each acknowledged one is logged with its time.
writer() {
  local n=0
  local started
  while [ ! -e "$WORK/stop" ] && [ $n -lt 100000 ]; do
    started=$(now_ms)
    if "$BIN" --conf "$WORK/client.toml" fs mkdir -p "/failover/d$n" 2>>"$WORK/writer.err"; then
      echo "$n $started $(now_ms)" >> "$WORK/acked"
    fi
    n=$((n + 1))
  done
}

write_configs
for i in 0 1 2; do start_master "$i"; done
first=$(wait_leader)
"$BIN" --conf "$WORK/worker.toml" worker start >> "$WORK/worker.log" 2>&1 &
PIDS+=("$!")
: > "$WORK/acked"
writer &
PIDS+=("$!")
sleep 2
echo "leader at start: master-$first; work dir $WORK"
printf '| kill | leader killed | failover (killed -> first write started after it acknowledged) |\n|---:|---|---:|\n'
for k in $(seq 1 "$KILLS"); do
  l=$(wait_leader)
  killed_at=$(now_ms)
  kill -KILL "${MASTER_PID[$l]}"
  # The first write started after the kill, once acknowledged.
  for _ in $(seq 1 600); do
    next=$(awk -v t="$killed_at" '$2 > t { print $3; exit }' "$WORK/acked")
    [ -n "$next" ] && break
    sleep 0.05
  done
  [ -n "$next" ] || die "no write acknowledged within 30 s of killing master-$l"
  printf '| %d | master-%d | %d ms |\n' "$k" "$l" $((next - killed_at))
  start_master "$l" 2>/dev/null
  sleep 3  # the restarted master rejoins and catches up before the next kill
done
touch "$WORK/stop"
sleep 1
acked=$(wc -l < "$WORK/acked")
found=$("$BIN" --conf "$WORK/client.toml" fs ls /failover | grep -c . || true)
echo
echo "writes acknowledged: $acked"
echo "writes found afterwards: $found"
if [ "$acked" -ne "$found" ]; then
  die "acknowledged writes are missing"
fi
echo "ok: every acknowledged write is present"
