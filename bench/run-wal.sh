#!/usr/bin/env bash
# WAL archiving and point-in-time recovery: Cairn (`cairn wal-push` as the
# archive_command, `cairn restore --to-pgdata --to-time`) against pgBackRest
# (`archive-push`, sync and async, `restore --type=time`), in one run, on
# the same pgbench workload against a PostgreSQL cluster of the script's own.
#
# Usage: bench/run-wal.sh [SECONDS] [SCALE]   (default 60 s of pgbench, scale 20)
#
# For each tool, a fresh cluster (initdb, run as `postgres`) archiving with
# it: pgbench -i -s SCALE, a full base backup, then SECONDS of pgbench
# (4 clients) with the archiver running, then the wait until every segment
# is archived: WAL segments written (and per second), the backlog when
# pgbench stopped (0: the archive kept up) and the time to drain it, TPS.
# Then the archive's capacity: with archiving paused (the archive_command
# fails while a pause file exists), BENCH_BACKLOG (default 64) segments of
# WAL written, then archived as fast as the tool can (segments per second). Then a recovery
# to the middle of the live run: the restore's wall time and PostgreSQL's
# replay until it promotes (rows checked against the source).
#
# Both tools encrypt (pgBackRest: aes-256-cbc; Cairn always) and write to a
# local directory. Results: bench/results/<date>-wal.txt.
# Environment: BENCH_WORK, BENCH_KEEP=1, BENCH_TOOLS="cairn pgbackrest
# pgbackrest-async", BENCH_REV / BENCH_BUILD / BENCH_NO_BUILD / CAIRN_BIN as
# for bench/run.sh.
set -euo pipefail

SECS=${1:-60}
SCALE=${2:-20}
BACKLOG=${BENCH_BACKLOG:-64}
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(dirname "$HERE")
BUILD=${BENCH_BUILD:-$HOME/.cache/cairn-bench-build}
CAIRN=${CAIRN_BIN:-$BUILD/target/release/cairn}
TOOLS=${BENCH_TOOLS:-cairn pgbackrest pgbackrest-async}
REPEAT=1 REP=1
RUN_ID=w$(date +%s)$$
# shellcheck source=bench/lib.sh
. "$HERE/lib.sh"

need_pkgs=()
[ -x /usr/bin/time ] || need_pkgs+=(time)
command -v nats-server >/dev/null || need_pkgs+=(nats-server)
command -v pgbackrest >/dev/null || need_pkgs+=(pgbackrest)
command -v jq >/dev/null || need_pkgs+=(jq)
if [ ${#need_pkgs[@]} -gt 0 ]; then
    say "installing ${need_pkgs[*]}"
    apt-get install -y "${need_pkgs[@]}" >/dev/null
fi
[[ " $TOOLS " == *" cairn "* ]] && build_cairn
BIN=$(pg_config --bindir)

WORK=${BENCH_WORK:-$(mktemp -d /tmp/cairn-bench-wal.XXXXXX)}
mkdir -p "$WORK"
chmod 755 "$WORK"
R=$WORK LOG=$WORK/logs RAW=$WORK/results.tsv
mkdir -p "$LOG"
: >"$RAW"
NATS_PID='' SERVE_PID='' PGDB="cairn_bench_$RUN_ID"
CLUSTERS=()
as_pg() { runuser -u postgres -- "$@"; }
stop_cluster() { as_pg "$BIN/pg_ctl" -D "$1" -m immediate -w stop >/dev/null 2>&1 || true; }
cleanup() {
    local rc=$? c
    for c in "${CLUSTERS[@]}"; do stop_cluster "$c"; done
    if [ -n "$SERVE_PID" ]; then kill -TERM "$SERVE_PID" 2>/dev/null; wait "$SERVE_PID" 2>/dev/null || true; fi
    if [ -n "$NATS_PID" ]; then kill -TERM "$NATS_PID" 2>/dev/null; wait "$NATS_PID" 2>/dev/null || true; fi
    psql -X -q -d postgres -c "drop database if exists $PGDB" 2>/dev/null || true
    if [ -n "${BENCH_KEEP:-}" ] || [ $rc -ne 0 ]; then say "scratch directory kept: $WORK"; else rm -rf "$WORK"; fi
    exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# new_cluster NAME ARCHIVE_COMMAND: initdb, archiving with it; sets DATA, PORT.
new_cluster() {
    DATA=$WORK/$1/data PORT=$(free_port)
    mkdir -p "$WORK/$1" && chown postgres "$WORK/$1"
    as_pg "$BIN/initdb" -D "$DATA" --auth=trust -U postgres >"$LOG/$1-initdb.log" 2>&1 || die "initdb $1"
    cat >>"$DATA/postgresql.conf" <<EOF
port = $PORT
listen_addresses = '127.0.0.1'
unix_socket_directories = '$WORK/$1'
wal_level = replica
archive_mode = on
archive_command = 'test ! -e $WORK/pause && $2'
max_wal_size = 1GB
synchronous_commit = off
EOF
    CLUSTERS+=("$DATA")
}
start_cluster() { # DATA LOG [ENV...]
    local data=$1 logf=$2
    shift 2
    chown postgres "$(dirname "$logf")" 2>/dev/null || true
    as_pg env "$@" "$BIN/pg_ctl" -D "$data" -l "$logf" -w -t 600 start >/dev/null || die "pg_ctl start $data: $(tail -5 "$logf")"
}
sql() { psql -X -qAt -h 127.0.0.1 -p "$1" -U postgres -d postgres -c "$2"; }
archived() { sql "$1" "SELECT archived_count FROM pg_stat_archiver"; }
backlog() { find "$2/pg_wal/archive_status" -name '*.ready' | wc -l; }
now() { date +%s.%N; }
secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", b - a }'; }

# workload TOOL: pgbench -i, base backup (BASE_CMD), SECS of pgbench, the
# wait for the backlog; puts the figures; sets TARGET (mid-run time) and ROWS.
workload() {
    local t=$1 a0 t0 t1 t2 w0 w1 mid_at
    say "$t: pgbench -i -s $SCALE"
    pgbench -h 127.0.0.1 -p "$PORT" -U postgres -i -s "$SCALE" -q postgres >"$LOG/$t-pgbench-init.log" 2>&1 || die "pgbench -i"
    sql "$PORT" "CREATE TABLE marks (id serial PRIMARY KEY, at timestamptz DEFAULT clock_timestamp())" >/dev/null
    timed "$t.base_backup" "${BASE_CMD[@]}"
    a0=$(archived "$PORT")
    w0=$(sql "$PORT" "SELECT pg_current_wal_lsn()")
    t0=$(now)
    say "$t: pgbench -T $SECS -c 4 -j 2 while archiving"
    pgbench -h 127.0.0.1 -p "$PORT" -U postgres -T "$SECS" -c 4 -j 2 -n postgres >"$LOG/$t-pgbench.log" 2>&1 &
    local bench=$!
    # A row a second: the recovery target is the middle one.
    local i=0
    while kill -0 "$bench" 2>/dev/null; do
        sql "$PORT" "INSERT INTO marks DEFAULT VALUES" >/dev/null
        i=$((i + 1))
        [ $i -eq $((SECS / 2)) ] && mid_at=$(sql "$PORT" "SELECT to_char(clock_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS.US+00')") && ROWS=$(sql "$PORT" "SELECT count(*) FROM marks")
        sleep 1
    done
    wait "$bench" || die "pgbench"
    t1=$(now)
    w1=$(sql "$PORT" "SELECT pg_current_wal_lsn()")
    put "$t.backlog_at_end" "$(backlog "$PORT" "$DATA")"
    put "$t.archived_during" "$(($(archived "$PORT") - a0))"
    sql "$PORT" "SELECT pg_switch_wal()" >/dev/null
    local seg
    seg=$(sql "$PORT" "SELECT pg_walfile_name(pg_current_wal_lsn() - 1)")
    while [ "$(sql "$PORT" "SELECT coalesce(last_archived_wal, '') >= '$seg' FROM pg_stat_archiver")" != t ]; do sleep 0.2; done
    t2=$(now)
    put "$t.segments_written" "$(sql "$PORT" "SELECT round(pg_wal_lsn_diff('$w1', '$w0') / 16777216.0, 1)")"
    put "$t.written_rate" "$(awk -v n="$(last "$t.segments_written")" -v s="$(secs "$t0" "$t1")" 'BEGIN { printf "%.2f", n / s }')"
    put "$t.archived_total" "$(($(archived "$PORT") - a0))"
    put "$t.run_s" "$(secs "$t0" "$t1")"
    put "$t.drain_s" "$(secs "$t1" "$t2")"
    put "$t.tps" "$(awk '/^tps/ { printf "%.0f", $3 }' "$LOG/$t-pgbench.log")"
    TARGET=$mid_at
    say "$t: $(last "$t.segments_written") segments written ($(last "$t.written_rate")/s), backlog at end $(last "$t.backlog_at_end"), drained in $(last "$t.drain_s") s"
    # Capacity: with archiving paused, BACKLOG segments of WAL (rows of
    # hashes: a mix of compressible and not); then the time to archive all.
    touch "$WORK/pause"
    sql "$PORT" "CREATE TABLE filler (id bigint, v text)" >/dev/null
    local l0
    l0=$(sql "$PORT" "SELECT pg_current_wal_lsn()")
    while [ "$(sql "$PORT" "SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), '$l0') < $BACKLOG * 16777216.0")" = t ]; do
        sql "$PORT" "INSERT INTO filler SELECT g, md5(g::text) || md5(random()::text) || repeat('x', 64) FROM generate_series(1, 100000) g" >/dev/null
    done
    sql "$PORT" "SELECT pg_switch_wal()" >/dev/null
    sleep 1
    local n a1
    n=$(backlog "$PORT" "$DATA")
    a1=$(archived "$PORT")
    rm -f "$WORK/pause"
    t0=$(now)
    sql "$PORT" "SELECT pg_switch_wal()" >/dev/null
    while [ "$(backlog "$PORT" "$DATA")" -gt 0 ]; do sleep 0.2; done
    t1=$(now)
    put "$t.backlog" "$(($(archived "$PORT") - a1))"
    put "$t.rate" "$(awk -v n="$(last "$t.backlog")" -v s="$(secs "$t0" "$t1")" 'BEGIN { printf "%.2f", n / s }')"
    say "$t: a backlog of $n segments archived in $(secs "$t0" "$t1") s: $(last "$t.rate") segments/s"
}

# recover TOOL DIR: start the restored DIR, time replay until promoted, check rows.
recover() {
    local t=$1 dir=$2 port t0 t1
    shift 2
    port=$(free_port)
    cat >>"$dir/postgresql.conf" <<EOF
port = $port
unix_socket_directories = '$(dirname "$dir")'
archive_mode = off
EOF
    chown -R postgres "$(dirname "$dir")"
    t0=$(now)
    start_cluster "$dir" "$(dirname "$dir")/recovered.log" "$@"
    CLUSTERS+=("$dir")
    until [ "$(sql "$port" "SELECT pg_is_in_recovery()" 2>/dev/null)" = f ]; do sleep 0.1; done
    t1=$(now)
    put "$t.replay_s" "$(secs "$t0" "$t1")"
    local got
    got=$(sql "$port" "SELECT count(*) FROM marks")
    [ "$got" = "$ROWS" ] || die "$t recovered $got rows of marks, expected $ROWS"
    put "$t.rows" "$got"
    say "$t: recovered to $TARGET in $(last "$t.restore.wall") s restore + $(last "$t.replay_s") s replay, $got rows as expected"
    stop_cluster "$dir"
}

run_cairn() {
    local cfg=$WORK/cairn.toml writer=$WORK/cairn-writer.json id
    start_cairn "$cfg"
    "$CAIRN" --config "$cfg" key writer --out "$writer" >"$LOG/cairn-writer.log" 2>&1 || die "cairn key writer"
    chown postgres "$writer"
    # The server side holds a writer file only: it can archive, not read.
    local exe=$WORK/cairn-bin
    cp "$CAIRN" "$exe" && chmod 755 "$exe"
    new_cluster cairn "CAIRN_CONFIG=$cfg CAIRN_KEYS__WRITER_FILE=$writer $exe wal-push --dataset bench %p 2>>$WORK/cairn/wal-push.log"
    start_cluster "$DATA" "$WORK/cairn/server.log"
    BASE_CMD=("$CAIRN" --config "$cfg" backup --postgres-base "postgres://postgres@127.0.0.1:$PORT/postgres" --dataset bench --json)
    workload cairn
    id=$(jq -r .backup_id "$LOG/cairn.base_backup.out")
    stop_cluster "$DATA"
    mkdir -p "$WORK/cairn-restore"
    timed cairn.restore "$CAIRN" --config "$cfg" restore "$id" --to-pgdata "$WORK/cairn-restore/data" --to-time "$TARGET" --restore-command "CAIRN_CONFIG=$cfg $exe wal-fetch --dataset bench %f \"%p\""
    recover cairn "$WORK/cairn-restore/data" CAIRN_PASSPHRASE=bench-passphrase
    put cairn.repo_bytes "$(du -sb "$WORK/cairn-data" | cut -f1)"
}

run_pgbackrest() { # t async
    local t=$1 async=$2 conf=$WORK/$1.conf
    mkdir -p "$WORK/$t-repo" "$WORK/$t-log" "$WORK/$t-spool" "$WORK/$t-lock"
    chown postgres "$WORK/$t-repo" "$WORK/$t-log" "$WORK/$t-spool" "$WORK/$t-lock"
    new_cluster "$t" "pgbackrest --config=$conf --stanza=bench archive-push %p"
    cat >"$conf" <<EOF
[global]
repo1-path=$WORK/$t-repo
repo1-cipher-type=aes-256-cbc
repo1-cipher-pass=bench-passphrase
log-path=$WORK/$t-log
lock-path=$WORK/$t-lock
spool-path=$WORK/$t-spool
start-fast=y
archive-async=$async
process-max=2
log-level-console=warn

[bench]
pg1-path=$DATA
pg1-port=$PORT
pg1-socket-path=$WORK/$t
EOF
    chmod 644 "$conf"
    start_cluster "$DATA" "$WORK/$t/server.log"
    as_pg pgbackrest --config="$conf" --stanza=bench stanza-create >"$LOG/$t-stanza.log" 2>&1 || die "stanza-create: $(cat "$LOG/$t-stanza.log")"
    BASE_CMD=(runuser -u postgres -- pgbackrest --config="$conf" --stanza=bench --type=full backup)
    workload "$t"
    stop_cluster "$DATA"
    timed "$t.restore" runuser -u postgres -- pgbackrest --config="$conf" --stanza=bench --type=time "--target=$TARGET" --target-action=promote "--pg1-path=$WORK/$t-restore/data" restore
    recover "$t" "$WORK/$t-restore/data"
    put "$t.repo_bytes" "$(du -sb "$WORK/$t-repo" | cut -f1)"
}

for d in pgbackrest-restore/data pgbackrest-async-restore/data; do
    mkdir -p "$WORK/$d" && chown -R postgres "$WORK/${d%/data}" && chmod 700 "$WORK/$d"
done
for t in $TOOLS; do
    case $t in
    cairn) run_cairn ;;
    pgbackrest) run_pgbackrest pgbackrest n ;;
    pgbackrest-async) run_pgbackrest pgbackrest-async y ;;
    *) die "unknown tool '$t' in BENCH_TOOLS" ;;
    esac
done

OUT=$ROOT/bench/results/$(date +%F)-wal.txt
{
    echo "WAL archiving while pgbench writes, and point-in-time recovery"
    echo "bench/run-wal.sh $SECS $SCALE on $(date -u +%FT%TZ); Cairn: ${CAIRN_LABEL:-not run}; $(ver pgbackrest version); PostgreSQL $(pg_config --version | cut -d' ' -f2)"
    echo "machine: $(machine)"
    echo
    echo "live: pgbench -T $SECS -c 4 with archiving on (segments written, per second, backlog when it stopped, seconds to drain it);"
    echo "backlog: $BACKLOG segments written with archiving paused, then archived (segments, per second);"
    echo "PITR: restore of the base backup to the middle of the live run, then PostgreSQL's replay until it promotes."
    echo
    printf '%-18s %7s | %8s %8s %8s %8s %6s | %8s %8s | %8s %9s %6s | %8s\n' tool base_s written segs/s backlog drain_s tps backlog segs/s restore replay_s rows repo_MB
    for t in $TOOLS; do
        printf '%-18s %7s | %8s %8s %8s %8s %6s | %8s %8s | %8s %9s %6s | %8s\n' "$t" "$(last "$t.base_backup.wall")" \
            "$(last "$t.segments_written")" "$(last "$t.written_rate")" "$(last "$t.backlog_at_end")" \
            "$(last "$t.drain_s")" "$(last "$t.tps")" "$(last "$t.backlog")" "$(last "$t.rate")" \
            "$(last "$t.restore.wall")" "$(last "$t.replay_s")" "$(last "$t.rows")" "$(mb "$(last "$t.repo_bytes")")"
    done
    echo
    echo "raw:"
    cat "$RAW"
} >"$OUT"
cat "$OUT"
