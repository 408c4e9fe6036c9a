#!/usr/bin/env bash
# Builds the image's base offline from Debian packages (no container registry needed):
# `debootstrap --variant=minbase` of bookworm with fuse3 and mount (umount), trimmed of
# docs, man pages and package caches, imported into Docker as $BASE_IMAGE.
# Bash, ls, df, grep and wc (what Fluid execs in FUSE pods) come with minbase. No Python,
# no JRE. The Debian mirror is the one this machine's apt uses (env DEBIAN_MIRROR overrides).
# Usage: scripts/base-image.sh            env: BASE_IMAGE (default curvine-fluid-base:bookworm)
set -euo pipefail

BASE_IMAGE=${BASE_IMAGE:-curvine-fluid-base:bookworm}
SUITE=${SUITE:-bookworm}

die() { echo "base-image: $*" >&2; exit 1; }
[ "$(id -u)" = 0 ] || die "debootstrap needs root"
command -v debootstrap >/dev/null || die "debootstrap not found: apt-get install debootstrap"
command -v docker >/dev/null || die "docker not found: apt-get install docker.io (scripts/docker-engine.sh starts it)"
docker info >/dev/null 2>&1 || die "no Docker engine running: scripts/docker-engine.sh starts one"

# The first Debian archive apt is configured with.
mirror() {
  if [ -n "${DEBIAN_MIRROR:-}" ]; then echo "$DEBIAN_MIRROR"; return; fi
  local f
  for f in /etc/apt/sources.list.d/*.sources; do
    [ -e "$f" ] || continue
    awk '/^URIs:/ { for (i = 2; i <= NF; i++) if ($i ~ /\/debian\/?$/) { print $i; exit } }' "$f"
  done | head -1 | grep . && return
  awk '$1 == "deb" && $2 ~ /\/debian\/?$/ { print $2; exit }' /etc/apt/sources.list 2>/dev/null |
    grep . || die "no Debian mirror in apt's sources; set DEBIAN_MIRROR"
}

ROOTFS=$(mktemp -d /tmp/curvine-base.XXXXXX)
trap 'rm -rf "$ROOTFS"' EXIT
debootstrap --variant=minbase --include=fuse3,mount "$SUITE" "$ROOTFS" "$(mirror)" >/dev/null
rm -rf "$ROOTFS"/usr/share/doc/* "$ROOTFS"/usr/share/man/* "$ROOTFS"/usr/share/info/* \
  "$ROOTFS"/usr/share/locale/* "$ROOTFS"/var/cache/apt/* "$ROOTFS"/var/lib/apt/lists/* \
  "$ROOTFS"/var/log/*.log
tar -C "$ROOTFS" -c . | docker import - "$BASE_IMAGE" >/dev/null
echo "built $BASE_IMAGE: $(docker image inspect -f '{{.Size}}' "$BASE_IMAGE" | awk '{ printf "%.1f MB", $1 / 1e6 }')"
