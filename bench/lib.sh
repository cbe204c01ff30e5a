# Helpers shared by bench/run.sh and bench/run-networks.sh (sourced, not run).
#
# The caller sets: HERE (bench/), ROOT (the work tree), BUILD, CAIRN, REPEAT,
# WORK, SRC, RAW (the raw results file) and, while measuring, REP, R and LOG
# (this repetition's directory and its log directory), and PGDB (this run's
# ledger database) for pg_backends.
# shellcheck shell=bash
# shellcheck disable=SC2034 # variables set here are read by the scripts that source this file

export PGHOST=127.0.0.1 PGPORT=5432 PGUSER=postgres
export PGOPTIONS="-c client_min_messages=warning"
CLK_TCK=$(getconf CLK_TCK)
# Cairn's private nats-servers run with the soft memory limit that
# docker-compose.yml gives the broker (BENCH_NATS_GOMEMLIMIT=off: none).
NATS_GOMEMLIMIT=${BENCH_NATS_GOMEMLIMIT:-224MiB}

say() { printf '[bench %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { say "FAILED: $*"; exit 1; }

# --- which Cairn ----------------------------------------------------------------
# build_cairn: sets CAIRN_LABEL and makes sure $CAIRN exists. Builds the commit
# BENCH_REV (default HEAD) from a `git archive` export in $BUILD/src into
# $BUILD/target, unless CAIRN_BIN or BENCH_NO_BUILD is set.
build_cairn() {
    if [ -n "${CAIRN_BIN:-}" ]; then
        CAIRN_LABEL="binary $CAIRN_BIN"
    elif [ -n "${BENCH_NO_BUILD:-}" ]; then
        CAIRN_LABEL="commit $(cut -c1-12 "$BUILD/src/.bench-rev" 2>/dev/null || echo unknown) (built earlier by run.sh)"
    else
        local rev
        rev=$(git -C "$ROOT" rev-parse --verify "${BENCH_REV:-HEAD}^{commit}") || die "no commit ${BENCH_REV:-HEAD}"
        if [ "$(cat "$BUILD/src/.bench-rev" 2>/dev/null)" != "$rev" ]; then
            say "exporting $rev to $BUILD/src"
            rm -rf "$BUILD/src" && mkdir -p "$BUILD/src"
            git -C "$ROOT" archive "$rev" | tar -x -C "$BUILD/src"
            # git archive stamps every file with the commit time: make cargo
            # see them as new even when this commit is older than the last.
            find "$BUILD/src" -type f -exec touch {} +
            echo "$rev" >"$BUILD/src/.bench-rev"
        fi
        say "cargo build --release -p cairn (commit ${rev:0:12}, target $BUILD/target)"
        CARGO_TARGET_DIR=$BUILD/target cargo build --release -p cairn --manifest-path "$BUILD/src/Cargo.toml" >&2 ||
            die "release build of ${rev:0:12}"
        CAIRN_LABEL="commit ${rev:0:12}"
    fi
    [ -x "$CAIRN" ] || die "no cairn binary at $CAIRN"
}

# --- data -----------------------------------------------------------------------
# Two shapes of data: SHAPE=dump (make-dataset.sh: a pg_dump at SCALE and
# large random files) or SHAPE=small (make-smallfiles.sh: SMALL_FILES files of
# a few KiB to 256 KiB, 1% changed in v2).
SHAPE=${SHAPE:-dump}
SMALL_FILES=${SMALL_FILES:-30000}
BIG_GIB=${BIG_GIB:-10}

# make_data: the data set in $DATA (made unless it is there already), and
# its sizes.
make_data() {
    case $SHAPE in
    dump)
        if [ ! -f "$DATA/v1/dump.sql" ] || [ ! -f "$DATA/v2/dump.sql" ]; then
            say "making the data set (scale $SCALE) in $DATA"
            "$HERE/make-dataset.sh" "$DATA" "$SCALE"
        else
            say "reusing the data set in $DATA"
        fi
        DUMP_BYTES=$(stat -c %s "$DATA/v2/dump.sql")
        V2_DIFF_LINES=$( (diff "$DATA/v1/dump.sql" "$DATA/v2/dump.sql" || true) | grep -c '^[<>]' || true)
        ;;
    small)
        if [ "$(cat "$DATA/.bench-small" 2>/dev/null)" != "files=$SMALL_FILES" ]; then
            say "making the small-files data set ($SMALL_FILES files) in $DATA"
            "$HERE/make-smallfiles.sh" "$DATA" "$SMALL_FILES"
        else
            say "reusing the small-files data set in $DATA"
        fi
        CHANGED_FILES=$(wc -l <"$DATA/changed.txt")
        ;;
    big)
        # BIG_GIB files of 1 GiB from /dev/urandom; v2 rewrites the first
        # MiB of the first one. For peak memory on a large source.
        if [ "$(cat "$DATA/.bench-big" 2>/dev/null)" != "gib=$BIG_GIB" ]; then
            say "making the large data set ($BIG_GIB GiB) in $DATA"
            rm -rf "$DATA/v1" "$DATA/v2" && mkdir -p "$DATA/v1"
            local i
            for i in $(seq "$BIG_GIB"); do head -c $((1 << 30)) /dev/urandom >"$DATA/v1/big-$i.bin"; done
            cp -al "$DATA/v1" "$DATA/v2"
            rm "$DATA/v2/big-1.bin"
            { head -c $((1 << 20)) /dev/urandom; tail -c +$(((1 << 20) + 1)) "$DATA/v1/big-1.bin"; } >"$DATA/v2/big-1.bin"
            echo "gib=$BIG_GIB" >"$DATA/.bench-big"
        else
            say "reusing the large data set in $DATA"
        fi
        ;;
    *) die "unknown data shape '$SHAPE' (dump, small or big)" ;;
    esac
    V1_BYTES=$(du -sb "$DATA/v1" | cut -f1)
    V2_BYTES=$(du -sb "$DATA/v2" | cut -f1)
}

# data_line: one sentence on the data set, for the report
data_line() {
    case $SHAPE in
    dump) echo "v1 $(mb "$V1_BYTES") MB, v2 $(mb "$V2_BYTES") MB (pg_dump $(mb "$DUMP_BYTES") MB, 256 MiB random, 128 MiB duplicate of it); \`diff\` of the two dumps: $V2_DIFF_LINES lines removed or added" ;;
    big) echo "$BIG_GIB files of 1 GiB of random bytes, v1 $(mb "$V1_BYTES") MB; v2 rewrites the first MiB of one of them" ;;
    small) echo "$SMALL_FILES files in 300 directories (bench/make-smallfiles.sh: 2 KiB–256 KiB, median ~7 KiB, 60% text, 40% random), v1 $(mb "$V1_BYTES") MB, v2 $(mb "$V2_BYTES") MB; $CHANGED_FILES files (1%) rewritten in part, in place, for v2" ;;
    esac
}

# Full backups start from a fresh copy of v1 (mtimes kept). The incremental
# changes what v2 changes in place (dump.sql overwritten; for the small
# files, the changed ones overwritten); the rest is left as it is, as it
# would be on a real machine between two backups.
# The large shape's source is hard links to v1 (another 10 GiB copy would not
# fit beside repository and restore on these machines); its incremental
# replaces big-1.bin with a new file rather than writing through the link.
prep_v1() {
    rm -rf "$SRC" && mkdir -p "$SRC"
    if [ "$SHAPE" = big ]; then cp -al "$DATA/v1/." "$SRC/"; else cp -a "$DATA/v1/." "$SRC/"; fi
    sync
}
prep_v2() {
    case $SHAPE in
    dump) cp "$DATA/v2/dump.sql" "$SRC/dump.sql" ;;
    small) while IFS= read -r f; do cp "$DATA/v2/$f" "$SRC/$f"; done <"$DATA/changed.txt" ;;
    big) rm "$SRC/big-1.bin" && cp "$DATA/v2/big-1.bin" "$SRC/big-1.bin" ;;
    esac
    sync
}

# restored_root DIR: where under DIR a tool put the restored copy of $SRC
# (tools differ in how much of the source path they recreate).
restored_root() {
    local mark=dump.sql
    [ "$SHAPE" = small ] && mark=d00
    [ "$SHAPE" = big ] && mark=big-1.bin
    find "$1" -name "$mark" -printf '%h\n' 2>/dev/null | head -1
}

check_restore() { # tool dir
    local tool=$1 dir=$2
    [ -d "$dir" ] || die "$tool restore: $dir does not exist (ls: $(ls -R "$R/restore/$tool" | head -20))"
    if ! diff -r -q "$DATA/v2" "$dir" >"$LOG/$tool-diff.txt" 2>&1; then
        cat "$LOG/$tool-diff.txt" >&2
        die "$tool: the restored tree differs from v2 (see above)"
    fi
    say "$tool restore is byte-identical to v2"
}

# --- measuring --------------------------------------------------------------------
# put KEY VALUE: one result of repetition $REP
put() { printf '%s\t%s\t%s\n' "$REP" "$1" "$2" >>"$RAW"; }
# get KEY: the median over the repetitions; range KEY: "min–max"
get() {
    awk -F'\t' -v k="$1" '$2 == k && $3 != "" { v[n++] = $3 + 0 }
        END { if (!n) exit; for (i = 0; i < n; i++) for (j = i + 1; j < n; j++) if (v[j] < v[i]) { t = v[i]; v[i] = v[j]; v[j] = t }
              m = (n % 2) ? v[int(n / 2)] : (v[n / 2 - 1] + v[n / 2]) / 2; print m }' "$RAW"
}
range() {
    awk -F'\t' -v k="$1" '$2 == k && $3 != "" { x = $3 + 0; if (!n++ || x < lo) lo = x; if (n == 1 || x > hi) hi = x }
        END { if (n > 1) printf "%.2f–%.2f", lo, hi }' "$RAW"
}
# last KEY: the value of this repetition
last() { awk -F'\t' -v k="$1" -v r="$REP" '$1 == r && $2 == k { v = $3 } END { print v }' "$RAW"; }

# timed KEY CMD...: wall seconds, peak RSS (KiB) and CPU seconds of CMD.
timed() {
    local key=$1
    shift
    local tf="$LOG/$key.time"
    # What an earlier phase (or tool) left to write back is not this one's.
    sync
    say "$key (run $REP/$REPEAT): $*"
    if ! /usr/bin/time -f '%e %M %U %S' -o "$tf" "$@" >"$LOG/$key.out" 2>"$LOG/$key.err"; then
        tail -20 "$LOG/$key.err" >&2
        die "$key: command failed: $*"
    fi
    local e m u s
    read -r e m u s < <(tail -1 "$tf")
    put "$key.wall" "$e"
    put "$key.rss_kib" "$m"
    put "$key.cpu" "$(awk -v u="$u" -v s="$s" 'BEGIN { printf "%.2f", u + s }')"
    say "$key: ${e} s, peak RSS $((m / 1024)) MiB, CPU $(last "$key.cpu") s"
}

cpu_ticks() { # PID...: utime+stime of the live ones
    local t=0 p
    for p in "$@"; do
        [ -r "/proc/$p/stat" ] || continue
        t=$((t + $(awk '{ sub(/^.*\) /, ""); print $12 + $13 }' "/proc/$p/stat")))
    done
    echo $t
}
hwm_kib() { awk '/^VmHWM:/ { print $2 }' "/proc/$1/status" 2>/dev/null || echo 0; }
pg_backends() { pgrep -f "postgres: .*[^ ]+ $PGDB 127\\.0\\.0\\.1\\(" || true; }
ticks_to_s() { awk -v t="$1" -v h="$CLK_TCK" 'BEGIN { printf "%.2f", t / h }'; }

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])' 2>/dev/null ||
        echo $((20000 + RANDOM % 20000))
}
# wait_port PORT PID WHAT LOGFILE: until something accepts on 127.0.0.1:PORT
wait_port() {
    local port=$1 pid=$2 what=$3 logf=$4
    for _ in $(seq 200); do
        (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && return 0
        kill -0 "$pid" 2>/dev/null || die "$what stopped: $(tail -5 "$logf")"
        sleep 0.1
    done
    die "$what does not listen on 127.0.0.1:$port after 20 s: $(tail -5 "$logf")"
}
sum() { awk 'BEGIN { t = 0; n = 0 } { for (i = 1; i <= NF; i++) if ($i != "") { t += $i; n++ } } END { if (n) printf "%.2f", t; else print "" }' <<<"$*"; }

# --- a private Cairn ------------------------------------------------------------
# start_cairn CFG [EXTRA_TOML]: writes CFG (data under $WORK/cairn-data, a
# private nats-server with JetStream under $WORK/jetstream, ledger database
# $PGDB), runs `cairn init` and `cairn serve all`; sets NATS_PID and
# SERVE_PID for the caller's cleanup. Every other CAIRN_* variable is unset.
start_cairn() {
    local cfg=$1 extra=${2:-} port
    port=$(free_port)
    cat >"$cfg" <<EOF
data_dir = "$WORK/cairn-data"

[nats]
url = "nats://127.0.0.1:$port"
prefix = "$RUN_ID"

[postgres]
url = "host=127.0.0.1 port=5432 user=postgres dbname=$PGDB"
$extra
EOF
    while read -r v; do unset "$v"; done < <(compgen -e | grep '^CAIRN_' || true)
    export CAIRN_PASSPHRASE=bench-passphrase
    GOMEMLIMIT=$NATS_GOMEMLIMIT nats-server -a 127.0.0.1 -p "$port" -js -sd "$WORK/jetstream" >"$LOG/nats-server.log" 2>&1 &
    NATS_PID=$!
    wait_port "$port" "$NATS_PID" nats-server "$LOG/nats-server.log"
    "$CAIRN" --config "$cfg" init --json >"$LOG/cairn-init.log" 2>&1 || die "cairn init: $(cat "$LOG/cairn-init.log")"
    "$CAIRN" --config "$cfg" serve all >"$LOG/cairn-serve.log" 2>&1 &
    SERVE_PID=$!
    for _ in $(seq 300); do grep -q serving "$LOG/cairn-serve.log" && break; sleep 0.1; done
    grep -q serving "$LOG/cairn-serve.log" || die "cairn serve is not serving"
}

# --- report -------------------------------------------------------------------------
mb() { awk -v b="$1" 'BEGIN { if (b == "") print "–"; else printf "%.1f", b / 1e6 }'; }
mib() { awk -v k="$1" 'BEGIN { if (k == "") print "–"; else printf "%.0f", k / 1024 }'; }
rate() { awk -v b="$1" -v s="$2" 'BEGIN { if (s == "" || s == 0) print "–"; else printf "%.0f", b / 1e6 / s }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a == "" || b == "" || a == "–" || b == "–" || b == 0) print "–"; else printf "%.2f", a / b }'; }
f2() { awk -v x="$1" 'BEGIN { if (x == "") print "–"; else printf "%.2f", x }'; }
v() { f2 "$(get "$1")"; }
# wall: the median, with the range when there were several runs
wall() { local r; r=$(range "$1"); echo "$(v "$1")${r:+ ($r)}"; }
ver() { "$@" 2>/dev/null | head -1 || echo "not installed"; }
machine() {
    local mem cpu
    mem=$(awk '/^MemTotal:/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo)
    cpu=$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)
    echo "$(nproc) CPUs ($cpu), $mem RAM, $(uname -sr)"
}

# splice OUT REPORT BEGIN END: put REPORT between the lines of OUT that match
# BEGIN and END (regular expressions), keeping the rest of OUT; append it
# when OUT has no such block.
splice() {
    local out=$1 rep=$2 begin=$3 end=$4
    if [ -f "$out" ] && grep -q "$begin" "$out"; then
        awk -v rep="$rep" -v b="$begin" -v e="$end" '
            $0 ~ b { while ((getline l < rep) > 0) print l; skip = 1; next }
            $0 ~ e { skip = 0; next }
            !skip { print }' "$out" >"$out.tmp" && mv "$out.tmp" "$out"
    else
        {
            [ -f "$out" ] && cat "$out" && echo
            [ -f "$out" ] || printf '# Benchmarks\n\nReproduce with `bench/run.sh [SCALE]` (see bench/README.md).\n\n'
            cat "$rep"
        } >"$out.tmp" && mv "$out.tmp" "$out"
    fi
}
