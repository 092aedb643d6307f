#!/usr/bin/env bash
# The monitoring pack (monitoring/): Prometheus rules and alerts parse and pass their unit tests, the
# Alertmanager configuration is valid and routes each severity where docs/monitoring.md says, the dashboards
# are exactly what their generator writes, and monitoring/check.py's conventions and metric-name checks hold.
set -euo pipefail
cd "$(dirname "$0")/../.."

for tool in promtool amtool; do
  command -v "$tool" >/dev/null || { echo "monitoring: $tool is missing; run scripts/setup.sh" >&2; exit 1; }
done
python=python3
[ -x .venv/bin/python ] && python=.venv/bin/python
"$python" -c 'import yaml' 2>/dev/null || { echo "monitoring: PyYAML is missing from $python; run scripts/setup.sh" >&2; exit 1; }

echo "-- promtool check rules"
promtool check rules monitoring/rules/*.yaml monitoring/alerts/*.yaml >/dev/null

echo "-- promtool test rules"
promtool test rules monitoring/tests/*.yaml >/dev/null

echo "-- amtool check-config and routing"
config=monitoring/alertmanager/alertmanager.yaml
amtool check-config "$config" >/dev/null
# Each line: the receiver expected, then the alert's labels.
while read -r receiver labels; do
  # shellcheck disable=SC2086 # the labels are separate arguments on purpose
  if ! amtool config routes test --config.file="$config" --verify.receivers="$receiver" $labels >/dev/null 2>&1; then
    echo "monitoring: alert {$labels} is not routed to $receiver" >&2
    exit 1
  fi
done <<'ROUTES'
page severity=critical alertname=McpAgentDown namespace=mcp service=weather
email severity=warning alertname=McpQueueRejecting namespace=mcp service=weather
null severity=info alertname=McpulseWatchdog
null severity=info alertname=SomethingInformational
ROUTES

echo "-- dashboards match monitoring/dashboards/generate.py"
"$python" monitoring/dashboards/generate.py --check

echo "-- conventions, coverage, PromQL and metric names"
"$python" monitoring/check.py
