#!/usr/bin/env bash
# Crash soak, long form: three masters, two workers and a FUSE client as processes on
# loopback, two FUSE and two CLI writers of checksummed files, the leading master SIGKILLed
# 20 times and a worker 3 times (each restarted), then every acknowledged file read back.
# Prints the acknowledged writes, those found byte-exact (must be equal), the failover
# times (p50, p99, max) and the writers' errors by kind; exits non-zero on any loss.
# The driver is the test target tests/soak (`cargo test` runs its short form: 3 and 1).
# Needs root and /dev/fuse.
# Usage: scripts/soak.sh     env: SOAK_LEADER_KILLS (20), SOAK_WORKER_KILLS (3), SOAK_SEED
#                                 (1), SOAK_DIR (where the work directory goes; default TMPDIR)
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
export SOAK_LEADER_KILLS=${SOAK_LEADER_KILLS:-20}
export SOAK_WORKER_KILLS=${SOAK_WORKER_KILLS:-3}
export SOAK_SEED=${SOAK_SEED:-1}

[ "$(id -u)" -eq 0 ] || { echo "soak: needs root (it mounts FUSE)" >&2; exit 1; }
[ -e /dev/fuse ] || { echo "soak: /dev/fuse is missing (modprobe fuse)" >&2; exit 1; }

cd "$ROOT"
echo "soak: $(date -u +%Y-%m-%dT%H:%MZ) on $(nproc) cores, $(uname -m), $(uname -r)"
exec cargo test --release --locked --test soak
