#!/usr/bin/env bash
# Runs every cargo-fuzz target in fuzz/ for FUZZ_SECS seconds each (20 by
# default): stable Rust, coverage-guided, no sanitizer (Cairn has no unsafe
# code), starting from the committed corpus fuzz/corpus/<target> and the
# crashes kept in fuzz/regressions/<target>. What it learns goes to a
# scratch copy, so the tree stays as committed. A crash fails the run and
# leaves the input in fuzz/artifacts/<target>/: fix the decoder, then keep
# the input in fuzz/regressions/<target>/ (tests/tests/fuzz_corpora.rs
# replays it on every test run).
#
#   scripts/fuzz.sh                 every target, 20 s each
#   FUZZ_SECS=600 scripts/fuzz.sh manifest
#   FUZZ_KEEP=1 scripts/fuzz.sh     and merge what adds coverage into
#                                   fuzz/corpus (to commit)
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
ensure_rust
ensure_cargo_fuzz
secs="${FUZZ_SECS:-20}"
# Instrumented builds share nothing with the main build: a target dir of
# their own, kept between runs.
export CARGO_TARGET_DIR="$HOME/.cache/cairn-fuzz-target"
targets="${*:-$(cargo fuzz list --fuzz-dir fuzz)}"
say "building the fuzz targets (coverage instrumentation, stable; ~10 min the first time)"
cargo fuzz build --fuzz-dir fuzz -s none
scratch="$(mktemp -d)"
trap 'rm -rf "$scratch"' EXIT
failed=""
for t in $targets; do
  mkdir -p "$scratch/$t" fuzz/corpus/"$t" fuzz/regressions/"$t"
  cp -r fuzz/corpus/"$t"/. fuzz/regressions/"$t"/. "$scratch/$t"/ 2>/dev/null || true
  log="$scratch/$t.log"
  if cargo fuzz run --fuzz-dir fuzz -s none "$t" "$scratch/$t" -- \
      -max_total_time="$secs" -rss_limit_mb=2048 -timeout=10 -max_len=65536 \
      -print_final_stats=1 >"$log" 2>&1; then
    runs="$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)"
    echo "fuzz $t: ${runs:-?} inputs in ${secs} s, no crash"
    # Kept: what adds an edge of coverage (not every new comparison or
    # hit count), so the committed corpus stays small.
    if [ -n "${FUZZ_KEEP:-}" ]; then
      cargo fuzz run --fuzz-dir fuzz -s none "$t" fuzz/corpus/"$t" "$scratch/$t" -- \
        -merge=1 -max_len=65536 -use_cmp=0 -use_counters=0 -use_value_profile=0 \
        >"$log.merge" 2>&1 || { tail -20 "$log.merge"; die "merging $t's corpus"; }
    fi
  else
    echo "fuzz $t: FAILED"
    tail -40 "$log"
    failed="$failed $t"
  fi
done
if [ -n "$failed" ]; then
  die "fuzzing found crashes in:$failed (inputs in fuzz/artifacts/)"
fi
