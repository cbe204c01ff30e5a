#!/usr/bin/env bash
# Garbage collection on a repository of ~100,000 chunks: Cairn's collector
# against `restic prune` and `borg compact`, in one run, on the same files.
#
# Usage: bench/run-gc.sh [FILES]      (default 100000)
#
# The data: FILES small files of random bytes (2 KiB each, so each is one
# Cairn chunk), half under a/ and half under b/. Each tool backs up a/ and
# b/ as two backups (snapshots, archives), then, timed:
#   1. a collection with nothing to free (what every scheduled run costs);
#   2. after forgetting the a/ backup, the collection that frees its half.
# Cairn's collection is two-phase: `cairn gc` marks what is unreferenced
# (and deletes nothing, the grace period has not passed), a later run
# deletes; both runs are timed, the second with `--grace 0s` standing in
# for "a day later". Its settle pause (condemn, wait, re-read) is set to 1 s.
#
# Results: bench/results/<date>-gc.txt (the raw log and a summary table).
# Environment: BENCH_WORK (scratch dir), BENCH_KEEP=1, BENCH_TOOLS="restic
# borg cairn", BENCH_REV / BENCH_BUILD / BENCH_NO_BUILD / CAIRN_BIN as for
# bench/run.sh.
set -euo pipefail

FILES=${1:-100000}
case $FILES in '' | *[!0-9]*) echo "run-gc.sh: FILES must be a positive integer" >&2; exit 2 ;; esac
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(dirname "$HERE")
BUILD=${BENCH_BUILD:-$HOME/.cache/cairn-bench-build}
CAIRN=${CAIRN_BIN:-$BUILD/target/release/cairn}
TOOLS=${BENCH_TOOLS:-restic borg cairn}
REPEAT=1 REP=1
RUN_ID=g$(date +%s)$$
# shellcheck source=bench/lib.sh
. "$HERE/lib.sh"

need_pkgs=()
[ -x /usr/bin/time ] || need_pkgs+=(time)
for t in $TOOLS; do
    case $t in
    restic) command -v restic >/dev/null || need_pkgs+=(restic) ;;
    borg) command -v borg >/dev/null || need_pkgs+=(borgbackup) ;;
    cairn) command -v nats-server >/dev/null || need_pkgs+=(nats-server) ;;
    *) die "unknown tool '$t' in BENCH_TOOLS" ;;
    esac
done
if [ ${#need_pkgs[@]} -gt 0 ]; then
    say "installing ${need_pkgs[*]}"
    apt-get install -y "${need_pkgs[@]}" >/dev/null
fi
[[ " $TOOLS " == *" cairn "* ]] && build_cairn

WORK=${BENCH_WORK:-$(mktemp -d /tmp/cairn-bench-gc.XXXXXX)}
mkdir -p "$WORK"
R=$WORK LOG=$WORK/logs RAW=$WORK/results.tsv
mkdir -p "$LOG"
: >"$RAW"
NATS_PID='' SERVE_PID='' PGDB="cairn_bench_$RUN_ID"
cleanup() {
    local rc=$?
    if [ -n "$SERVE_PID" ]; then kill -TERM "$SERVE_PID" 2>/dev/null; wait "$SERVE_PID" 2>/dev/null || true; fi
    if [ -n "$NATS_PID" ]; then kill -TERM "$NATS_PID" 2>/dev/null; wait "$NATS_PID" 2>/dev/null || true; fi
    psql -X -q -d postgres -c "drop database if exists $PGDB" 2>/dev/null || true
    if [ -n "${BENCH_KEEP:-}" ] || [ $rc -ne 0 ]; then say "scratch directory kept: $WORK"; else rm -rf "$WORK"; fi
    exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

SRC=$WORK/src
say "writing $FILES files of 2 KiB under $SRC/a and $SRC/b"
python3 - "$SRC" "$FILES" <<'PY'
import os, sys
root, n = sys.argv[1], int(sys.argv[2])
for half in ("a", "b"):
    for d in range(100):
        os.makedirs(f"{root}/{half}/{d:02}", exist_ok=True)
for i in range(n):
    half = "a" if i % 2 == 0 else "b"
    with open(f"{root}/{half}/{i % 100:02}/{i}", "wb") as f:
        f.write(os.urandom(2048))
PY
sync
size() { du -sb "$1" | cut -f1; }

run_restic() {
    export RESTIC_REPOSITORY=$WORK/restic-repo RESTIC_PASSWORD=bench-passphrase RESTIC_CACHE_DIR=$WORK/restic-cache
    restic init >"$LOG/restic-init.log" 2>&1 || die "restic init"
    timed restic.backup_a restic backup --tag a "$SRC/a"
    timed restic.backup_b restic backup --tag b "$SRC/b"
    put restic.before "$(size "$RESTIC_REPOSITORY")"
    timed restic.gc_nothing restic prune
    restic forget "$(restic snapshots --tag a --json | jq -r '.[0].id')" >"$LOG/restic-forget.log" 2>&1 || die "restic forget"
    timed restic.gc_free restic prune
    put restic.after "$(size "$RESTIC_REPOSITORY")"
}

run_borg() {
    export BORG_REPO=$WORK/borg-repo BORG_PASSPHRASE=bench-passphrase BORG_BASE_DIR=$WORK/borg-base
    borg init --encryption=repokey >"$LOG/borg-init.log" 2>&1 || die "borg init"
    timed borg.backup_a borg create ::a "$SRC/a"
    timed borg.backup_b borg create ::b "$SRC/b"
    put borg.before "$(size "$BORG_REPO")"
    timed borg.gc_nothing borg compact
    borg delete ::a >"$LOG/borg-delete.log" 2>&1 || die "borg delete"
    timed borg.gc_free borg compact
    put borg.after "$(size "$BORG_REPO")"
}

gc_field() { jq -r "[.networks[] | .$2] | add" "$LOG/$1.out"; }

run_cairn() {
    local cfg=$WORK/cairn.toml id_a
    start_cairn "$cfg" "$(printf '\n[retention]\ngc_settle_secs = 1')"
    timed cairn.backup_a "$CAIRN" --config "$cfg" backup "$SRC/a" --dataset a --json --timeout 7200
    timed cairn.backup_b "$CAIRN" --config "$cfg" backup "$SRC/b" --dataset b --json --timeout 7200
    id_a=$(jq -r .backup_id "$LOG/cairn.backup_a.out")
    put cairn.before "$(size "$WORK/cairn-data")"
    # The repository's own directory network is under data_dir/local.
    put cairn.chunks "$(find "$WORK/cairn-data" -path '*/chunks/*' -type f | wc -l)"
    timed cairn.gc_nothing "$CAIRN" --config "$cfg" gc --grace 0s --json
    "$CAIRN" --config "$cfg" forget "$id_a" --json >"$LOG/cairn-forget.log" 2>&1 || die "cairn forget: $(cat "$LOG/cairn-forget.log")"
    timed cairn.gc_mark "$CAIRN" --config "$cfg" gc --json
    timed cairn.gc_free "$CAIRN" --config "$cfg" gc --grace 0s --json
    put cairn.after "$(size "$WORK/cairn-data")"
    put cairn.held "$(gc_field cairn.gc_nothing chunks)"
    put cairn.marked "$(gc_field cairn.gc_mark marked)"
    put cairn.deleted "$(gc_field cairn.gc_free deleted)"
    put cairn.freed "$(gc_field cairn.gc_free bytes_freed)"
}

for t in $TOOLS; do "run_$t"; done

OUTFILE=$ROOT/bench/results/$(date +%F)-gc.txt
{
    echo "# bench/run-gc.sh $FILES, $(date -u +%FT%TZ), $(machine 2>/dev/null | head -1)"
    echo "# Cairn: ${CAIRN_LABEL:-not run}; $(ver restic version); $(ver borg --version)"
    printf '%-8s %12s %12s %12s %12s %14s %14s\n' tool backup_a_s backup_b_s gc_nothing_s gc_free_s before_bytes after_bytes
    for t in $TOOLS; do
        printf '%-8s %12s %12s %12s %12s %14s %14s\n' "$t" "$(last "$t.backup_a.wall")" "$(last "$t.backup_b.wall")" \
            "$(last "$t.gc_nothing.wall")" "$(last "$t.gc_free.wall")" "$(last "$t.before")" "$(last "$t.after")"
    done
    if [[ " $TOOLS " == *" cairn "* ]]; then
        echo "cairn: chunk files $(last cairn.chunks); gc found $(last cairn.held) chunks; mark run $(last cairn.gc_mark.wall) s marked $(last cairn.marked); sweep run deleted $(last cairn.deleted), freed $(last cairn.freed) bytes"
        for k in gc_nothing gc_mark gc_free; do echo "--- cairn.$k"; cat "$LOG/cairn.$k.out"; done
    fi
    echo "--- raw"
    cat "$RAW"
} | tee "$OUTFILE"
say "written $OUTFILE"
