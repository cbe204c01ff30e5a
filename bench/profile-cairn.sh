#!/usr/bin/env bash
# Where does a Cairn full backup spend its time? One full backup of a data
# set's v1 into a fresh repository, with:
#   - a CPU timeline (every 0.25 s) of `cairn serve all`, the private
#     nats-server and this run's PostgreSQL backends, from /proc;
#   - the ledger's timeline of the backup's events (first/last per kind);
#   - `perf record` of the serve process (DWARF call graphs) and of
#     nats-server, summarised by stage (the cairn_* crate on the stack) and
#     by hottest symbols.
# perf slows things down: the wall time printed here is not a benchmark
# figure (use bench/run.sh for those).
#
# Usage: bench/profile-cairn.sh DATA_DIR   (made by bench/make-dataset.sh or
# bench/make-smallfiles.sh)
# Environment: CAIRN_BIN (default: the binary bench/run.sh built, in
# ~/.cache/cairn-bench-build/target/release), BENCH_WORK, BENCH_KEEP=1, NO_PERF=1
set -euo pipefail

DATA=${1:?usage: profile-cairn.sh DATA_DIR (see bench/make-dataset.sh)}
[ -d "$DATA/v1" ] || { echo "no $DATA/v1: run bench/make-dataset.sh or bench/make-smallfiles.sh first" >&2; exit 2; }
DATA=$(cd "$DATA" && pwd)
CAIRN=${CAIRN_BIN:-${BENCH_BUILD:-$HOME/.cache/cairn-bench-build}/target/release/cairn}
[ -x "$CAIRN" ] || { echo "no cairn binary at $CAIRN (run bench/run.sh once, or set CAIRN_BIN)" >&2; exit 2; }
WORK=${BENCH_WORK:-$(mktemp -d /tmp/cairn-profile.XXXXXX)}
mkdir -p "$WORK"
RUN_ID=p$(date +%s)$$
PGDB=cairn_bench_$RUN_ID
export PGHOST=127.0.0.1 PGPORT=5432 PGUSER=postgres PGOPTIONS="-c client_min_messages=warning"
HZ=$(getconf CLK_TCK)
NATS_GOMEMLIMIT=${BENCH_NATS_GOMEMLIMIT:-224MiB} # as docker-compose.yml gives the broker
USE_PERF=1
{ [ -n "${NO_PERF:-}" ] || ! command -v perf >/dev/null; } && USE_PERF=''

NATS_PID='' SERVE_PID='' SAMPLER_PID='' PERF_PIDS=()
cleanup() {
    local rc=$?
    for p in "${PERF_PIDS[@]}" $SAMPLER_PID $SERVE_PID $NATS_PID; do kill -TERM "$p" 2>/dev/null || true; done
    for p in "${PERF_PIDS[@]}" $SAMPLER_PID $SERVE_PID $NATS_PID; do wait "$p" 2>/dev/null || true; done
    psql -X -q -d postgres -c "drop database if exists $PGDB" 2>/dev/null || true
    if [ -n "${BENCH_KEEP:-}" ]; then echo "kept $WORK" >&2; else rm -rf "$WORK"; fi
    exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

PORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
cat >"$WORK/cairn.toml" <<EOF
data_dir = "$WORK/cairn-data"
[nats]
url = "nats://127.0.0.1:$PORT"
prefix = "$RUN_ID"
[postgres]
url = "host=127.0.0.1 port=5432 user=postgres dbname=$PGDB"
EOF
while read -r v; do unset "$v"; done < <(compgen -e | grep '^CAIRN_' || true)
export CAIRN_PASSPHRASE=bench-passphrase
C=("$CAIRN" --config "$WORK/cairn.toml")

GOMEMLIMIT=$NATS_GOMEMLIMIT nats-server -a 127.0.0.1 -p "$PORT" -js -sd "$WORK/jetstream" >"$WORK/nats.log" 2>&1 &
NATS_PID=$!
for _ in $(seq 100); do (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null && break; sleep 0.1; done
"${C[@]}" init --json >/dev/null
"${C[@]}" serve all >"$WORK/serve.log" 2>&1 &
SERVE_PID=$!
for _ in $(seq 300); do grep -q serving "$WORK/serve.log" && break; sleep 0.1; done
grep -q serving "$WORK/serve.log" || { tail "$WORK/serve.log" >&2; exit 1; }
mkdir -p "$WORK/src" && cp -a "$DATA/v1/." "$WORK/src/" && sync

ticks() { local t=0 p; for p in "$@"; do [ -r /proc/$p/stat ] && t=$((t + $(awk '{ sub(/^.*\) /, ""); print $12 + $13 }' /proc/$p/stat))); done; echo $t; }
sampler() {
    local t0 s n g pgb
    t0=$(date +%s.%N)
    while :; do
        # shellcheck disable=SC2046
        pgb=$(pgrep -f "postgres: .*[^ ]+ $PGDB 127\\.0\\.0\\.1\\(" | tr '\n' ' ')
        # shellcheck disable=SC2086
        printf '%s %s %s %s\n' "$(awk -v a="$(date +%s.%N)" -v b="$t0" 'BEGIN { printf "%.2f", a - b }')" \
            "$(ticks "$SERVE_PID")" "$(ticks "$NATS_PID")" "$(ticks $pgb)"
        sleep 0.25
    done
}
SAMPLER_T0=$(date +%s.%N)
sampler >"$WORK/cpu.txt" &
SAMPLER_PID=$!
if [ -n "$USE_PERF" ]; then
    perf record -q -F 499 --call-graph dwarf,32768 -o "$WORK/perf.serve.data" -p "$SERVE_PID" >/dev/null 2>&1 &
    PERF_PIDS+=($!)
    perf record -q -F 499 -g -o "$WORK/perf.nats.data" -p "$NATS_PID" >/dev/null 2>&1 &
    PERF_PIDS+=($!)
    sleep 1
fi
start=$(date +%s.%N)
"${C[@]}" backup "$WORK/src" --json >"$WORK/backup.json"
end=$(date +%s.%N)
for p in "${PERF_PIDS[@]}"; do kill -INT "$p"; done
for p in "${PERF_PIDS[@]}"; do wait "$p" || true; done
PERF_PIDS=()
kill "$SAMPLER_PID"; wait "$SAMPLER_PID" 2>/dev/null || true; SAMPLER_PID=''

ID=$(jq -r .backup_id "$WORK/backup.json")
echo "== backup $ID: $(jq -r .status "$WORK/backup.json"), $(awk -v a="$end" -v b="$start" 'BEGIN { printf "%.2f", a - b }') s wall$([ -n "$USE_PERF" ] && echo ' (under perf)')"
echo
echo "== Per sample (about every 0.25 s, t = seconds since \`cairn backup\` started): CPU in % of one"
echo "   core (2 cores = 200%), and MB of objects written to the network (by file mtime)"
find "$WORK/cairn-data/networks" -type f -printf '%T@ %s\n' >"$WORK/written.txt"
echo "   t(s)   serve   nats   postgres   MB stored"
awk -v hz="$HZ" -v off="$(awk -v a="$SAMPLER_T0" -v b="$start" 'BEGIN { print a - b }')" -v st="$start" '
    FNR == NR { ft[NR] = $1 - st; fs[NR] = $2; nf = NR; next }
    FNR > 1 { dt = $1 - t; if (dt > 0) { lo = t + off; hi = $1 + off; mb = 0; for (i = 1; i <= nf; i++) if (ft[i] > lo && ft[i] <= hi) mb += fs[i]
              printf "  %5.2f  %5.0f  %5.0f  %5.0f   %8.1f\n", hi, ($2 - s) / hz / dt * 100, ($3 - n) / hz / dt * 100, ($4 - g) / hz / dt * 100, mb / 1e6 } }
    { t = $1; s = $2; n = $3; g = $4 }' "$WORK/written.txt" "$WORK/cpu.txt" |
    awk '$2 + $3 + $4 + $5 > 0 || p { print; p = ($2 + $3 + $4 + $5 > 0) }'
echo
echo "== Ledger timeline of the backup (recorded_at: when the ledger wrote each event)"
psql -X -d "$PGDB" -c "select kind, count(*), to_char(min(recorded_at), 'HH24:MI:SS.MS') as first, to_char(max(recorded_at), 'HH24:MI:SS.MS') as last from ledger_entries where backup_id = '$ID' group by kind order by min(recorded_at)"
sed 's/\x1b\[[0-9;]*m//g' "$WORK/serve.log" | grep -E "ingested|verified" || true
set +o pipefail # the summaries below are best effort

if [ -n "$USE_PERF" ]; then
    echo "== serve: share of samples by stage (innermost cairn_* crate that is not a shared helper, else the outermost)"
    perf script -i "$WORK/perf.serve.data" -F comm,tid,ip,sym 2>/dev/null | awk '
        function flush() { if (n) { st = stage; if (st == "") st = (other != "" ? other : "runtime/kernel/other"); c[st]++; total++ } n = 0; stage = ""; other = "" }
        /^[^ \t]/ { flush(); n = 1; next }
        /^$/ { flush(); next }
        {
            if (match($0, /cairn_(ingest|encrypt|store|verify|audit_ledger|retention)/)) { if (stage == "") stage = substr($0, RSTART, RLENGTH) }
            else if (match($0, /cairn_(bus|repo|crypto|networks|events)/)) { if (other == "") other = "(" substr($0, RSTART, RLENGTH) " outside a stage)" }
        }
        END { flush(); for (k in c) printf "  %5.1f%%  %s\n", c[k] / total * 100, k | "sort -rn" }'
    echo
    echo "== serve: hottest symbols (self)"
    perf report -i "$WORK/perf.serve.data" --no-children --sort dso,sym --stdio -g none 2>/dev/null | grep -v '^#' | grep -v '^$' | head -25
    echo
    echo "== serve: hottest leaf functions with the nearest cairn_* function above them"
    perf script -i "$WORK/perf.serve.data" -F ip,sym 2>/dev/null | awk '
        function flush() { if (leaf != "") { if (caller == "") caller = "?"; c[leaf " <- " caller]++; total++ } leaf = ""; caller = "" }
        /^$/ { flush(); next }
        { l = $0; sub(/^[ \t]*[0-9a-f]+ /, "", l); if (leaf == "") { leaf = l; next } if (caller == "" && l ~ /cairn_[a-z_]+::/) caller = l }
        END { flush(); for (k in c) printf "  %5.1f%%  %s\n", c[k] / total * 100, substr(k, 1, 200) }' | sort -rn | head -25
    echo
    echo "== nats-server: hottest symbols (self)"
    perf report -i "$WORK/perf.nats.data" --no-children --sort dso,sym --stdio -g none 2>/dev/null | grep -v '^#' | grep -v '^$' | head -15
fi
