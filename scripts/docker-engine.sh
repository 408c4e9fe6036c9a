#!/usr/bin/env bash
# Makes sure a Docker engine answers: installs Debian's docker.io when missing and starts
# dockerd in the background when none is running (machines without systemd). Idempotent.
set -euo pipefail
if ! command -v dockerd >/dev/null; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker.io >/dev/null
fi
if docker info >/dev/null 2>&1; then
  exit 0
fi
nohup dockerd >/var/log/dockerd.log 2>&1 &
for _ in $(seq 1 120); do
  docker info >/dev/null 2>&1 && exit 0
  sleep 0.5
done
echo "docker-engine: dockerd did not answer within 60 s; see /var/log/dockerd.log" >&2
exit 1
