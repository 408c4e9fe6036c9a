#!/usr/bin/env bash
# Installs what the test command (`make test && make e2e`) needs on a fresh Debian
# machine, only what is missing, and checks what it cannot install. `make test`,
# `make e2e` and .ci/run call it; it is quiet and quick when everything is there.
#   apt: make, fuse3 (fusermount3), tar, diffutils (the FUSE tests), debootstrap (the
#        image's base), jq and openssl (the end-to-end tests: the chart's cluster runs
#        with a token and TLS), npm and python3-venv (the chart tools);
#   rustup: rustfmt and clippy;
#   scripts/tools.sh: helm, kubectl and kubernetes-validate under target/tools;
#   cargo install: s3s-fs (the S3 server the under-storage tests run) under target/tools;
#   checks: /dev/fuse (the FUSE tests mount for real) and ../shared/fluid-fixtures.
# Docker is scripts/docker-engine.sh's job (make e2e runs it).
set -euo pipefail
cd "$(dirname "$0")/.."

die() { echo "deps: $*" >&2; exit 1; }

need=()
have() { command -v "$1" >/dev/null 2>&1; }
have make || need+=(make)
have fusermount3 || need+=(fuse3)
have tar || need+=(tar)
have diff || need+=(diffutils)
have debootstrap || need+=(debootstrap)
have jq || need+=(jq)
have openssl || need+=(openssl)
have npm || need+=(npm)
have python3 || need+=(python3)
python3 -c 'import ensurepip, venv' >/dev/null 2>&1 || need+=(python3-venv)
if [ ${#need[@]} -gt 0 ]; then
  [ "$(id -u)" = 0 ] || die "missing ${need[*]}; run as root, or: sudo apt-get install ${need[*]}"
  echo "deps: installing ${need[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi

have cargo || die "cargo not found: install Rust (rustup)"
cargo fmt --version >/dev/null 2>&1 || rustup component add rustfmt
cargo clippy --version >/dev/null 2>&1 || rustup component add clippy

# The FUSE tests mount for real: they need root and the FUSE device (they fail, never skip).
[ -c /dev/fuse ] || die "/dev/fuse is missing; the FUSE tests need it (modprobe fuse, or a machine with FUSE)"
# fusectl lets an unmount with open files abort the connection at once (best effort).
if [ "$(id -u)" = 0 ] && [ -d /sys/fs/fuse/connections ] &&
  ! grep -q ' /sys/fs/fuse/connections ' /proc/self/mounts; then
  mount -t fusectl fusectl /sys/fs/fuse/connections 2>/dev/null || true
fi
# The Fluid fixtures the integration tests read live in shared/ beside the clone.
[ -d ../shared/fluid-fixtures ] ||
  die "../shared/fluid-fixtures is missing (the integration tests read it; CI checks out shared/ beside the repository)"

# s3s-fs: a real S3 server (it checks SigV4 signatures) for the under-storage tests,
# which find it here, on PATH or through S3S_FS. Pinned: the version the tests know.
S3S_FS_VERSION=0.14.1
if ! target/tools/bin/s3s-fs --version 2>/dev/null | grep -qx "s3s-fs $S3S_FS_VERSION"; then
  echo "deps: installing s3s-fs $S3S_FS_VERSION into target/tools (a few minutes)"
  cargo install --quiet --locked --force "s3s-fs@$S3S_FS_VERSION" --features binary --root target/tools ||
    die "cargo install s3s-fs@$S3S_FS_VERSION failed"
fi

scripts/tools.sh
