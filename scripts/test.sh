#!/usr/bin/env bash
# The whole test suite, on a fresh Debian machine or a developer's: installs
# and starts what the tests talk to (nats-server, PostgreSQL, MariaDB, Redis,
# the storage servers),
# then checks formatting and lints, builds the workspace once and runs every
# test.
# Reuses $CARGO_TARGET_DIR (default ~/.cache/cairn-target) between runs.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
ensure_nats
ensure_postgres
ensure_test_databases
ensure_rust
ensure_test_servers
say "cargo fmt --check"
cargo fmt --all -- --check
say "cargo clippy (warnings are errors)"
cargo clippy --workspace --all-targets --quiet -- -D warnings
say "building"
cargo build --workspace --all-targets --quiet
status=0
if command -v cargo-nextest >/dev/null; then
  say "running the tests (cargo nextest)"
  cargo nextest run --workspace --no-fail-fast "$@" || status=$?
else
  say "running the tests (cargo test)"
  cargo test --workspace --no-fail-fast "$@" || status=$?
fi
# The whole suite (no filter given) ends with a bounded run of every fuzz
# target; a crash fails it as a failed test does.
if [ $# -eq 0 ]; then
  bash scripts/fuzz.sh || status=$?
fi
exit $status
