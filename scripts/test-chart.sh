#!/usr/bin/env bash
# Tests of the Helm chart charts/curvine-fluid, run by `make test` (make chart-test):
#   - helm lint --strict and helm template of the defaults, every examples/*.yaml, every
#     ci/*-values.yaml, and 1, 3 and 5 masters;
#   - every rendered document validated strictly (unknown fields refused) against the
#     Kubernetes schemas with kubernetes-validate, which must itself refuse a bad document;
#   - scripts/chart_tool.py check: config files, workloads and services agree (each master
#     names itself among the Raft peers, each pod reads its own file, probes, volumes);
#   - every rendered curvine-cluster.toml accepted by the binary (`curvine-fluid --conf F render`);
#   - values that must be refused are: an even master count, overrides of the addresses,
#     a fractional tier size, a journal switched off;
#   - the checksum annotations: a config change rolls masters and workers, more workers
#     roll nothing, other tiers do not roll the masters;
#   - the upgrade protection: against an installed master StatefulSet (rendered by the chart,
#     handed to the same check that `lookup` feeds on a real upgrade), a changed
#     master.replicas or journal storage is refused and the same values render.
# Tools come from scripts/tools.sh (helm, kubernetes-validate). The binary is
# target/debug/curvine-fluid (env CURVINE_FLUID overrides); `make chart-test` builds it.
set -euo pipefail
cd "$(dirname "$0")/.."

CHART=charts/curvine-fluid
TOOLS=${TOOLS_DIR:-$PWD/target/tools}
HELM=$TOOLS/bin/helm
VALIDATE=$TOOLS/venv/bin/kubernetes-validate
PY=$TOOLS/venv/bin/python3
BIN=${CURVINE_FLUID:-target/debug/curvine-fluid}
K8S_VERSION=1.33.0

fail() { echo "chart test FAILED: $*" >&2; exit 1; }

scripts/tools.sh
[ -x "$BIN" ] || fail "$BIN not found: cargo build (or set CURVINE_FLUID)"
WORK=$(mktemp -d /tmp/curvine-chart-test.XXXXXX)
trap 'rm -rf "$WORK"' EXIT

# The validator must refuse what the API server would: an unknown field, a wrong type.
cat > "$WORK/bad.yaml" <<'EOF'
apiVersion: v1
kind: Service
metadata: {name: bad}
spec:
  ports: [{port: 80}]
  publishNotReady: true
EOF
if "$VALIDATE" --strict --quiet -k "$K8S_VERSION" "$WORK/bad.yaml" >/dev/null 2>&1; then
  fail "kubernetes-validate --strict accepted a Service with an unknown field; the schema checks prove nothing"
fi

cases=0
# Renders, lints, validates and checks one set of values: name, then helm arguments.
renders() {
  local name=$1 out=$WORK/$1.yaml docs files f
  shift
  "$HELM" lint --strict "$CHART" --namespace curvine "$@" > "$WORK/lint.log" 2>&1 ||
    fail "helm lint ($name): $(grep -E 'ERROR|WARNING|Error' "$WORK/lint.log" | head -3)"
  "$HELM" template cv "$CHART" --namespace curvine "$@" > "$out" 2> "$WORK/template.err" ||
    fail "helm template ($name): $(head -3 "$WORK/template.err")"
  "$VALIDATE" --strict --quiet -k "$K8S_VERSION" "$out" > "$WORK/validate.log" 2>&1 ||
    fail "schema validation ($name): $(grep -v '^INFO' "$WORK/validate.log" | head -5)"
  "$PY" scripts/chart_tool.py check "$out" > "$WORK/check.log" || fail "chart_tool check ($name)"
  "$PY" scripts/chart_tool.py configs "$out" "$WORK/$name-conf" > /dev/null
  files=0
  for f in "$WORK/$name-conf"/*.toml; do
    env -i PATH="$PATH" "$BIN" --conf "$f" render > /dev/null 2> "$WORK/render.err" ||
      fail "curvine-fluid does not accept $(basename "$f") ($name): $(tail -1 "$WORK/render.err")"
    files=$((files + 1))
  done
  docs=$(grep -c '^kind: ' "$out")
  echo "ok   $name: lint, $docs documents valid (Kubernetes $K8S_VERSION, strict), $files configs accepted; $(cat "$WORK/check.log")"
  cases=$((cases + 1))
}

# Must not render: name, the expected message, then helm arguments.
refused() {
  local name=$1 message=$2
  shift 2
  if "$HELM" template cv "$CHART" --namespace curvine "$@" > /dev/null 2> "$WORK/refused.err"; then
    fail "$name: rendered, but must be refused"
  fi
  grep -qF -- "$message" "$WORK/refused.err" ||
    fail "$name: refused with \"$(head -1 "$WORK/refused.err")\", expected \"$message\""
  echo "ok   $name: refused ($(grep -o 'execution error.*' "$WORK/refused.err" | sed 's/^[^)]*): //' | head -1))"
  cases=$((cases + 1))
}

renders defaults
for f in "$CHART"/examples/*.yaml "$CHART"/ci/*-values.yaml; do
  renders "$(basename "$f" .yaml)" -f "$f"
done
for n in 1 3 5; do
  renders "masters-$n" --set master.replicas=$n --set worker.replicas=2
done

refused "2 masters" "master.replicas must be odd" --set master.replicas=2
refused "4 masters" "master.replicas must be odd" --set master.replicas=4
refused "journal_addrs override" "configOverrides.journal.journal_addrs is set by the chart" \
  --set 'configOverrides.journal.journal_addrs=x'
refused "journal off" "config.journal.enable: false is not supported" --set config.journal.enable=false
cat > "$WORK/fraction.yaml" <<'EOF'
worker:
  storage:
    dataDirs:
      - {name: data1, type: SSD, enabled: true, size: 1.5Gi, mountPath: /data/data1}
EOF
refused "fractional tier size" "is not a whole Kubernetes quantity" -f "$WORK/fraction.yaml"

# The pod templates' checksum/config: what rolls the pods on `helm upgrade`.
checksum() { # master|worker, then helm arguments
  local component=$1
  shift
  "$HELM" template cv "$CHART" --namespace curvine --show-only "templates/$component-statefulset.yaml" "$@" |
    sed -n 's/^ *checksum\/config: //p'
}
m0=$(checksum master)
w0=$(checksum worker)
[ -n "$m0" ] && [ -n "$w0" ] || fail "the StatefulSets have no checksum/config annotation"
[ "$(checksum master --set config.client.blockSizeStr=128MB)" != "$m0" ] ||
  fail "a config change does not change the masters' checksum (they would not roll)"
[ "$(checksum worker --set config.client.blockSizeStr=128MB)" != "$w0" ] ||
  fail "a config change does not change the workers' checksum (they would not roll)"
[ "$(checksum worker --set worker.replicas=7)" = "$w0" ] && [ "$(checksum master --set worker.replicas=7)" = "$m0" ] ||
  fail "adding workers changes a checksum (it would roll pods that need nothing new)"
[ "$(checksum master -f "$CHART/examples/values-multi-data.yaml" --set master.storage.meta.storageClass= --set master.storage.journal.storageClass=)" = "$m0" ] ||
  fail "other worker tiers change the masters' checksum (masters do not read [worker])"
echo "ok   rollouts: a config change rolls masters and workers; more workers or other tiers roll nothing else"
cases=$((cases + 1))

# helm template has no cluster, so `lookup` finds nothing there; a copy of the chart gets a
# template that hands curvine.checkInstalled (what curvine.protectUpgrade runs with the
# looked-up StatefulSet) the master StatefulSet of an "installed" release instead.
installed() { # name, then the helm arguments of the installed release
  local name=$1
  shift
  rm -rf "$WORK/upgrade" && cp -r "$CHART" "$WORK/upgrade"
  "$HELM" template cv "$CHART" --namespace curvine "$@" --show-only templates/master-statefulset.yaml |
    sed '/^---$/d' > "$WORK/upgrade/installed-sts.yaml"
  cat > "$WORK/upgrade/templates/zz-installed.yaml" <<'EOF'
{{- include "curvine.checkInstalled" (dict "root" . "sts" (.Files.Get "installed-sts.yaml" | fromYaml)) -}}
EOF
  echo "installed: $name"
}
upgrade_ok() { # name, helm arguments
  local name=$1
  shift
  "$HELM" template cv "$WORK/upgrade" --namespace curvine "$@" > /dev/null 2> "$WORK/upgrade.err" ||
    fail "upgrade $name: refused although nothing protected changed: $(head -1 "$WORK/upgrade.err")"
  echo "ok   upgrade $name: renders"
  cases=$((cases + 1))
}
upgrade_refused() { # name, expected message, helm arguments
  local name=$1 message=$2
  shift 2
  if "$HELM" template cv "$WORK/upgrade" --namespace curvine "$@" > /dev/null 2> "$WORK/upgrade.err"; then
    fail "upgrade $name: rendered, but must be refused"
  fi
  grep -qF -- "$message" "$WORK/upgrade.err" ||
    fail "upgrade $name: refused with \"$(head -1 "$WORK/upgrade.err")\", expected \"$message\""
  echo "ok   upgrade $name: refused ($(grep -o 'execution error.*' "$WORK/upgrade.err" | sed 's/^[^)]*): //' | head -1))"
  cases=$((cases + 1))
}
installed "3 masters, journal claims of class fast" --set master.replicas=3 --set master.storage.journal.storageClass=fast
upgrade_ok "with the same values and a new image" --set master.replicas=3 \
  --set master.storage.journal.storageClass=fast --set image.tag=next --set worker.replicas=5
upgrade_refused "to 5 masters" "master.replicas cannot change on an installed release (installed: 3, requested: 5)" \
  --set master.replicas=5 --set master.storage.journal.storageClass=fast
upgrade_refused "to journal class slow" "master.storage.journal cannot change on an installed release (installed: claim of class fast, requested: claim of class slow)" \
  --set master.replicas=3 --set master.storage.journal.storageClass=slow
installed "1 master, journal on hostPath /var/lib/cv" --set master.replicas=1 --set master.storage.journal.hostPath=/var/lib/cv
upgrade_ok "with the same values" --set master.replicas=1 --set master.storage.journal.hostPath=/var/lib/cv
upgrade_refused "to an emptyDir journal" "(installed: hostPath /var/lib/cv, requested: emptyDir)" --set master.replicas=1

echo "chart tests passed: $cases cases"
