#!/usr/bin/env bash
# Installs mcpulse on the current kubectl context: kube-prometheus-stack, prometheus-adapter and KEDA from
# their upstream charts at pinned versions, then our kustomize overlay.
#
#   deploy/install.sh dev|prod
#
# Environment:
#   MCPULSE_REMOTE_WRITE=1   also apply helm/kube-prometheus-stack/values-remote-write.yaml (Thanos or Mimir)
#   MCPULSE_SKIP_CHARTS=1    only apply the overlay (the charts are managed elsewhere)
#
# Before the first run, create the Secrets that are never in Git (docs/monitoring.md, "Install on Kubernetes"):
#   monitoring/grafana-oauth, monitoring/grafana-smtp, monitoring/grafana-admin,
#   mcpulse/mcpulse-alertmanager, and for prod mcpulse/mcpulse-registry-db.
set -euo pipefail
cd "$(dirname "$0")"

readonly KUBE_PROMETHEUS_STACK_VERSION=88.5.3
readonly PROMETHEUS_ADAPTER_VERSION=5.3.0
readonly KEDA_VERSION=2.21.1
readonly MONITORING_NAMESPACE=monitoring
readonly KEDA_NAMESPACE=keda
readonly APP_NAMESPACE=mcpulse

usage() { echo "usage: $0 dev|prod" >&2; exit 2; }
[ $# -eq 1 ] || usage
overlay=$1
case "$overlay" in dev | prod) ;; *) usage ;; esac

for tool in kubectl helm; do
  command -v "$tool" >/dev/null || { echo "install: $tool is not on PATH; install it first" >&2; exit 1; }
done
echo "install: context $(kubectl config current-context), overlay $overlay"

ensure_namespace() {
  kubectl create namespace "$1" --dry-run=client -o yaml | kubectl apply -f - >/dev/null
}

require_secret() {
  local namespace=$1 name=$2 hint=$3
  if ! kubectl -n "$namespace" get secret "$name" >/dev/null 2>&1; then
    echo "install: Secret $namespace/$name is missing; create it first: $hint" >&2
    exit 1
  fi
}

if [ "${MCPULSE_SKIP_CHARTS:-0}" != 1 ]; then
  ensure_namespace "$MONITORING_NAMESPACE"
  ensure_namespace "$KEDA_NAMESPACE"
  require_secret "$MONITORING_NAMESPACE" grafana-oauth \
    "kubectl -n $MONITORING_NAMESPACE create secret generic grafana-oauth --from-literal=GF_AUTH_GENERIC_OAUTH_CLIENT_ID=... --from-literal=GF_AUTH_GENERIC_OAUTH_CLIENT_SECRET=..."
  require_secret "$MONITORING_NAMESPACE" grafana-smtp \
    "kubectl -n $MONITORING_NAMESPACE create secret generic grafana-smtp --from-literal=password=..."
  require_secret "$MONITORING_NAMESPACE" grafana-admin \
    "kubectl -n $MONITORING_NAMESPACE create secret generic grafana-admin --from-literal=admin-user=admin --from-literal=admin-password=..."

  helm repo add prometheus-community https://prometheus-community.github.io/helm-charts --force-update
  helm repo add kedacore https://kedacore.github.io/charts --force-update
  helm repo update prometheus-community kedacore

  stack_values=(-f helm/kube-prometheus-stack/values.yaml)
  if [ "${MCPULSE_REMOTE_WRITE:-0}" = 1 ]; then
    require_secret "$MONITORING_NAMESPACE" remote-write-auth \
      "kubectl -n $MONITORING_NAMESPACE create secret generic remote-write-auth --from-literal=username=... --from-literal=password=..."
    stack_values+=(-f helm/kube-prometheus-stack/values-remote-write.yaml)
  fi
  # The stack first: it brings the CRDs (ServiceMonitor, PrometheusRule, ...) that our overlay uses.
  helm upgrade --install kube-prometheus-stack prometheus-community/kube-prometheus-stack \
    --version "$KUBE_PROMETHEUS_STACK_VERSION" --namespace "$MONITORING_NAMESPACE" \
    "${stack_values[@]}" --wait --timeout 15m
  helm upgrade --install prometheus-adapter prometheus-community/prometheus-adapter \
    --version "$PROMETHEUS_ADAPTER_VERSION" --namespace "$MONITORING_NAMESPACE" \
    -f helm/prometheus-adapter/values.yaml --wait --timeout 10m
  # KEDA brings the ScaledObject CRD; the prod overlay scales agents with it (dev uses prometheus-adapter).
  helm upgrade --install keda kedacore/keda \
    --version "$KEDA_VERSION" --namespace "$KEDA_NAMESPACE" --wait --timeout 10m
fi

ensure_namespace "$APP_NAMESPACE"
require_secret "$APP_NAMESPACE" mcpulse-alertmanager \
  "kubectl -n $APP_NAMESPACE create secret generic mcpulse-alertmanager --from-literal=... (keys: see the mcpulse.io/required-secret-keys annotation in kustomize/monitoring/generated/alertmanagerconfig.yaml)"
if [ "$overlay" = prod ]; then
  require_secret "$APP_NAMESPACE" mcpulse-registry-db \
    "kubectl -n $APP_NAMESPACE create secret generic mcpulse-registry-db --from-literal=url=postgres://USER:PASSWORD@HOST:5432/registry"
fi

# Cluster add-ons the overlays rely on but that clusters usually bring themselves: fail early with the fix.
require_api() {
  local resource=$1 hint=$2
  if ! kubectl api-resources -o name 2>/dev/null | grep -qx "$resource"; then
    echo "install: the cluster has no $resource API; $hint" >&2
    exit 1
  fi
}
# The CPU and memory HPAs read resource metrics from metrics-server.
require_api pods.metrics.k8s.io "install metrics-server (https://github.com/kubernetes-sigs/metrics-server) first"
if [ "$overlay" = prod ]; then
  # prod carries VerticalPodAutoscaler objects (recommendations for registry and gateway, memory for agents).
  require_api verticalpodautoscalers.autoscaling.k8s.io \
    "install the Vertical Pod Autoscaler (kubernetes/autoscaler, vertical-pod-autoscaler/) first, or drop ../../autoscaling/vpa from the prod overlay"
fi

# Server-side apply: dashboard ConfigMaps are larger than the 256 KiB annotation that client-side apply
# would store the last applied configuration in.
kubectl apply --server-side --field-manager=mcpulse-install -k "kustomize/overlays/$overlay"
for deployment in mcpulse-registry mcpulse-agent mcpulse-gateway; do
  kubectl -n "$APP_NAMESPACE" rollout status "deployment/$deployment" --timeout 5m
done
echo "install: mcpulse ($overlay) is running; clients connect to http://mcpulse-gateway.$APP_NAMESPACE.svc:7000/mcp"
