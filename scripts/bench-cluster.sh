#!/usr/bin/env bash
# Cluster benchmark through the client library on loopback: sequential write and read of
# 1 GiB in 1 MiB requests, then create/stat/rename/delete of 10,000 files with 16
# concurrent clients. Run as root to read with a cold page cache.
# Usage: scripts/bench-cluster.sh   (BENCH_BYTES, BENCH_FILES, BENCH_DIR to adjust)
set -euo pipefail
cd "$(dirname "$0")/.."
cargo bench --locked --bench cluster
