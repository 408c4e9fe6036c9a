#!/usr/bin/env bash
# Master scale benchmark: starts the release binary as a master on loopback, creates
# BENCH_MASTER_FILES empty files (default 1,000,000 = 20 directories x 50,000) through
# the client library, and reports the create rate, the master's RSS per file, snapshot
# size and time, restart time to serving and a paged listing of one directory.
# Usage: scripts/bench-master.sh   (BENCH_MASTER_FILES, BENCH_MASTER_DIRS,
# BENCH_MASTER_CONCURRENCY, BENCH_MASTER_SNAPSHOT_ENTRIES, BENCH_MASTER_BIN, BENCH_DIR)
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -z "${BENCH_MASTER_BIN:-}" ]; then
  cargo build --release --locked --bin curvine-fluid
fi
cargo bench --locked --bench master
