#!/usr/bin/env bash
# Erasure coding against whole copies: Cairn backing up the benchmark data
# set to five networks, as `erasure 3/5` (one Reed-Solomon shard of each
# pack per network, any three rebuild it) and as five whole copies
# (`replicate`). Five local-directory networks, so that what is measured is
# Cairn's own cost (coding, hashing, writing), not five servers on two cores.
#
# Usage: bench/run-erasure.sh [SCALE]     (SCALE of the pgbench dump, default 30)
#
# Configurations, in this order in every repetition (each with a fresh
# repository, broker and ledger database):
#   replicate-5   five whole copies          erasure-3/5   one shard per network
# Each: a full backup of v1, its restore with every network there, and its
# restore with two of the five networks taken away (for erasure 3/5 every
# pack is then rebuilt from shards); both restores checked byte for byte.
# Storage is what the five network directories hold after the backup.
# Results go to BENCHMARKS.md (between the erasure markers; the rest of the
# file is kept) and to bench/results/<date>-s<SCALE>-erasure.{md,tsv}.
#
# Environment (all optional), as for bench/run.sh:
#   BENCH_WORK, BENCH_DATA, BENCH_KEEP=1, BENCH_REPEAT (default 3), BENCH_REV,
#   BENCH_BUILD, BENCH_NO_BUILD=1, CAIRN_BIN, BENCH_OUT
set -euo pipefail

SCALE=${1:-30}
case $SCALE in '' | *[!0-9]*) echo "run-erasure.sh: SCALE must be a positive integer" >&2; exit 2 ;; esac
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(dirname "$HERE")
BUILD=${BENCH_BUILD:-$HOME/.cache/cairn-bench-build}
CAIRN=${CAIRN_BIN:-$BUILD/target/release/cairn}
REPEAT=${BENCH_REPEAT:-3}
case $REPEAT in '' | *[!0-9]* | 0) echo "run-erasure.sh: BENCH_REPEAT must be a positive integer" >&2; exit 2 ;; esac
REP=0
OUT=${BENCH_OUT:-$ROOT/BENCHMARKS.md}
RUN_ID=e$(date +%s)$$
START_SECONDS=$SECONDS
LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
CONFIGS="replicate-5 erasure-3/5"
NETS="n1 n2 n3 n4 n5"
# shellcheck source=bench/lib.sh
. "$HERE/lib.sh"

[ -x /usr/bin/time ] || { say "installing time"; apt-get install -y time >/dev/null; }
command -v nats-server >/dev/null || { say "installing nats-server"; apt-get install -y nats-server >/dev/null; }
for c in psql pg_dump pgbench jq diff du python3; do command -v $c >/dev/null || die "$c is missing"; done
build_cairn

WORK=${BENCH_WORK:-$(mktemp -d /tmp/cairn-bench-ec.XXXXXX)}
mkdir -p "$WORK"
SRC=$WORK/src
RAW=$WORK/results.tsv
: >"$RAW"
if [ -n "${CAIRN_LABEL:-}" ]; then
    cp "$CAIRN" "$WORK/cairn"
    CAIRN=$WORK/cairn
fi
NATS_PID='' SERVE_PID='' DBS_MADE=()
stop_pid() {
    [ -n "$1" ] || return 0
    kill -TERM "$1" 2>/dev/null || return 0
    wait "$1" 2>/dev/null || true
}
cleanup() {
    local rc=$?
    stop_pid "$SERVE_PID"
    stop_pid "$NATS_PID"
    for db in "${DBS_MADE[@]}"; do psql -X -q -d postgres -c "drop database if exists $db" 2>/dev/null; done
    if [ -n "${BENCH_KEEP:-}" ] || [ $rc -ne 0 ]; then
        say "scratch directory kept: $WORK"
    else
        rm -rf "$WORK"
    fi
    exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

DATA=${BENCH_DATA:-$WORK/data}
make_data

# config FILE REDUNDANCY: five directory networks under $C, dataset `bench`.
config() {
    local n
    cat >"$1" <<EOF
data_dir = "$C/data"

[nats]
url = "nats://127.0.0.1:$NATS_PORT"
prefix = "${RUN_ID}r$REP${CFG//[^a-z0-9]/}"

[postgres]
url = "host=127.0.0.1 port=5432 user=postgres dbname=$PGDB"

[verify]
timeout_secs = 3600

[datasets.bench]
redundancy = "$2"
EOF
    for n in $NETS; do printf '\n[[networks]]\nname = "%s"\nkind = "fs"\npath = "%s"\n' "$n" "$C/$n"; done >>"$1"
}

# restore_checked PHASE: restore the backup into a fresh directory, check it
restore_checked() {
    local ph=$1 where
    phase_restore=$R/restore/$K.$ph
    timed "$K.$ph" "$CAIRN" --config "$C/cairn.toml" restore "$ID" --to "$phase_restore" --json
    where=$(restored_root "$phase_restore")
    if ! diff -r -q "$DATA/v1" "${where:-$phase_restore/missing}" >"$LOG/$K.$ph-diff.txt" 2>&1; then
        cat "$LOG/$K.$ph-diff.txt" >&2
        die "$K.$ph: the restored tree differs from v1"
    fi
    say "$K.$ph is byte-identical to v1"
    rm -rf "$phase_restore"
}

run_config() {
    local redundancy st n
    case $CFG in
    replicate-5) redundancy=replicate ;;
    erasure-3/5) redundancy="erasure 3/5" ;;
    esac
    K=cairn.${CFG//\//-}
    C=$R/${CFG//\//-}
    mkdir -p "$C"
    NATS_PORT=$(free_port)
    PGDB="cairn_bench_${RUN_ID}_r${REP}_${CFG//[^a-z0-9]/}"
    DBS_MADE+=("$PGDB")
    config "$C/cairn.toml" "$redundancy"
    while read -r v; do unset "$v"; done < <(compgen -e | grep -E '^CAIRN_' || true)
    export CAIRN_PASSPHRASE=bench-passphrase
    GOMEMLIMIT=$NATS_GOMEMLIMIT nats-server -a 127.0.0.1 -p "$NATS_PORT" -js -sd "$C/jetstream" >"$LOG/$K.nats-server.log" 2>&1 &
    NATS_PID=$!
    wait_port "$NATS_PORT" "$NATS_PID" nats-server "$LOG/$K.nats-server.log"
    "$CAIRN" --config "$C/cairn.toml" init --json >"$LOG/$K.init.log" 2>&1 || die "cairn init ($CFG): $(cat "$LOG/$K.init.log")"
    "$CAIRN" --config "$C/cairn.toml" serve all >"$LOG/$K.serve.log" 2>&1 &
    SERVE_PID=$!
    for _ in $(seq 300); do grep -q serving "$LOG/$K.serve.log" && break; sleep 0.1; done
    grep -q serving "$LOG/$K.serve.log" || die "cairn serve ($CFG) is not serving"

    prep_v1
    timed "$K.full" "$CAIRN" --config "$C/cairn.toml" backup "$SRC" --dataset bench --json --timeout 3600
    st=$(jq -r '.status // empty' "$LOG/$K.full.out")
    [ "$st" = completed ] || die "$CFG backup status '$st': $(cat "$LOG/$K.full.out")"
    ID=$(jq -r .backup_id "$LOG/$K.full.out")
    local total=0 packs=0 b
    for n in $NETS; do
        b=$(du -sb "$C/$n" | cut -f1)
        put "$K.$n.bytes" "$b"
        total=$((total + b))
        packs=$((packs + $(du -sb "$C/$n/packs" | cut -f1)))
    done
    put "$K.stored_bytes" "$total"
    put "$K.pack_bytes" "$packs"
    # Its processes are done with the backup: the restores need no broker.
    stop_pid "$SERVE_PID"
    SERVE_PID=''
    restore_checked restore
    mv "$C/n1" "$C/n1.away"
    mv "$C/n3" "$C/n3.away"
    restore_checked restore_without_two
    mv "$C/n1.away" "$C/n1"
    mv "$C/n3.away" "$C/n3"
    stop_pid "$NATS_PID"
    NATS_PID=''
    psql -X -q -d postgres -c "drop database if exists $PGDB"
    rm -rf "$C"
}

for REP in $(seq "$REPEAT"); do
    R=$WORK/r$REP
    LOG=$R/logs
    mkdir -p "$LOG" "$R/restore"
    for CFG in $CONFIGS; do run_config; done
done

# --- report -------------------------------------------------------------------------
DATE=$(date +%Y-%m-%d)
RESULTS=$ROOT/bench/results
mkdir -p "$RESULTS"
REPORT=$RESULTS/$DATE-s$SCALE-erasure.md
cp "$RAW" "$RESULTS/$DATE-s$SCALE-erasure.tsv"
rep=cairn.replicate-5 ec=cairn.erasure-3-5
{
    echo "<!-- erasure:begin (written by bench/run-erasure.sh; edit outside the markers) -->"
    echo "### Results: $DATE, SCALE=$SCALE, $REPEAT repetitions"
    echo
    echo "- Machine: $(machine); load average before: $LOAD_BEFORE"
    echo "- Cairn: $CAIRN_LABEL; $(ver nats-server --version); five local-directory networks"
    echo "- Data: $(data_line); full backup of v1 (${V1_BYTES} bytes)"
    echo "- $((SECONDS - START_SECONDS)) s in all. Medians, with the range over the repetitions."
    echo
    echo "| | replicate to 5 | erasure 3/5 | erasure / replicate |"
    echo "|---|---|---|---|"
    echo "| stored on the five networks, MB | $(mb "$(get "$rep.stored_bytes")") | $(mb "$(get "$ec.stored_bytes")") | $(ratio "$(get "$ec.stored_bytes")" "$(get "$rep.stored_bytes")") |"
    echo "| of which packs, MB | $(mb "$(get "$rep.pack_bytes")") | $(mb "$(get "$ec.pack_bytes")") | $(ratio "$(get "$ec.pack_bytes")" "$(get "$rep.pack_bytes")") |"
    echo "| stored ÷ source | $(ratio "$(get "$rep.stored_bytes")" "$V1_BYTES") | $(ratio "$(get "$ec.stored_bytes")" "$V1_BYTES") | |"
    echo "| full backup, s | $(wall "$rep.full.wall") | $(wall "$ec.full.wall") | $(ratio "$(get "$ec.full.wall")" "$(get "$rep.full.wall")") |"
    echo "| restore, every network there, s | $(wall "$rep.restore.wall") | $(wall "$ec.restore.wall") | $(ratio "$(get "$ec.restore.wall")" "$(get "$rep.restore.wall")") |"
    echo "| restore, two networks gone, s | $(wall "$rep.restore_without_two.wall") | $(wall "$ec.restore_without_two.wall") | $(ratio "$(get "$ec.restore_without_two.wall")" "$(get "$rep.restore_without_two.wall")") |"
    echo "| restore peak RSS, MiB | $(mib "$(get "$rep.restore.rss_kib")") | $(mib "$(get "$ec.restore.rss_kib")") | |"
    echo "| backup client CPU, s | $(v "$rep.full.cpu") | $(v "$ec.full.cpu") | |"
    echo "<!-- erasure:end -->"
} >"$REPORT"
splice "$OUT" "$REPORT" '<!-- erasure:begin' '<!-- erasure:end'
say "report: $REPORT (and in $OUT)"
