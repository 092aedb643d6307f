#!/usr/bin/env bash
# The monitoring pack end to end, on real processes: a registry, two agents (one behind a meter sidecar), a
# meter gateway, real MCP traffic, a real Prometheus loading the project's rules and alerts, a real
# Alertmanager routing with the project's tree to a local webhook. Asserts that every recording rule and every
# dashboard query returns data (minus an explicit allow-list), that killing an agent fires McpAgentDown, pages,
# inhibits the same server's McpulseTargetDown warning, and resolves after the agent is restarted; then renders
# each dashboard's time series to PNG (target/monitoring-e2e/png; MCPULSE_E2E_UPDATE_IMAGES=1 also refreshes
# the pictures in docs/img/). About 2-3 minutes.
#
# Test-only change to the project's files: the test copy of the alerts shortens `for:` of the two alerts it
# exercises (McpAgentDown 5m -> 5s, McpulseTargetDown 10m -> 10s), and the Alertmanager copy shortens
# group_wait/group_interval (1s/2s) and sends every notifying receiver to the webhook instead of email/pager.
set -euo pipefail
cd "$(dirname "$0")/../.."
export PYTHONDONTWRITEBYTECODE=1

for tool in prometheus prometheus-alertmanager amtool curl; do
  command -v "$tool" >/dev/null || { echo "monitoring-e2e: $tool is missing; run scripts/setup.sh" >&2; exit 1; }
done
python=.venv/bin/python
[ -x "$python" ] || { echo "monitoring-e2e: .venv is missing; run scripts/setup.sh" >&2; exit 1; }
"$python" -c 'import mcp, yaml' 2>/dev/null || { echo "monitoring-e2e: the MCP SDK or PyYAML is missing from .venv; run scripts/setup.sh" >&2; exit 1; }
if ! "$python" -c 'import matplotlib' 2>/dev/null; then
  echo "-- installing the panel renderer's matplotlib into .venv"
  "$python" -m pip install -q --disable-pip-version-check -r monitoring/e2e/requirements.txt
fi

started=$(date +%s)
phase() { echo "-- [$(( $(date +%s) - started ))s] $*"; }
cargo build --quiet -p mcpulse
mcpulse="$PWD/target/debug/mcpulse"
e2e=monitoring/e2e
work="$PWD/target/monitoring-e2e"
rm -rf "$work"; mkdir -p "$work/registry-data" "$work/png"

pids=()
cleanup() {
  status=$?
  [ ${#pids[@]} -eq 0 ] || kill "${pids[@]}" 2>/dev/null || true
  wait 2>/dev/null || true
  if [ "$status" -ne 0 ]; then
    echo "monitoring-e2e: FAILED; last log lines of each process (all in $work):" >&2
    for log in "$work"/*.log; do echo "== $log" >&2; tail -n 5 "$log" >&2; done
  fi
}
trap cleanup EXIT

free_port() { "$python" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_for() { # URL WHAT
  for _ in $(seq 300); do curl -sf -o /dev/null "$1" && return 0; sleep 0.1; done
  echo "monitoring-e2e: $2 did not come up at $1" >&2; exit 1
}
registry=$(free_port); registry_metrics=$(free_port)
weather=$(free_port); weather_metrics=$(free_port); sidecar=$(free_port); sidecar_metrics=$(free_port)
search=$(free_port); search_metrics=$(free_port); gateway=$(free_port); gateway_metrics=$(free_port)
prometheus_port=$(free_port); alertmanager_port=$(free_port); webhook_port=$(free_port)
prom_url="http://127.0.0.1:$prometheus_port"
webhook_log="$work/webhook.jsonl"

phase "fleet: registry, agents weather (with a meter sidecar) and search, meter gateway"
token=$("$mcpulse" registry token create --role publisher --data-dir "$work/registry-data" 2>"$work/token.log")
"$mcpulse" registry --listen "127.0.0.1:$registry" --metrics-listen "127.0.0.1:$registry_metrics" \
  --data-dir "$work/registry-data" --unhealthy-after 2s --probe-interval 1s --probe-timeout 500ms \
  --probe-failures 2 --gauge-refresh 1s >"$work/registry.log" 2>&1 & pids+=($!)
wait_for "http://127.0.0.1:$registry_metrics/healthz" registry
start_agent() { # NAME MCP_PORT METRICS_PORT: the agents sleep and burn a little CPU per call, and fail 2%
  "$mcpulse" agent --listen "127.0.0.1:$2" --metrics-listen "127.0.0.1:$3" --server-name "io.mcpulse/$1" \
    --registry "http://127.0.0.1:$registry" --token "$token" --heartbeat-interval 500ms \
    --cpu-ms 1 --sleep-ms 20 --response-bytes 512 --error-rate 0.02 --workers 2 --max-queue 8 \
    >>"$work/agent-$1.log" 2>&1 & pids+=($!)
  agent_pid=$!
}
start_agent weather "$weather" "$weather_metrics"; weather_pid=$agent_pid
start_agent search "$search" "$search_metrics"
"$mcpulse" meter --listen "127.0.0.1:$sidecar" --metrics-listen "127.0.0.1:$sidecar_metrics" \
  --upstream "http://127.0.0.1:$weather" --max-concurrency 4 >"$work/sidecar.log" 2>&1 & pids+=($!)
# A small admission queue and label limit, so the driver's bursts and unknown tools show up as rejections
# and label overflow.
"$mcpulse" meter --listen "127.0.0.1:$gateway" --metrics-listen "127.0.0.1:$gateway_metrics" \
  --registry "http://127.0.0.1:$registry" --registry-interval 500ms \
  --max-concurrency 2 --max-queue 3 --queue-timeout 1s --label-limit 6 >"$work/gateway.log" 2>&1 & pids+=($!)
for port in "$weather_metrics" "$search_metrics" "$sidecar_metrics" "$gateway_metrics"; do
  wait_for "http://127.0.0.1:$port/healthz" "the process with metrics on :$port"
done
upstreams() { curl -sf "http://127.0.0.1:$gateway_metrics/upstreams" | "$python" -c 'import json,sys; print(sum(1 for u in json.load(sys.stdin) if not u["withdrawn"]))'; }
for _ in $(seq 100); do [ "$(upstreams)" = 2 ] && break; sleep 0.2; done
[ "$(upstreams)" = 2 ] || { echo "monitoring-e2e: the gateway did not discover both agents" >&2; exit 1; }

phase "Prometheus, Alertmanager and the webhook"
# Scrape jobs and target labels as deploy/'s monitors set them: the sidecar meter is in the weather pod.
"$python" "$e2e/prepare.py" --out "$work" --alertmanager "127.0.0.1:$alertmanager_port" \
  --webhook "127.0.0.1:$webhook_port" \
  --target mcpulse-registry mcpulse-registry mcpulse-registry-0 "127.0.0.1:$registry_metrics" \
  --target mcpulse-agent weather weather-0 "127.0.0.1:$weather_metrics" \
  --target mcpulse-meter weather weather-0 "127.0.0.1:$sidecar_metrics" \
  --target mcpulse-agent search search-0 "127.0.0.1:$search_metrics" \
  --target mcpulse-meter mcpulse-gateway mcpulse-gateway-0 "127.0.0.1:$gateway_metrics" \
  --for McpAgentDown=5s --for McpulseTargetDown=10s
promtool check config "$work/prometheus.yml" >/dev/null
amtool check-config "$work/alertmanager.yml" >/dev/null
"$python" "$e2e/webhook.py" --listen "127.0.0.1:$webhook_port" --log "$webhook_log" \
  --token-file "$work/webhook-token" >"$work/webhook.log" 2>&1 & pids+=($!)
prometheus-alertmanager --config.file="$work/alertmanager.yml" --storage.path="$work/alertmanager-data" \
  --web.listen-address="127.0.0.1:$alertmanager_port" --cluster.listen-address= --log.level=warn \
  >"$work/alertmanager.log" 2>&1 & pids+=($!)
prometheus --config.file="$work/prometheus.yml" --storage.tsdb.path="$work/prometheus-data" \
  --web.listen-address="127.0.0.1:$prometheus_port" --log.level=warn >"$work/prometheus.log" 2>&1 & pids+=($!)
wait_for "http://127.0.0.1:$alertmanager_port/-/ready" Alertmanager
wait_for "$prom_url/-/ready" Prometheus
run_start=$(date +%s)

# Longer runs (MCPULSE_E2E_SECONDS=240) give the 5-minute recording rules time to settle in the pictures.
seconds=${MCPULSE_E2E_SECONDS:-75}
phase "traffic for $seconds s through the gateway and the sidecar"
"$python" "$e2e/drive.py" --endpoint "http://127.0.0.1:$gateway/mcp" --endpoint "http://127.0.0.1:$sidecar/mcp" \
  --seconds "$seconds" --sessions-per-second 1 >"$work/drive.json" 2>"$work/drive.log" & driver=$!
pids+=("$driver")
sleep 20

phase "kill -9 the weather agent"
{ kill -9 "$weather_pid"; wait "$weather_pid"; } 2>/dev/null || true # quiet: bash would report "Killed"
verify() { "$python" "$e2e/verify.py" "$@"; }
verify delivery --log "$webhook_log" --alert McpAgentDown --status firing --receiver page \
  --label job=mcpulse-agent --label service=weather --timeout 60
# McpulseTargetDown (warning) fires for the same server a few seconds later and must be inhibited.
verify alert --prometheus "$prom_url" --alert McpulseTargetDown --state firing \
  --label job=mcpulse-agent --label service=weather --timeout 60
sleep 4 # more than the test routing's group_wait + group_interval
verify quiet --log "$webhook_log" --alert McpulseTargetDown --label service=weather

phase "restart the weather agent on the same ports"
start_agent weather "$weather" "$weather_metrics"
verify delivery --log "$webhook_log" --alert McpAgentDown --status resolved --receiver page \
  --label job=mcpulse-agent --label service=weather --timeout 60

phase "waiting for the traffic to end"
wait "$driver"
sleep 3 # a last scrape and rule evaluation
phase "assertions on rules and dashboards"
verify rules --prometheus "$prom_url"
verify panels --prometheus "$prom_url" --start "$run_start" --allow "$e2e/allow-empty.yaml"

phase "rendering the dashboards"
"$python" "$e2e/render.py" --prometheus "$prom_url" --start "$run_start" --allow "$e2e/allow-empty.yaml" \
  --out "$work/png"
if [ "${MCPULSE_E2E_UPDATE_IMAGES:-}" = 1 ]; then
  mkdir -p docs/img
  for name in overview mcp-server registry usage; do cp "$work/png/$name.png" "docs/img/dashboard-$name.png"; done
fi

notifications=$(wc -l <"$webhook_log")
echo "monitoring-e2e: traffic $(cat "$work/drive.json"); $notifications webhook notifications;" \
  "PNGs in $work/png; $(( $(date +%s) - started )) s in all"
