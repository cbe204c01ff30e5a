#!/usr/bin/env bash
# The ops console with many backups in the ledger (issue 15): page load and
# update latency in headless Chromium, and the API's list, with N backups
# (default 10000) recorded by a real ledger worker on a real nats-server
# and PostgreSQL. Drives tests/examples/console_load.rs; the console is
# the release build of `cairn`.
#
# Usage: bench/run-console.sh [N]
# Results: bench/results/<date>-console.json (one JSON object).
# Environment: CAIRN_BIN (default: a release build in $CARGO_TARGET_DIR).
set -euo pipefail
N=${1:-10000}
case $N in '' | *[!0-9]*) echo "run-console.sh: N must be a positive integer" >&2; exit 2 ;; esac
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(dirname "$HERE")
cd "$ROOT"
. scripts/lib.sh
ensure_nats
ensure_postgres
ensure_rust
apt_install chromium chromium-driver
cargo build --release --quiet -p cairn
cargo build --quiet -p cairn-tests --example console_load
export CAIRN_BIN=${CAIRN_BIN:-$CARGO_TARGET_DIR/release/cairn}
mkdir -p bench/results
out=bench/results/$(date -u +%Y-%m-%d)-console.json
"$CARGO_TARGET_DIR/debug/examples/console_load" "$N" | tee "$out"
echo "written $out" >&2
