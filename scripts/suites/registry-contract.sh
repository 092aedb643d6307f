#!/usr/bin/env bash
# Runs schemathesis against the registry's read endpoints, checked against the official OpenAPI contract.
# Usage: scripts/suites/registry-contract.sh [extra schemathesis args]. Needs python3 (with venv) and cargo.
set -euo pipefail

root="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$root"
spec="${MCPULSE_REGISTRY_OPENAPI:-${MCPULSE_SHARED:-$root/third_party/shared}/schemas/mcp-registry/openapi.yaml}"
if [[ ! -f "$spec" ]]; then
  echo "OpenAPI contract not found at $spec; set MCPULSE_REGISTRY_OPENAPI" >&2
  exit 2
fi

if [[ ! -x .venv/bin/schemathesis ]]; then
  python3 -m venv .venv
  .venv/bin/pip install --quiet schemathesis
fi

cargo build --quiet -p mcpulse-registry --example serve
work="$(mktemp -d)"
log="$work/serve.log"
target="${CARGO_TARGET_DIR:-$root/target}"
"$target/debug/examples/serve" "$work/data" "$work/token" >"$log" 2>&1 &
pid=$!
cleanup() { kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT

for _ in $(seq 1 100); do
  grep -q '^listening on ' "$log" && break
  sleep 0.1
done
url="$(sed -n 's/^listening on //p' "$log")"
if [[ -z "$url" ]]; then
  echo "registry did not start:" >&2
  cat "$log" >&2
  exit 1
fi

# Seed data so the read endpoints return real documents, not only empty lists and 404s.
token="$(cat "$work/token")"
for version in 1.0.0 1.1.0; do
  curl -sf -X POST "$url/v0.1/publish" -H "Authorization: Bearer $token" -H 'Content-Type: application/json' \
    -d "{\"name\":\"io.example/weather\",\"description\":\"Weather\",\"version\":\"$version\",\"remotes\":[{\"type\":\"streamable-http\",\"url\":\"https://weather.example.com/mcp\"}]}" >/dev/null
done

# Pin serverName to the seeded server so the per-server endpoints reach real documents; the
# list endpoint and the version parameter stay fuzzed.
cat >"$work/schemathesis.toml" <<'TOML'
[[operations]]
include-path-regex = "/versions"
parameters = { "path.serverName" = "io.example/weather" }
TOML

# Read endpoints only (GET). The contract documents no 400 for the list endpoint, but out-of-range
# limits and malformed dates are rejected with 400 rather than guessed at, so status-code
# conformance is not among the checks; every response must still be no 5xx, JSON, and match its schema.
.venv/bin/schemathesis --config-file "$work/schemathesis.toml" run "$spec" \
  --url "$url" \
  --include-method GET \
  --checks not_a_server_error,content_type_conformance,response_schema_conformance \
  --max-examples "${MAX_EXAMPLES:-100}" \
  "$@"
