#!/usr/bin/env bash
# Runs every test of mcpulse, after installing what the tests need (scripts/setup.sh).
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/setup.sh
export PATH="$PWD/.venv/bin:$PATH"
# Tests that need an external program fail instead of skipping when it is missing.
export MCPULSE_REQUIRE_EXTERNAL=1
# Contracts and schemas the suites validate against (copies of ../shared, see third_party/README.md).
export MCPULSE_SHARED="${MCPULSE_SHARED:-$PWD/third_party/shared}"
# One build per run: incremental artifacts would only double the target directory.
export CARGO_INCREMENTAL="${CARGO_INCREMENTAL:-0}"
# A linker killed by SIGBUS is what a full disk looks like; say so up front.
free_kib=$(df -Pk . | awk 'NR==2 {print $4}')
if [ "$free_kib" -lt $((6 * 1024 * 1024)) ]; then
  echo "warning: only $((free_kib / 1024)) MiB free on $(df -P . | awk 'NR==2 {print $6}'); a clean build needs about 6 GiB" >&2
fi

# A throwaway PostgreSQL for the storage suites that run against both SQLite and PostgreSQL.
eval "$(scripts/postgres.sh start)"
trap 'scripts/postgres.sh stop "$MCPULSE_TEST_PG_DIR"' EXIT

echo "== format and lints"
cargo fmt --all --check
cargo clippy --workspace --all-targets --locked -- -D warnings

echo "== unit, integration and property tests"
cargo test --workspace --locked

for suite in scripts/suites/*.sh; do
  [ -e "$suite" ] || continue
  echo "== $suite"
  "$suite"
done
echo "== all tests passed"
