#!/usr/bin/env bash
# Cairn against restic, borg and rustic on the same data, in one run.
#
# Usage: bench/run.sh [SCALE]          (SCALE of the pgbench dump, default 30)
#
# For each data shape (a pg_dump with large random files; a tree of tens of
# thousands of small files), for each tool, in the order restic, borg,
# rustic, Cairn, and in the same order of phases for each: full backup of v1,
# incremental backup of v2 into the same repository, restore of the v2 backup
# (checked byte for byte against v2). Each shape's report, with Cairn's
# figures against the fastest peer of each phase and the targets, goes to
# BENCHMARKS.md (between that shape's results markers; the rest of the file
# is kept) and to bench/results/<date>-s<SCALE>-<commit>.{md,tsv} and
# bench/results/<date>-small<N>-<commit>.{md,tsv}.
#
# Environment (all optional):
#   BENCH_SHAPES="dump small"   which data shapes (default both)
#   BENCH_SMALL_FILES=N         files in the small-files shape (default 30000)
#   BENCH_BIG_GIB=N   size of the "big" shape (not run by default: N files of
#                     1 GiB of random bytes, for memory on a large source;
#                     BENCH_SHAPES=big; it restores to disk)
#   BENCH_WORK=DIR    scratch directory (default: a new /tmp/cairn-bench.*)
#   BENCH_DATA=DIR    reuse a data set made by bench/make-dataset.sh
#   BENCH_SMALL_DATA=DIR  reuse one made by bench/make-smallfiles.sh
#   BENCH_KEEP=1      keep the scratch directory (repositories, logs)
#   BENCH_TOOLS="restic borg rustic cairn"   which tools to run
#   BENCH_EXTRA_SERVE="encrypt store"   extra `cairn serve <stage>` processes
#                     beside `serve all` (replicas; their CPU counts as serve's)
#   BENCH_EXTRA_CPU=N run those extra processes on CPU N alone (taskset), so
#                     that under `taskset -c 0 bench/run.sh` the first replica
#                     and everything else share CPU 0 and the second has a
#                     spare core to itself
#   RUSTIC_BIN=PATH   the rustic binary (default: built once with
#                     `cargo install rustic-rs --locked` into
#                     ~/.cache/cairn-bench-rustic, ~17 minutes)
#   BENCH_REPEAT=N    repetitions (default 3); the report gives medians and,
#                     for wall times, the range
#   BENCH_REV=REV     the commit of Cairn to measure (default HEAD). It is
#                     exported with `git archive` to $BENCH_BUILD/src and built
#                     there (release) into $BENCH_BUILD/target, so that
#                     uncommitted edits in the work tree never leak into the
#                     figures and other builds are not disturbed.
#   BENCH_BUILD=DIR   default ~/.cache/cairn-bench-build
#   BENCH_NO_BUILD=1  use the binary already built there
#   CAIRN_BIN=PATH    measure this cairn binary instead (no build; the report
#                     then says "binary PATH" instead of a commit)
#   BENCH_OUT=FILE    where to write the results (default: BENCHMARKS.md)
#   BENCH_LABEL=TEXT  appended to the results files' names (bench/targets.sh
#                     runs the same shapes several ways on one day)
#
# Everything listens on 127.0.0.1 only. Cairn gets a private nats-server
# (JetStream in the scratch directory, killed at the end) and a private
# PostgreSQL database on 127.0.0.1:5432 (dropped at the end).
set -euo pipefail

SCALE=${1:-30}
case $SCALE in '' | *[!0-9]*) echo "run.sh: SCALE must be a positive integer" >&2; exit 2 ;; esac
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(dirname "$HERE")
BUILD=${BENCH_BUILD:-$HOME/.cache/cairn-bench-build}
CAIRN=${CAIRN_BIN:-$BUILD/target/release/cairn}
TOOLS=${BENCH_TOOLS:-restic borg rustic cairn}
SHAPES=${BENCH_SHAPES:-dump small}
SMALL_FILES=${BENCH_SMALL_FILES:-30000}
BIG_GIB=${BENCH_BIG_GIB:-10}
case $SMALL_FILES in '' | *[!0-9]* | 0) echo "run.sh: BENCH_SMALL_FILES must be a positive integer" >&2; exit 2 ;; esac
RUSTIC_ROOT=$HOME/.cache/cairn-bench-rustic
RUSTIC=${RUSTIC_BIN:-$RUSTIC_ROOT/bin/rustic}
REPEAT=${BENCH_REPEAT:-3}
case $REPEAT in '' | *[!0-9]* | 0) echo "run.sh: BENCH_REPEAT must be a positive integer" >&2; exit 2 ;; esac
REP=0
OUT=${BENCH_OUT:-$ROOT/BENCHMARKS.md}
RUN_ID=b$(date +%s)$$
START_SECONDS=$SECONDS
LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
# say, die, build_cairn, make_data, prep_v1/v2, check_restore, put/get/timed, ...
# shellcheck source=bench/lib.sh
. "$HERE/lib.sh"

# --- tools ------------------------------------------------------------------
need_pkgs=()
[ -x /usr/bin/time ] || need_pkgs+=(time)
for t in $TOOLS; do
    case $t in
    restic) command -v restic >/dev/null || need_pkgs+=(restic) ;;
    borg) command -v borg >/dev/null || need_pkgs+=(borgbackup) ;;
    rustic) ;;
    cairn) command -v nats-server >/dev/null || need_pkgs+=(nats-server) ;;
    *) die "unknown tool '$t' in BENCH_TOOLS" ;;
    esac
done
if [ ${#need_pkgs[@]} -gt 0 ]; then
    say "installing ${need_pkgs[*]}"
    apt-get install -y "${need_pkgs[@]}" >/dev/null
fi
for c in psql pg_dump pgbench jq diff du python3; do command -v $c >/dev/null || die "$c is missing"; done
for sh in $SHAPES; do case $sh in dump | small | big) ;; *) die "unknown shape '$sh' in BENCH_SHAPES (dump, small, big)" ;; esac; done
PEERS=()
for t in $TOOLS; do [ "$t" = cairn ] || PEERS+=("$t"); done

if [[ " $TOOLS " == *" rustic "* ]] && [ ! -x "$RUSTIC" ]; then
    [ -n "${RUSTIC_BIN:-}" ] && die "RUSTIC_BIN=$RUSTIC_BIN is not an executable"
    say "building rustic once into $RUSTIC_ROOT (cargo install rustic-rs --locked; ~17 minutes on two cores)"
    cargo install rustic-rs --locked --root "$RUSTIC_ROOT" >&2 || die "cargo install rustic-rs"
fi

[[ " $TOOLS " == *" cairn "* ]] && build_cairn

# --- scratch space and cleanup -------------------------------------------------
WORK=${BENCH_WORK:-$(mktemp -d /tmp/cairn-bench.XXXXXX)}
mkdir -p "$WORK"
SRC=$WORK/src # the one source path every tool backs up, in every repetition
R='' LOG='' # per repetition: $WORK/<shape>/rN and its log directory
RAW='' # per shape: $WORK/<shape>/results.tsv
NATS_PID='' SERVE_PID='' SERVE_TIME_PID='' DBS_MADE=() EXTRA_PIDS=()

cleanup() {
    local rc=$?
    [ -n "$SERVE_PID" ] && kill -TERM "$SERVE_PID" 2>/dev/null && wait "$SERVE_TIME_PID" 2>/dev/null
    for p in "${EXTRA_PIDS[@]}"; do kill -TERM "$p" 2>/dev/null && wait "$p" 2>/dev/null; done
    [ -n "$NATS_PID" ] && kill -TERM "$NATS_PID" 2>/dev/null && wait "$NATS_PID" 2>/dev/null
    [ "${RESTORE_ON:-}" = tmpfs ] && umount "$WORK/restore-tmpfs" 2>/dev/null
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

# Restores go to a tmpfs when one can be mounted (root): on this machine's
# ext4, creating tens of thousands of files soon after as many were deleted
# (the previous tool's restore, the fresh copy of the source) costs 5 to 40
# CPU-seconds of inode allocation in the kernel, from run to run, whichever
# tool restores. BENCH_RESTORE_DISK=1 restores to disk anyway.
RESTORE_ON=disk
if [ -z "${BENCH_RESTORE_DISK:-}" ] && mkdir -p "$WORK/restore-tmpfs" &&
    mount -t tmpfs -o size=4g,mode=0700 cairn-bench-restore "$WORK/restore-tmpfs" 2>/dev/null; then
    RESTORE_ON=tmpfs
fi

# ======================================================================================
run_restic() {
    export RESTIC_REPOSITORY=$R/restic-repo RESTIC_PASSWORD=bench-passphrase
    export RESTIC_CACHE_DIR=$R/restic-cache
    restic init >"$LOG/restic-init.log" 2>&1 || die "restic init"
    prep_v1
    timed restic.full restic backup "$SRC"
    put restic.after_full.repo_bytes "$(du -sb "$RESTIC_REPOSITORY" | cut -f1)"
    prep_v2
    timed restic.incr restic backup "$SRC"
    timed restic.restore restic restore latest --target "$R/restore/restic"
    check_restore restic "$(restored_root "$R/restore/restic")"
    put restic.repo_bytes "$(du -sb "$RESTIC_REPOSITORY" | cut -f1)"
    rm -rf "$R/restore/restic"
}

run_borg() {
    export BORG_REPO=$R/borg-repo BORG_PASSPHRASE=bench-passphrase
    export BORG_BASE_DIR=$R/borg-base # fresh files cache and security dir
    borg init --encryption=repokey >"$LOG/borg-init.log" 2>&1 || die "borg init"
    prep_v1
    timed borg.full borg create ::v1 "$SRC"
    put borg.after_full.repo_bytes "$(du -sb "$BORG_REPO" | cut -f1)"
    prep_v2
    timed borg.incr borg create ::v2 "$SRC"
    mkdir -p "$R/restore/borg"
    pushd "$R/restore/borg" >/dev/null
    timed borg.restore borg extract ::v2
    popd >/dev/null
    check_restore borg "$(restored_root "$R/restore/borg")"
    put borg.repo_bytes "$(du -sb "$BORG_REPO" | cut -f1)"
    rm -rf "$R/restore/borg"
}

run_rustic() {
    export RUSTIC_REPOSITORY=$R/rustic-repo RUSTIC_PASSWORD=bench-passphrase
    export RUSTIC_CACHE_DIR=$R/rustic-cache
    "$RUSTIC" init >"$LOG/rustic-init.log" 2>&1 || die "rustic init: $(tail -5 "$LOG/rustic-init.log")"
    prep_v1
    timed rustic.full "$RUSTIC" backup "$SRC"
    put rustic.after_full.repo_bytes "$(du -sb "$RUSTIC_REPOSITORY" | cut -f1)"
    prep_v2
    timed rustic.incr "$RUSTIC" backup "$SRC"
    timed rustic.restore "$RUSTIC" restore latest "$R/restore/rustic"
    check_restore rustic "$(restored_root "$R/restore/rustic")"
    put rustic.repo_bytes "$(du -sb "$RUSTIC_REPOSITORY" | cut -f1)"
    rm -rf "$R/restore/rustic"
}

# cairn_phase KEY CMD...: a timed cairn command, plus what the serve process,
# nats-server and the Postgres backends of this run spent meanwhile.
cairn_phase() {
    local key=$1
    shift
    local pgb serve0 nats0 pg0
    pgb=$(pg_backends)
    serve0=$(cpu_ticks "$SERVE_PID" "${EXTRA_PIDS[@]}") nats0=$(cpu_ticks "$NATS_PID")
    # shellcheck disable=SC2086
    pg0=$(cpu_ticks $pgb)
    timed "$key" "$@"
    put "$key.serve_cpu" "$(ticks_to_s $(($(cpu_ticks "$SERVE_PID" "${EXTRA_PIDS[@]}") - serve0)))"
    put "$key.nats_cpu" "$(ticks_to_s $(($(cpu_ticks "$NATS_PID") - nats0)))"
    # shellcheck disable=SC2086
    put "$key.pg_cpu" "$(ticks_to_s $(($(cpu_ticks $pgb) - pg0)))"
    put "$key.serve_hwm_kib" "$(hwm_kib "$SERVE_PID")"
    put "$key.nats_hwm_kib" "$(hwm_kib "$NATS_PID")"
    say "$key: meanwhile serve CPU $(last "$key.serve_cpu") s, nats-server $(last "$key.nats_cpu") s, postgres $(last "$key.pg_cpu") s"
}

backup_field() { jq -r ".$2 // empty" "$LOG/$1.out"; }

run_cairn() {
    local port cfg id_full id_incr st
    port=$(free_port)
    PGDB="cairn_bench_${RUN_ID}_r$REP" # global: pg_backends reads it
    DBS_MADE+=("$PGDB")
    cfg=$R/cairn.toml
    cat >"$cfg" <<EOF
data_dir = "$R/cairn-data"

[nats]
url = "nats://127.0.0.1:$port"
prefix = "${RUN_ID}r$REP"

[postgres]
url = "host=127.0.0.1 port=5432 user=postgres dbname=$PGDB"

[telemetry]
log = "info"
EOF
    # No CAIRN_* from the caller's environment may change the run.
    while read -r v; do unset "$v"; done < <(compgen -e | grep '^CAIRN_' || true)
    export CAIRN_PASSPHRASE=bench-passphrase

    GOMEMLIMIT=$NATS_GOMEMLIMIT nats-server -a 127.0.0.1 -p "$port" -js -sd "$R/jetstream" >"$LOG/nats-server.log" 2>&1 &
    NATS_PID=$!
    for _ in $(seq 100); do
        (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
        sleep 0.1
    done
    kill -0 "$NATS_PID" 2>/dev/null || die "nats-server did not start: $(tail -5 "$LOG/nats-server.log")"
    "$CAIRN" --config "$cfg" init --json >"$LOG/cairn-init.log" 2>&1 || die "cairn init: $(cat "$LOG/cairn-init.log")"

    /usr/bin/time -f '%e %M %U %S' -o "$LOG/cairn.serve.time" \
        "$CAIRN" --config "$cfg" serve all >"$LOG/cairn-serve.log" 2>&1 &
    SERVE_TIME_PID=$!
    for _ in $(seq 300); do
        SERVE_PID=$(pgrep -P "$SERVE_TIME_PID" || true)
        [ -n "$SERVE_PID" ] && grep -q serving "$LOG/cairn-serve.log" && break
        kill -0 "$SERVE_TIME_PID" 2>/dev/null || die "cairn serve stopped: $(tail -5 "$LOG/cairn-serve.log")"
        sleep 0.1
    done
    grep -q serving "$LOG/cairn-serve.log" || die "cairn serve is not serving after 30 s"
    # Replicas of single stages beside `serve all` (BENCH_EXTRA_SERVE="encrypt
    # store"): their CPU counts as serve's.
    local st i=0
    EXTRA_PIDS=()
    for st in ${BENCH_EXTRA_SERVE:-}; do
        i=$((i + 1))
        ${BENCH_EXTRA_CPU:+taskset -c "$BENCH_EXTRA_CPU"} \
            "$CAIRN" --config "$cfg" serve "$st" >"$LOG/cairn-serve-$i-$st.log" 2>&1 &
        EXTRA_PIDS+=($!)
        for _ in $(seq 300); do grep -q serving "$LOG/cairn-serve-$i-$st.log" && break; sleep 0.1; done
        grep -q serving "$LOG/cairn-serve-$i-$st.log" || die "cairn serve $st is not serving: $(tail -5 "$LOG/cairn-serve-$i-$st.log")"
    done

    prep_v1
    cairn_phase cairn.full "$CAIRN" --config "$cfg" backup "$SRC" --json --timeout 3600
    st=$(backup_field cairn.full status)
    [ "$st" = completed ] || die "cairn full backup status '$st': $(cat "$LOG/cairn.full.out")"
    id_full=$(backup_field cairn.full backup_id)
    put cairn.full.bytes_stored "$(backup_field cairn.full bytes_stored)"
    put cairn.after_full.repo_bytes "$(du -sb "$R/cairn-data/networks/local" | cut -f1)"

    prep_v2
    cairn_phase cairn.incr "$CAIRN" --config "$cfg" backup "$SRC" --json --timeout 3600
    st=$(backup_field cairn.incr status)
    [ "$st" = completed ] || die "cairn incremental backup status '$st': $(cat "$LOG/cairn.incr.out")"
    id_incr=$(backup_field cairn.incr backup_id)
    put cairn.incr.bytes_stored "$(backup_field cairn.incr bytes_stored)"
    put cairn.incr.files_unchanged "$(backup_field cairn.incr files_unchanged)"

    cairn_phase cairn.restore "$CAIRN" --config "$cfg" restore "$id_incr" --to "$R/restore/cairn" --json
    local where
    where=$(restored_root "$R/restore/cairn")
    check_restore cairn "${where:-$R/restore/cairn/missing}"
    put cairn.repo_bytes "$(du -sb "$R/cairn-data/networks/local" | cut -f1)"
    put cairn.ledger_bytes "$(psql -X -Atq -d "$PGDB" -c 'select pg_database_size(current_database())')"
    put cairn.serve_hwm_kib "$(hwm_kib "$SERVE_PID")"
    put cairn.nats_hwm_kib "$(hwm_kib "$NATS_PID")"
    say "cairn backups: full $id_full, incremental $id_incr"
    # The pipeline's own timeline, from the ledger: seconds from the request
    # to the end of ingest, and from there to the outcome (encrypt, store and
    # verify catching up).
    local id ph
    for ph in full incr; do
        id=$(backup_field cairn.$ph backup_id)
        psql -X -d "$PGDB" -c "select kind, count(*), min(recorded_at), max(recorded_at) from ledger_entries
            where backup_id = '$id' group by kind order by min(recorded_at)" >"$LOG/cairn.$ph.ledger-timeline.txt"
        put cairn.$ph.ingest_s "$(psql -X -Atq -d "$PGDB" -c "select round(extract(epoch from
            max(recorded_at) filter (where kind = 'backup.ingested') - min(recorded_at) filter (where kind = 'backup.requested'))::numeric, 2)
            from ledger_entries where backup_id = '$id'")"
        put cairn.$ph.tail_s "$(psql -X -Atq -d "$PGDB" -c "select round(extract(epoch from
            max(recorded_at) filter (where kind in ('backup.completed', 'backup.degraded', 'backup.failed')) - max(recorded_at) filter (where kind = 'backup.ingested'))::numeric, 2)
            from ledger_entries where backup_id = '$id'")"
    done

    for p in "${EXTRA_PIDS[@]}"; do kill -TERM "$p" && wait "$p" || true; done
    EXTRA_PIDS=()
    kill -TERM "$SERVE_PID"
    wait "$SERVE_TIME_PID" || say "cairn serve exited with status $? on SIGTERM"
    SERVE_PID=''
    kill -TERM "$NATS_PID"
    wait "$NATS_PID" || true
    NATS_PID=''
    put cairn.js_bytes "$(du -sb "$R/jetstream" | cut -f1)"
    rm -rf "$R/restore/cairn"
    psql -X -q -d postgres -c "drop database if exists $PGDB"
}

# Cairn's figures for a backup phase cover every process it needs: client +
# serve + nats-server (peak RSS summed; CPU also counts this run's Postgres
# backends). Restore is the client alone.
totals() {
    local ph c t
    for ph in full incr restore; do
        c=$(last cairn.$ph.rss_kib)
        if [ -n "$c" ]; then
            if [ $ph = restore ]; then
                put cairn.$ph.total_rss_kib "$c"
            else
                put cairn.$ph.total_rss_kib "$((c + $(last cairn.$ph.serve_hwm_kib) + $(last cairn.$ph.nats_hwm_kib)))"
            fi
            put cairn.$ph.total_cpu "$(sum "$(last cairn.$ph.cpu)" "$(last cairn.$ph.serve_cpu)" "$(last cairn.$ph.nats_cpu)" "$(last cairn.$ph.pg_cpu)")"
        fi
        for t in "${PEERS[@]}"; do
            put $t.$ph.total_rss_kib "$(last $t.$ph.rss_kib)"
            put $t.$ph.total_cpu "$(last $t.$ph.cpu)"
        done
    done
}

# --- report helpers ------------------------------------------------------------------
# fastest PHASE: the peer with the lowest median wall time of PHASE
fastest() { smallest "$1.wall"; }
# smallest KEY: the peer with the lowest median of KEY (a peer-less key suffix)
smallest() {
    local best='' bv='' t x
    for t in "${PEERS[@]}"; do
        x=$(get "$t.$1")
        [ -n "$x" ] || continue
        if [ -z "$bv" ] || awk -v a="$x" -v b="$bv" 'BEGIN { exit !(a < b) }'; then best=$t bv=$x; fi
    done
    echo "$best"
}
# ratio3 A B: A / B with three decimals, so that a verdict is not rounded into "met"
ratio3() { awk -v a="$1" -v b="$2" 'BEGIN { if (a == "" || b == "" || b == 0) print "–"; else printf "%.3f", a / b }'; }
# verdict VALUE OP TARGET: "met" or "**missed**" (OP is >= or <=)
verdict() {
    awk -v v="$1" -v op="$2" -v t="$3" 'BEGIN {
        if (v == "" || v == "–") { print "–"; exit }
        ok = (op == ">=") ? (v + 0 >= t + 0) : (v + 0 <= t + 0)
        print ok ? "met" : "**missed**" }'
}
# cells KEY FMT: one table cell per tool in $TOOLS (FMT: wall, v, mib, mb, rate BYTES)
cells() {
    local key=$1 fmt=$2 bytes=${3:-} t out=''
    for t in $TOOLS; do
        case $fmt in
        wall) out+=" $(wall "$t.$key") |" ;;
        v) out+=" $(v "$t.$key") |" ;;
        mib) out+=" $(mib "$(get "$t.$key")") |" ;;
        mb) out+=" $(mb "$(get "$t.$key")") |" ;;
        rate) out+=" $(rate "$bytes" "$(get "$t.$key.wall")") |" ;;
        esac
    done
    echo "$out"
}
tool_name() { case $1 in cairn) echo Cairn ;; *) echo "$1" ;; esac; }

# Cairn's peak per process over the whole run (medians over the
# repetitions): the client (largest of its phases), serve, nats-server.
cairn_peaks() {
    local ph c m=0
    for ph in full incr restore; do
        c=$(last cairn.$ph.rss_kib)
        [ -n "$c" ] && [ "$c" -gt "$m" ] && m=$c
    done
    put cairn.client_peak_kib "$m"
}

# --- one data shape --------------------------------------------------------------------
run_shape() {
    SHAPE=$1
    local tag begin end title load0 t0=$SECONDS
    load0=$(cut -d' ' -f1-3 /proc/loadavg)
    case $SHAPE in
    dump)
        DATA=${BENCH_DATA:-$WORK/data} tag=s$SCALE title="SCALE=$SCALE (a pg_dump and large random files)"
        begin='<!-- results:begin' end='<!-- results:end -->'
        ;;
    small)
        DATA=${BENCH_SMALL_DATA:-$WORK/small} tag=small$SMALL_FILES title="$SMALL_FILES small files"
        begin='<!-- results-small:begin' end='<!-- results-small:end -->'
        ;;
    big)
        DATA=${BENCH_BIG_DATA:-$WORK/big} tag=big${BIG_GIB}g title="$BIG_GIB GiB of large random files"
        begin='<!-- results-big:begin' end='<!-- results-big:end -->'
        ;;
    esac
    make_data
    RAW=$WORK/$SHAPE/results.tsv
    mkdir -p "$WORK/$SHAPE"
    : >"$RAW"
    for REP in $(seq "$REPEAT"); do
        R=$WORK/$SHAPE/r$REP LOG=$WORK/$SHAPE/r$REP/log
        mkdir -p "$LOG"
        # (a large source does not fit the tmpfs: it restores to disk)
        if [ "$RESTORE_ON" = tmpfs ] && [ "$SHAPE" != big ]; then
            mkdir -p "$WORK/restore-tmpfs/$SHAPE-r$REP"
            ln -sfn "$WORK/restore-tmpfs/$SHAPE-r$REP" "$R/restore"
        else
            mkdir -p "$R/restore"
        fi
        for t in $TOOLS; do
            say "=== $SHAPE: $t, run $REP of $REPEAT"
            "run_$t"
        done
        totals
        [[ " $TOOLS " == *" cairn "* ]] && cairn_peaks
        # keep the logs, drop the repositories (the next run starts fresh)
        [ -n "${BENCH_KEEP:-}" ] || find "$R" -mindepth 1 -maxdepth 1 ! -name log -exec rm -rf {} +
    done
    REP=0
    local minutes
    minutes=$(awk -v s=$((SECONDS - t0)) 'BEGIN { printf "%.1f", s / 60 }')
    local DATE
    DATE=$(date -u +%Y-%m-%d)
    local REPORT=$WORK/$SHAPE/report.md
    local head="" sep="" t ph lab bytes f
    for t in $TOOLS; do head+=" $(tool_name "$t") |" sep+="---:|"; done
    {
        echo "${begin} (written by bench/run.sh; edit outside the markers) -->"
        echo "## Results: $DATE, $title"
        echo
        echo "- Machine: $(machine)"
        echo "- Versions: $(ver restic version); $(ver borg --version); $(ver "$RUSTIC" --version); nats-server $(ver nats-server --version | sed 's/^nats-server: //'); $(ver psql --version | sed 's/^psql (PostgreSQL) /PostgreSQL /'); cairn ${CAIRN_LABEL:-–}"
        echo "- Data: $(data_line)"
        echo "- Cairn: \`cairn init\` defaults, one local-directory network, \`cairn serve all\`; its nats-server runs with GOMEMLIMIT=$NATS_GOMEMLIMIT (as in docker-compose.yml)."
        echo "- Tools ran in the order: $TOOLS; each: full backup (v1), incremental (v2), restore (v2). This shape took $minutes min; load average (1, 5, 15 min) before: $load0, after: $(cut -d' ' -f1-3 /proc/loadavg) (other work on the machine shows here)."
        echo "- Every figure is the median of $REPEAT runs (each on fresh repositories); wall times show the range in brackets."
        echo "- Restores write to $([ "$RESTORE_ON" = tmpfs ] && [ "$SHAPE" != big ] && echo "a tmpfs (RAM), so that ext4's inode allocation after mass deletions (5–40 s of kernel time per 30,000 files here, whichever tool) does not decide the figures" || echo "the disk (BENCH_RESTORE_DISK, or no tmpfs could be mounted)")."
        echo "- MB = 10^6 bytes. MB/s = size of the version backed up or restored / median wall seconds."
        echo "  The last column compares Cairn with the fastest peer of that phase (named), or for sizes with the smallest."
        echo
        echo "| |$head Cairn / best peer |"
        echo "|---|$sep---:|"
        for ph in full incr restore; do
            case $ph in full) lab="Full backup (v1)" bytes=$V1_BYTES ;; incr) lab="Incremental backup (v2)" bytes=$V2_BYTES ;; restore) lab="Restore (v2)" bytes=$V2_BYTES ;; esac
            f=$(fastest $ph)
            echo "| $lab: wall s |$(cells $ph.wall wall) $(ratio "$(get cairn.$ph.wall)" "$(get "$f.$ph.wall")") (vs $f) |"
            echo "| $lab: **MB/s** |$(cells $ph rate "$bytes") **$(ratio "$(get "$f.$ph.wall")" "$(get cairn.$ph.wall)")** |"
            echo "| $lab: peak RSS MiB ¹ |$(cells $ph.total_rss_kib mib) $(ratio "$(get cairn.$ph.total_rss_kib)" "$(get "$f.$ph.total_rss_kib")") |"
            echo "| $lab: CPU s (user+sys) ² |$(cells $ph.total_cpu v) $(ratio "$(get cairn.$ph.total_cpu)" "$(get "$f.$ph.total_cpu")") |"
        done
        f=$(smallest after_full.repo_bytes)
        echo "| Repository size after the full backup, MB |$(cells after_full.repo_bytes mb) $(ratio "$(get cairn.after_full.repo_bytes)" "$(get "$f.after_full.repo_bytes")") (vs $f) |"
        f=$(smallest repo_bytes)
        echo "| **Repository size, MB** (after both backups) |$(cells repo_bytes mb) **$(ratio "$(get cairn.repo_bytes)" "$(get "$f.repo_bytes")")** (vs $f) |"
        echo
        echo "¹ Cairn's backup figures add the peaks of the \`cairn backup\` client, the \`cairn serve all\` process"
        echo "(peak since it started) and the private nats-server; PostgreSQL is not counted. Restore is the client alone."
        echo "² Cairn: client + serve + nats-server + this run's PostgreSQL backends, measured from /proc during the phase."
        if [[ " $TOOLS " == *" cairn "* ]] && [ ${#PEERS[@]} -gt 0 ]; then
            local ff fi fr fs x
            ff=$(fastest full) fi=$(fastest incr) fr=$(fastest restore) fs=$(smallest repo_bytes)
            echo
            echo "Against the targets (issue 11), each against the best peer of that row:"
            echo
            echo "| target | Cairn | best peer | Cairn / peer | wanted | verdict |"
            echo "|---|---:|---:|---:|---|---|"
            x=$(ratio3 "$(get "$ff.full.wall")" "$(get cairn.full.wall)")
            echo "| full backup throughput | $(rate "$V1_BYTES" "$(get cairn.full.wall)") MB/s | $ff $(rate "$V1_BYTES" "$(get "$ff.full.wall")") MB/s | $x | ≥ 1.2 | $(verdict "$x" '>=' 1.2) |"
            x=$(ratio3 "$(get "$fi.incr.wall")" "$(get cairn.incr.wall)")
            echo "| incremental backup throughput | $(rate "$V2_BYTES" "$(get cairn.incr.wall)") MB/s | $fi $(rate "$V2_BYTES" "$(get "$fi.incr.wall")") MB/s | $x | ≥ 1.5 | $(verdict "$x" '>=' 1.5) |"
            x=$(ratio3 "$(get "$fr.restore.wall")" "$(get cairn.restore.wall)")
            echo "| restore throughput | $(rate "$V2_BYTES" "$(get cairn.restore.wall)") MB/s | $fr $(rate "$V2_BYTES" "$(get "$fr.restore.wall")") MB/s | $x | ≥ 1.5 | $(verdict "$x" '>=' 1.5) |"
            x=$(ratio3 "$(get cairn.full.total_cpu)" "$(get "$ff.full.total_cpu")")
            echo "| CPU-seconds of a full backup, all processes | $(v cairn.full.total_cpu) s | $ff $(v "$ff.full.total_cpu") s | $x | ≤ 1 | $(verdict "$x" '<=' 1) |"
            x=$(ratio3 "$(get cairn.repo_bytes)" "$(get "$fs.repo_bytes")")
            echo "| repository size after both backups | $(mb "$(get cairn.repo_bytes)") MB | $fs $(mb "$(get "$fs.repo_bytes")") MB | $x | ≤ 1 | $(verdict "$x" '<=' 1) |"
            local pc ps pn pmax
            pc=$(mib "$(get cairn.client_peak_kib)") ps=$(mib "$(get cairn.serve_hwm_kib)") pn=$(mib "$(get cairn.nats_hwm_kib)")
            pmax=$(printf '%s\n' "$pc" "$ps" "$pn" | sort -n | tail -1)
            echo "| peak RSS of every process | client $pc, serve $ps, nats-server $pn MiB | | | ≤ 256 MiB each | $(verdict "$pmax" '<=' 256) |"
        fi
        if [[ " $TOOLS " == *" cairn "* ]]; then
            echo
            echo "Cairn in detail:"
            echo
            echo "| Cairn | full | incremental | restore |"
            echo "|---|---:|---:|---:|"
            echo "| \`cairn\` client peak RSS, MiB | $(mib "$(get cairn.full.rss_kib)") | $(mib "$(get cairn.incr.rss_kib)") | $(mib "$(get cairn.restore.rss_kib)") |"
            echo "| \`cairn serve all\` peak RSS so far, MiB | $(mib "$(get cairn.full.serve_hwm_kib)") | $(mib "$(get cairn.incr.serve_hwm_kib)") | $(mib "$(get cairn.restore.serve_hwm_kib)") |"
            echo "| nats-server peak RSS so far, MiB | $(mib "$(get cairn.full.nats_hwm_kib)") | $(mib "$(get cairn.incr.nats_hwm_kib)") | $(mib "$(get cairn.restore.nats_hwm_kib)") |"
            echo "| CPU s: client | $(v cairn.full.cpu) | $(v cairn.incr.cpu) | $(v cairn.restore.cpu) |"
            echo "| CPU s: serve (ingest, encrypt, store, verify, ledger) | $(v cairn.full.serve_cpu) | $(v cairn.incr.serve_cpu) | $(v cairn.restore.serve_cpu) |"
            echo "| CPU s: nats-server | $(v cairn.full.nats_cpu) | $(v cairn.incr.nats_cpu) | $(v cairn.restore.nats_cpu) |"
            echo "| CPU s: PostgreSQL backends | $(v cairn.full.pg_cpu) | $(v cairn.incr.pg_cpu) | $(v cairn.restore.pg_cpu) |"
            echo "| seconds from request to end of ingest (ledger) | $(v cairn.full.ingest_s) | $(v cairn.incr.ingest_s) | |"
            echo "| seconds from end of ingest to outcome (ledger) | $(v cairn.full.tail_s) | $(v cairn.incr.tail_s) | |"
            echo "| \`bytes_stored\` reported | $(mb "$(get cairn.full.bytes_stored)") MB | $(mb "$(get cairn.incr.bytes_stored)") MB | |"
            echo "| files not read again (files cache) | | $(get cairn.incr.files_unchanged) | |"
            echo
            echo "- JetStream store directory after the run: $(mb "$(get cairn.js_bytes)") MB. Ledger database: $(mb "$(get cairn.ledger_bytes)") MB."
            echo "- Peak RSS over the whole run: serve $(mib "$(get cairn.serve_hwm_kib)") MiB, nats-server $(mib "$(get cairn.nats_hwm_kib)") MiB."
        fi
        echo "${end}"
    } >"$REPORT"
    # the commit measured names the files too: two runs of a day do not collide
    local rev
    rev=$(sed -n 's/^commit \([0-9a-f]\{7\}\).*/-\1/p' <<<"${CAIRN_LABEL:-}")
    tag=$tag$rev${BENCH_LABEL:+-$BENCH_LABEL}
    mkdir -p "$HERE/results"
    cp "$RAW" "$HERE/results/$DATE-$tag.tsv"
    cp "$REPORT" "$HERE/results/$DATE-$tag.md"
    # Put the report between the markers of $OUT, keeping the rest of the file.
    splice "$OUT" "$REPORT" "$begin" "$end"
    cat "$REPORT"
    say "$SHAPE done in $minutes min; results in $OUT and bench/results/$DATE-$tag.{md,tsv}"
    # the data set goes unless the caller made it or asked to keep it
    [ -n "${BENCH_KEEP:-}" ] || [ "$DATA" != "$WORK/data" -a "$DATA" != "$WORK/small" -a "$DATA" != "$WORK/big" ] || rm -rf "$DATA"
}

for sh in $SHAPES; do
    run_shape "$sh"
done
TOTAL_MIN=$(awk -v s=$((SECONDS - START_SECONDS)) 'BEGIN { printf "%.1f", s / 60 }')
say "all done in $TOTAL_MIN min"
