#!/usr/bin/env bash
# Cairn writing to storage networks: a local directory, two real S3 servers
# (s3s-fs and Garage) and all three at once, an IPFS node (js-ipfs) and an
# Arweave gateway (arlocal); restic on the same S3 servers.
#
# Usage: bench/run-networks.sh [SCALE]     (SCALE of the pgbench dump, default 30)
#
# Configurations, in this order in every repetition (each on fresh servers,
# fresh repositories):
#   restic-s3s     restic to s3s-fs          restic-garage  restic to Garage
#   cairn-local    Cairn to the fs network   cairn-s3s      Cairn to s3s-fs
#   cairn-garage   Cairn to Garage           cairn-all      Cairn to all three
#                                                           in one backup
#   cairn-ipfs     Cairn to a js-ipfs node   cairn-arweave  Cairn to arlocal
#                  (Kubo RPC API)                           (mining each post)
# Each: full backup of v1, incremental backup of v2, restore of v2 (checked
# byte for byte against v2). cairn-all also restores from a configuration
# that names only s3s-fs, and from one that names only Garage.
# Results go to BENCHMARKS.md (between the networks markers; the rest of the
# file is kept) and to bench/results/<date>-s<SCALE>-networks.{md,tsv}, with
# a CPU and write timeline of the last repetition's Cairn full backups in
# bench/results/<date>-s<SCALE>-networks-timeline.txt.
#
# Environment (all optional), as for bench/run.sh:
#   BENCH_WORK, BENCH_DATA, BENCH_KEEP=1, BENCH_REPEAT (default 3), BENCH_REV,
#   BENCH_BUILD, BENCH_NO_BUILD=1, CAIRN_BIN, BENCH_OUT
#   BENCH_CONFIGS="restic-s3s restic-garage cairn-local cairn-s3s cairn-garage cairn-all cairn-ipfs cairn-arweave"
#   S3S_FS_BIN, GARAGE_BIN   the servers (default: s3s-fs and garage on PATH,
#                            else in ~/.cargo/bin)
#
# Everything listens on 127.0.0.1 only and is stopped by PID at the end of
# its configuration (or on exit).
set -euo pipefail

SCALE=${1:-30}
case $SCALE in '' | *[!0-9]*) echo "run-networks.sh: SCALE must be a positive integer" >&2; exit 2 ;; esac
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(dirname "$HERE")
BUILD=${BENCH_BUILD:-$HOME/.cache/cairn-bench-build}
CAIRN=${CAIRN_BIN:-$BUILD/target/release/cairn}
CONFIGS=${BENCH_CONFIGS:-restic-s3s restic-garage cairn-local cairn-s3s cairn-garage cairn-all cairn-ipfs cairn-arweave}
REPEAT=${BENCH_REPEAT:-3}
case $REPEAT in '' | *[!0-9]* | 0) echo "run-networks.sh: BENCH_REPEAT must be a positive integer" >&2; exit 2 ;; esac
REP=0
OUT=${BENCH_OUT:-$ROOT/BENCHMARKS.md}
RUN_ID=n$(date +%s)$$
START_SECONDS=$SECONDS
LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
BUCKET=bench
# shellcheck source=bench/lib.sh
. "$HERE/lib.sh"

# --- tools ------------------------------------------------------------------
find_bin() { # NAME: on PATH, else in ~/.cargo/bin
    command -v "$1" 2>/dev/null || { [ -x "$HOME/.cargo/bin/$1" ] && echo "$HOME/.cargo/bin/$1"; } || echo ""
}
S3S_FS=${S3S_FS_BIN:-$(find_bin s3s-fs)}
GARAGE=${GARAGE_BIN:-$(find_bin garage)}
need_pkgs=()
[ -x /usr/bin/time ] || need_pkgs+=(time)
command -v restic >/dev/null || need_pkgs+=(restic)
command -v nats-server >/dev/null || need_pkgs+=(nats-server)
if [ ${#need_pkgs[@]} -gt 0 ]; then
    say "installing ${need_pkgs[*]}"
    apt-get install -y "${need_pkgs[@]}" >/dev/null
fi
for c in psql pg_dump pgbench jq diff du python3; do command -v $c >/dev/null || die "$c is missing"; done
[ -x "$S3S_FS" ] || die "no s3s-fs (cargo install s3s-fs, or set S3S_FS_BIN)"
[ -x "$GARAGE" ] || die "no garage (cargo install garage, or set GARAGE_BIN)"
for c in $CONFIGS; do
    case $c in restic-s3s | restic-garage | cairn-local | cairn-s3s | cairn-garage | cairn-all | cairn-ipfs | cairn-arweave) ;; *) die "unknown configuration '$c' in BENCH_CONFIGS" ;; esac
done
[[ " $CONFIGS " == *" cairn-"* ]] && build_cairn

# --- scratch space and cleanup -------------------------------------------------
WORK=${BENCH_WORK:-$(mktemp -d /tmp/cairn-bench-net.XXXXXX)}
mkdir -p "$WORK"
SRC=$WORK/src # the one source path every tool backs up, in every repetition
R='' LOG='' C='' # per repetition: $WORK/rN, its logs; per configuration: its directory
RAW=$WORK/results.tsv
: >"$RAW"
if [ -n "${CAIRN_LABEL:-}" ]; then
    # A private copy: a concurrent build into the same target directory
    # cannot swap the binary in the middle of the run.
    cp "$CAIRN" "$WORK/cairn"
    CAIRN=$WORK/cairn
fi
NATS_PID='' SERVE_PID='' SERVE_TIME_PID='' S3S_PID='' GARAGE_PID='' IPFS_PID='' ARWEAVE_PID='' SAMPLER_PID='' DBS_MADE=()

stop_pid() { # PID: TERM, then wait for it (it is a child of this shell)
    [ -n "$1" ] || return 0
    kill -CONT "$1" 2>/dev/null || true
    kill -TERM "$1" 2>/dev/null || return 0
    wait "$1" 2>/dev/null || true
}
cleanup() {
    local rc=$?
    stop_pid "$SAMPLER_PID"
    [ -n "$SERVE_PID" ] && kill -TERM "$SERVE_PID" 2>/dev/null && wait "$SERVE_TIME_PID" 2>/dev/null
    stop_pid "$NATS_PID"
    stop_pid "$S3S_PID"
    stop_pid "$GARAGE_PID"
    stop_pid "$IPFS_PID"
    stop_pid "$ARWEAVE_PID"
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

# --- data -------------------------------------------------------------------------
DATA=${BENCH_DATA:-$WORK/data}
make_data

# --- servers ----------------------------------------------------------------------
hex() { od -An -tx1 -N"$1" /dev/urandom | tr -d ' \n'; }

# start_s3s: s3s-fs serving $C/s3s (the bucket is a subdirectory).
start_s3s() {
    S3S_DIR=$C/s3s
    mkdir -p "$S3S_DIR/$BUCKET"
    S3S_PORT=$(free_port) S3S_KEY=AK$(hex 6) S3S_SECRET=$(hex 20)
    "$S3S_FS" --host 127.0.0.1 --port "$S3S_PORT" --access-key "$S3S_KEY" --secret-key "$S3S_SECRET" "$S3S_DIR" \
        >"$LOG/$CFG.s3s-fs.log" 2>&1 &
    S3S_PID=$!
    wait_port "$S3S_PORT" "$S3S_PID" s3s-fs "$LOG/$CFG.s3s-fs.log"
    say "s3s-fs on 127.0.0.1:$S3S_PORT (pid $S3S_PID), data in $S3S_DIR"
}

# start_garage: one Garage node with metadata and data in $C/garage, one
# bucket, one key (as tests/src/lib.rs GarageServer::start does).
start_garage() {
    GARAGE_DIR=$C/garage
    mkdir -p "$GARAGE_DIR/meta" "$GARAGE_DIR/data"
    local rpc admin conf=$C/garage.toml node info
    GARAGE_PORT=$(free_port) rpc=$(free_port) admin=$(free_port)
    GARAGE_CONF=$conf
    cat >"$conf" <<EOF
metadata_dir = "$GARAGE_DIR/meta"
data_dir = "$GARAGE_DIR/data"
db_engine = "sqlite"
replication_factor = 1
rpc_bind_addr = "127.0.0.1:$rpc"
rpc_public_addr = "127.0.0.1:$rpc"
rpc_secret = "$(hex 32)"

[s3_api]
s3_region = "garage"
api_bind_addr = "127.0.0.1:$GARAGE_PORT"
root_domain = ".s3.garage.localhost"

[admin]
api_bind_addr = "127.0.0.1:$admin"
admin_token = "$(hex 16)"
EOF
    "$GARAGE" -c "$conf" server >"$LOG/$CFG.garage.log" 2>&1 &
    GARAGE_PID=$!
    wait_port "$GARAGE_PORT" "$GARAGE_PID" garage "$LOG/$CFG.garage.log"
    node=$(garage_cli node id -q) || die "garage node id"
    node=${node%%@*}
    garage_cli layout assign -z dc1 -c 10G "$node" >/dev/null || die "garage layout assign"
    garage_cli layout apply --version 1 >/dev/null || die "garage layout apply"
    garage_cli bucket create "$BUCKET" >/dev/null || die "garage bucket create"
    info=$(garage_cli key create bench-key) || die "garage key create"
    GARAGE_KEY=$(awk -F': *' '/^ *Key ID:/ { print $2 }' <<<"$info")
    GARAGE_SECRET=$(awk -F': *' '/^ *Secret key:/ { print $2 }' <<<"$info")
    if [ -z "$GARAGE_KEY" ] || [ -z "$GARAGE_SECRET" ]; then die "no key id or secret in: $info"; fi
    garage_cli bucket allow --read --write --owner "$BUCKET" --key bench-key >/dev/null || die "garage bucket allow"
    say "garage on 127.0.0.1:$GARAGE_PORT (pid $GARAGE_PID), data in $GARAGE_DIR"
}
garage_cli() { # ARGS...: retried for up to 20 s while the node starts
    local out
    for _ in $(seq 100); do
        if out=$("$GARAGE" -c "$GARAGE_CONF" "$@" 2>>"$LOG/$CFG.garage-cli.log"); then
            printf '%s\n' "$out"
            return 0
        fi
        sleep 0.2
    done
    return 1
}

# start_ipfs: a js-ipfs node (the project's test node, Kubo RPC API) with its
# repository in $C/ipfs.
start_ipfs() {
    IPFS_DIR=$C/ipfs IPFS_PORT=$(free_port)
    bash "$ROOT/scripts/servers/ipfs/start.sh" "$IPFS_DIR" "$IPFS_PORT" >"$LOG/$CFG.ipfs.log" 2>&1 &
    IPFS_PID=$!
    bash "$ROOT/scripts/servers/ipfs/wait.sh" "$IPFS_PORT" 120 "$IPFS_DIR" || die "the IPFS node did not start: $(tail -5 "$LOG/$CFG.ipfs.log")"
    say "js-ipfs on 127.0.0.1:$IPFS_PORT (pid $IPFS_PID), repository in $IPFS_DIR"
}

# start_arweave: arlocal with its data in $C/arweave, the test wallet minted.
start_arweave() {
    ARWEAVE_DIR=$C/arweave
    mkdir -p "$ARWEAVE_DIR"
    bash "$ROOT/scripts/servers/arweave/start.sh" "$ARWEAVE_DIR" 0 >"$LOG/$CFG.arlocal.out" 2>"$LOG/$CFG.arlocal.log" &
    ARWEAVE_PID=$!
    for _ in $(seq 600); do
        grep -q '"ready":true' "$LOG/$CFG.arlocal.out" 2>/dev/null && break
        kill -0 "$ARWEAVE_PID" 2>/dev/null || die "arlocal stopped: $(tail -5 "$LOG/$CFG.arlocal.log")"
        sleep 0.2
    done
    ARWEAVE_PORT=$(jq -r .port "$LOG/$CFG.arlocal.out")
    ARWEAVE_WALLET=$ROOT/scripts/servers/arweave/test-wallet.json
    local addr
    addr=$(python3 -c 'import base64,hashlib,json,sys; n=json.load(open(sys.argv[1]))["n"]; n+="="*(-len(n)%4); print(base64.urlsafe_b64encode(hashlib.sha256(base64.urlsafe_b64decode(n)).digest()).decode().rstrip("="))' "$ARWEAVE_WALLET")
    curl -sf "http://127.0.0.1:$ARWEAVE_PORT/mint/$addr/100000000000000000000" >/dev/null || die "arlocal mint failed"
    say "arlocal on 127.0.0.1:$ARWEAVE_PORT (pid $ARWEAVE_PID), data in $ARWEAVE_DIR"
}

stop_servers() {
    stop_pid "$S3S_PID"
    S3S_PID=''
    stop_pid "$GARAGE_PID"
    GARAGE_PID=''
    stop_pid "$IPFS_PID"
    IPFS_PID=''
    stop_pid "$ARWEAVE_PID"
    ARWEAVE_PID=''
}

# net_dir NET: the directory that holds what network NET stores
net_dir() {
    case $1 in
    local) echo "$C/net-local" ;;
    s3s) echo "$S3S_DIR" ;;
    garage) echo "$GARAGE_DIR" ;;
    ipfs) echo "$IPFS_DIR" ;;
    arweave) echo "$ARWEAVE_DIR" ;;
    esac
}

# --- measuring --------------------------------------------------------------------
# Every phase also samples, every 0.5 s, the CPU ticks of serve, nats-server,
# this run's PostgreSQL backends and the S3 servers (bash builtins only, so
# the sampler itself costs next to nothing).
ticks_of() { # PID...: utime+stime, without forking
    local t=0 p line
    local -a f
    for p in "$@"; do
        if [ -z "$p" ] || [ ! -r "/proc/$p/stat" ]; then continue; fi
        read -r line <"/proc/$p/stat" 2>/dev/null || continue
        # after "pid (comm) ": state ppid ... utime (12th) stime (13th)
        read -r -a f <<<"${line##*) }"
        t=$((t + f[11] + f[12]))
    done
    echo $t
}
sampler() { # PG_PIDS: lines "t serve nats pg s3s garage" (t in epoch seconds)
    local pgb=$1
    while :; do
        # shellcheck disable=SC2086
        echo "$EPOCHREALTIME $(ticks_of "$SERVE_PID") $(ticks_of "$NATS_PID") $(ticks_of $pgb) $(ticks_of "$S3S_PID") $(ticks_of "$GARAGE_PID")"
        sleep 0.5
    done
}

# phase KEY CMD...: a timed command, plus what the other processes spent
# meanwhile and their peak RSS so far. Sets T0 (epoch seconds at the start).
phase() {
    local key=$1
    shift
    local pgb serve0 nats0 pg0 s3s0 garage0 node0
    pgb=''
    [ -n "$SERVE_PID" ] && pgb=$(pg_backends | tr '\n' ' ')
    serve0=$(ticks_of "$SERVE_PID") nats0=$(ticks_of "$NATS_PID") s3s0=$(ticks_of "$S3S_PID") garage0=$(ticks_of "$GARAGE_PID") node0=$(ticks_of "$IPFS_PID" "$ARWEAVE_PID")
    # shellcheck disable=SC2086
    pg0=$(ticks_of $pgb)
    sampler "$pgb" >"$LOG/$key.cpu-timeline" &
    SAMPLER_PID=$!
    T0=$EPOCHREALTIME
    timed "$key" "$@"
    stop_pid "$SAMPLER_PID"
    SAMPLER_PID=''
    if [ -n "$SERVE_PID" ]; then
        put "$key.serve_cpu" "$(ticks_to_s $(($(ticks_of "$SERVE_PID") - serve0)))"
        put "$key.nats_cpu" "$(ticks_to_s $(($(ticks_of "$NATS_PID") - nats0)))"
        # shellcheck disable=SC2086
        put "$key.pg_cpu" "$(ticks_to_s $(($(ticks_of $pgb) - pg0)))"
        put "$key.serve_hwm_kib" "$(hwm_kib "$SERVE_PID")"
        put "$key.nats_hwm_kib" "$(hwm_kib "$NATS_PID")"
    fi
    if [ -n "$S3S_PID" ]; then
        put "$key.s3s_cpu" "$(ticks_to_s $(($(ticks_of "$S3S_PID") - s3s0)))"
        put "$key.s3s_hwm_kib" "$(hwm_kib "$S3S_PID")"
    fi
    if [ -n "$GARAGE_PID" ]; then
        put "$key.garage_cpu" "$(ticks_to_s $(($(ticks_of "$GARAGE_PID") - garage0)))"
        put "$key.garage_hwm_kib" "$(hwm_kib "$GARAGE_PID")"
    fi
    if [ -n "$IPFS_PID$ARWEAVE_PID" ]; then # node servers: their own process only
        put "$key.node_cpu" "$(ticks_to_s $(($(ticks_of "$IPFS_PID" "$ARWEAVE_PID") - node0)))"
        put "$key.node_hwm_kib" "$(($(hwm_kib "$IPFS_PID" | sed 's/^$/0/') + $(hwm_kib "$ARWEAVE_PID" | sed 's/^$/0/')))"
    fi
    # Cairn's own processes (client + serve + nats-server; restore is the
    # client alone), the servers, and everything together.
    local own_rss own_cpu srv_rss srv_cpu
    own_rss=$(last "$key.rss_kib") own_cpu=$(last "$key.cpu")
    if [ -n "$SERVE_PID" ] && [[ $key != *restore* ]]; then
        own_rss=$((own_rss + $(last "$key.serve_hwm_kib") + $(last "$key.nats_hwm_kib")))
        own_cpu=$(sum "$own_cpu" "$(last "$key.serve_cpu")" "$(last "$key.nats_cpu")" "$(last "$key.pg_cpu")")
    elif [ -n "$SERVE_PID" ]; then
        own_cpu=$(sum "$own_cpu" "$(last "$key.serve_cpu")" "$(last "$key.nats_cpu")" "$(last "$key.pg_cpu")")
    fi
    srv_rss=$(($(last "$key.s3s_hwm_kib" | sed 's/^$/0/') + $(last "$key.garage_hwm_kib" | sed 's/^$/0/') + $(last "$key.node_hwm_kib" | sed 's/^$/0/')))
    srv_cpu=$(sum "$(last "$key.s3s_cpu")" "$(last "$key.garage_cpu")" "$(last "$key.node_cpu")")
    put "$key.own_rss_kib" "$own_rss"
    put "$key.own_cpu" "$own_cpu"
    [ "$srv_rss" -gt 0 ] && put "$key.server_rss_kib" "$srv_rss"
    [ -n "$srv_cpu" ] && put "$key.server_cpu" "$srv_cpu"
    put "$key.all_cpu" "$(sum "$own_cpu" "$srv_cpu")"
    put "$key.cores" "$(awk -v c="$(last "$key.all_cpu")" -v w="$(last "$key.wall")" 'BEGIN { if (w > 0) printf "%.2f", c / w }')"
    say "$key: own CPU $own_cpu s, servers ${srv_cpu:-0} s, $(last "$key.cores") cores busy on average"
}

# sizes WHEN NET...: du of each network's directory
sizes() {
    local when=$1 n
    shift
    for n in "$@"; do put "$K.$when.${n}_bytes" "$(du -sb "$(net_dir "$n")" | cut -f1)"; done
    if [ -n "$GARAGE_PID" ]; then # Garage's metadata (SQLite) apart from its data blocks
        put "$K.$when.garage_meta_bytes" "$(du -sb "$GARAGE_DIR/meta" | cut -f1)"
    fi
}

# write_times PHASE NET...: seconds from the start of PHASE (T0) to the last
# file written in each network's directory, and the MB written there since.
write_times() {
    local ph=$1 n d
    shift
    for n in "$@"; do
        d=$(net_dir "$n")
        find "$d" -type f ! -name '*.log' -newermt "@$T0" -printf '%T@ %s\n' >"$LOG/$K.$ph.$n.written" || true
        put "$K.$ph.$n.last_write_s" "$(awk -v t0="$T0" '$1 > m { m = $1 } END { if (m) printf "%.2f", m - t0 }' "$LOG/$K.$ph.$n.written")"
        put "$K.$ph.$n.written_bytes" "$(awk '{ s += $2 } END { print s + 0 }' "$LOG/$K.$ph.$n.written")"
    done
}

# --- restic on an S3 server -----------------------------------------------------
run_restic() { # SERVER (s3s | garage)
    local srv=$1 port key secret
    K=restic.$srv
    if [ "$srv" = s3s ]; then
        start_s3s
        port=$S3S_PORT key=$S3S_KEY secret=$S3S_SECRET
        RESTIC=(restic)
    else
        start_garage
        port=$GARAGE_PORT key=$GARAGE_KEY secret=$GARAGE_SECRET
        RESTIC=(restic -o s3.region=garage)
    fi
    export RESTIC_REPOSITORY=s3:http://127.0.0.1:$port/$BUCKET RESTIC_PASSWORD=bench-passphrase
    export RESTIC_CACHE_DIR=$C/restic-cache AWS_ACCESS_KEY_ID=$key AWS_SECRET_ACCESS_KEY=$secret
    "${RESTIC[@]}" init >"$LOG/$K.init.log" 2>&1 || die "restic init on $srv: $(tail -3 "$LOG/$K.init.log")"
    prep_v1
    phase "$K.full" "${RESTIC[@]}" backup "$SRC"
    sizes after_full "$srv"
    write_times full "$srv"
    prep_v2
    phase "$K.incr" "${RESTIC[@]}" backup "$SRC"
    phase "$K.restore" "${RESTIC[@]}" restore latest --target "$R/restore/$K"
    check_restore "$K" "$R/restore/$K$SRC"
    sizes after_both "$srv"
    rm -rf "$R/restore/$K"
    unset RESTIC_REPOSITORY RESTIC_PASSWORD RESTIC_CACHE_DIR AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY
    stop_servers
}

# --- Cairn -------------------------------------------------------------------------
# cairn_config FILE NET...: a configuration naming these networks
cairn_config() {
    local file=$1 n
    shift
    cat >"$file" <<EOF
data_dir = "$C/cairn-data"

[nats]
url = "nats://127.0.0.1:$NATS_PORT"
prefix = "${RUN_ID}r$REP$CFG_TOKEN"

[postgres]
url = "host=127.0.0.1 port=5432 user=postgres dbname=$PGDB"

[telemetry]
log = "info"

[verify]
# Arweave through arlocal takes ~0.75 s per object (sign, post, mine, one at
# a time): more than the default 300 s for a full backup of this data set.
timeout_secs = 3600
EOF
    for n in "$@"; do
        case $n in
        local) printf '\n[[networks]]\nname = "local"\nkind = "fs"\npath = "%s"\n' "$C/net-local" ;;
        s3s) printf '\n[[networks]]\nname = "s3s"\nkind = "s3"\nendpoint = "http://127.0.0.1:%s"\nbucket = "%s"\naccess_key_id = "%s"\n' \
            "$S3S_PORT" "$BUCKET" "$S3S_KEY" ;;
        garage) printf '\n[[networks]]\nname = "garage"\nkind = "s3"\nendpoint = "http://127.0.0.1:%s"\nregion = "garage"\nbucket = "%s"\naccess_key_id = "%s"\n' \
            "$GARAGE_PORT" "$BUCKET" "$GARAGE_KEY" ;;
        ipfs) printf '\n[[networks]]\nname = "ipfs"\nkind = "ipfs"\nendpoint = "http://127.0.0.1:%s"\nkey_prefix = "bench"\n' "$IPFS_PORT" ;;
        arweave) printf '\n[[networks]]\nname = "arweave"\nkind = "arweave"\nendpoint = "http://127.0.0.1:%s"\nwallet_file = "%s"\nkey_prefix = "bench-%s"\nmine = true\n' \
            "$ARWEAVE_PORT" "$ARWEAVE_WALLET" "$RUN_ID" ;;
        esac
    done >>"$file"
}

backup_field() { jq -r ".$2 // empty" "$LOG/$1.out"; }

# cairn_restore PHASE CONFIG: restore the incremental backup, check it, and
# note which networks the chunks came from.
cairn_restore() {
    local ph=$1 cfg=$2 where
    phase "$K.$ph" "$CAIRN" --config "$cfg" restore "$ID_INCR" --to "$R/restore/$K.$ph" --json
    where=$(find "$R/restore/$K.$ph" -name dump.sql -printf '%h\n' | head -1)
    check_restore "$K.$ph" "${where:-$R/restore/$K.$ph/missing}"
    put "$K.$ph.chunks_from" "$(jq -r '.chunks_from | to_entries | map("\(.key):\(.value)") | join(",")' "$LOG/$K.$ph.out")"
    rm -rf "$R/restore/$K.$ph"
}

run_cairn() { # NET...
    local nets=("$@") n cfg id st
    K=cairn.$CFG_NAME
    CFG_TOKEN=${CFG_NAME//-/_}
    for n in "${nets[@]}"; do
        case $n in s3s) start_s3s ;; garage) start_garage ;; ipfs) start_ipfs ;; arweave) start_arweave ;; esac
    done
    NATS_PORT=$(free_port)
    PGDB="cairn_bench_${RUN_ID}_r${REP}_$CFG_TOKEN" # global: pg_backends reads it
    DBS_MADE+=("$PGDB")
    cfg=$C/cairn.toml
    cairn_config "$cfg" "${nets[@]}"
    # No CAIRN_* or AWS_* from the caller's environment may change the run.
    while read -r v; do unset "$v"; done < <(compgen -e | grep -E '^(CAIRN_|AWS_)' || true)
    export CAIRN_PASSPHRASE=bench-passphrase
    [ -n "$S3S_PID" ] && export CAIRN_S3S_SECRET_ACCESS_KEY=$S3S_SECRET
    [ -n "$GARAGE_PID" ] && export CAIRN_GARAGE_SECRET_ACCESS_KEY=$GARAGE_SECRET

    GOMEMLIMIT=$NATS_GOMEMLIMIT nats-server -a 127.0.0.1 -p "$NATS_PORT" -js -sd "$C/jetstream" >"$LOG/$K.nats-server.log" 2>&1 &
    NATS_PID=$!
    wait_port "$NATS_PORT" "$NATS_PID" nats-server "$LOG/$K.nats-server.log"
    "$CAIRN" --config "$cfg" init --json >"$LOG/$K.init.log" 2>&1 || die "cairn init ($CFG_NAME): $(cat "$LOG/$K.init.log")"

    /usr/bin/time -f '%e %M %U %S' -o "$LOG/$K.serve.time" \
        "$CAIRN" --config "$cfg" serve all >"$LOG/$K.serve.log" 2>&1 &
    SERVE_TIME_PID=$!
    for _ in $(seq 300); do
        SERVE_PID=$(pgrep -P "$SERVE_TIME_PID" || true)
        [ -n "$SERVE_PID" ] && grep -q serving "$LOG/$K.serve.log" && break
        kill -0 "$SERVE_TIME_PID" 2>/dev/null || die "cairn serve stopped: $(tail -5 "$LOG/$K.serve.log")"
        sleep 0.1
    done
    grep -q serving "$LOG/$K.serve.log" || die "cairn serve is not serving after 30 s"

    prep_v1
    phase "$K.full" "$CAIRN" --config "$cfg" backup "$SRC" --json --timeout 3600
    write_times full "${nets[@]}"
    st=$(backup_field "$K.full" status)
    [ "$st" = completed ] || die "cairn full backup ($CFG_NAME) status '$st': $(cat "$LOG/$K.full.out")"
    put "$K.full.bytes_stored" "$(backup_field "$K.full" bytes_stored)"
    sizes after_full "${nets[@]}"
    ledger_times full

    prep_v2
    phase "$K.incr" "$CAIRN" --config "$cfg" backup "$SRC" --json --timeout 3600
    write_times incr "${nets[@]}"
    st=$(backup_field "$K.incr" status)
    [ "$st" = completed ] || die "cairn incremental backup ($CFG_NAME) status '$st': $(cat "$LOG/$K.incr.out")"
    ID_INCR=$(backup_field "$K.incr" backup_id)
    put "$K.incr.bytes_stored" "$(backup_field "$K.incr" bytes_stored)"
    ledger_times incr

    cairn_restore restore "$cfg"
    if [ ${#nets[@]} -gt 1 ]; then
        # The same repository, read through one network only.
        for n in "${nets[@]}"; do
            [ "$n" = local ] && continue
            cairn_config "$C/cairn-$n.toml" "$n"
            cairn_restore "restore_$n" "$C/cairn-$n.toml"
        done
    fi
    sizes after_both "${nets[@]}"
    put "$K.ledger_bytes" "$(psql -X -Atq -d "$PGDB" -c 'select pg_database_size(current_database())')"
    if [ "$REP" = "$REPEAT" ]; then
        timeline "$K.full" "${nets[@]}"
        timeline "$K.incr" "${nets[@]}"
    fi

    kill -TERM "$SERVE_PID"
    wait "$SERVE_TIME_PID" || say "cairn serve exited with status $? on SIGTERM"
    SERVE_PID='' SERVE_TIME_PID=''
    stop_pid "$NATS_PID"
    NATS_PID=''
    stop_servers
    unset CAIRN_S3S_SECRET_ACCESS_KEY CAIRN_GARAGE_SECRET_ACCESS_KEY
    psql -X -q -d postgres -c "drop database if exists $PGDB"
}

# ledger_times PHASE: seconds from T0 to the end of ingest and to the outcome
ledger_times() {
    local ph=$1 id
    id=$(backup_field "$K.$ph" backup_id)
    psql -X -d "$PGDB" -c "select kind, count(*), min(recorded_at), max(recorded_at) from ledger_entries
        where backup_id = '$id' group by kind order by min(recorded_at)" >"$LOG/$K.$ph.ledger-timeline.txt"
    local ingested outcome
    read -r ingested outcome < <(psql -X -Atq -F ' ' -d "$PGDB" -c "select
        extract(epoch from max(recorded_at) filter (where kind = 'backup.ingested')),
        extract(epoch from max(recorded_at) filter (where kind in ('backup.completed', 'backup.degraded', 'backup.failed')))
        from ledger_entries where backup_id = '$id'")
    put "$K.$ph.ingested_s" "$(awk -v a="$ingested" -v t="$T0" 'BEGIN { if (a != "") printf "%.2f", a - t }')"
    put "$K.$ph.outcome_s" "$(awk -v a="$outcome" -v t="$T0" 'BEGIN { if (a != "") printf "%.2f", a - t }')"
    # from the last object written on any network to the outcome: verify
    # reading every object of the backup back from every network
    local lw
    lw=$(awk -F'\t' -v r="$REP" -v p="$K.$ph." '$1 == r && index($2, p) == 1 && $2 ~ /\.last_write_s$/ && $3 > m { m = $3 } END { print m }' "$RAW")
    put "$K.$ph.after_last_write_s" "$(awk -v o="$(last "$K.$ph.outcome_s")" -v l="$lw" 'BEGIN { if (o != "" && l != "") printf "%.2f", o - l }')"
}

# timeline KEY NET...: a backup's CPU per process (every 0.5 s) and MB
# written to each network in that interval, for the results directory.
timeline() {
    local key=$1 n
    shift
    local t0
    t0=$(awk 'NR == 1 { print $1 }' "$LOG/$key.cpu-timeline")
    {
        echo "== $key: $(last "$key.wall") s wall (repetition $REP)"
        echo "   end of ingest at $(last "$key.ingested_s") s, outcome at $(last "$key.outcome_s") s (ledger);"
        echo "   last object written: $(for n in "$@"; do printf '%s %s s  ' "$n" "$(last "$key.$n.last_write_s")"; done)"
        echo "   CPU in % of one core (2 cores = 200%); MB written to each network's directory (file mtimes)"
        printf '   %6s %6s %6s %6s %6s %6s' t serve nats pg s3s-fs garage
        for n in "$@"; do printf ' %9s' "MB:$n"; done
        echo
        for n in "$@"; do cat "$LOG/$key.$n.written"; echo "--"; done |
            awk -v hz="$CLK_TCK" -v nn=$# -v t0="$t0" -v tl="$LOG/$key.cpu-timeline" '
                BEGIN { k = 1 }
                /^--$/ { k++; next }
                { wt[k, ++wn[k]] = $1; ws[k, wn[k]] = $2 }
                END {
                    while ((getline l < tl) > 0) {
                        split(l, f, " ")
                        if (have) {
                            dt = f[1] - p[1]
                            if (dt > 0) {
                                printf "   %6.1f", f[1] - t0
                                for (i = 2; i <= 6; i++) printf " %6.0f", (f[i] - p[i]) / hz / dt * 100
                                for (j = 1; j <= nn; j++) { mb = 0; for (i = 1; i <= wn[j]; i++) if (wt[j, i] > p[1] && wt[j, i] <= f[1]) mb += ws[j, i]; printf " %9.1f", mb / 1e6 }
                                printf "\n"
                            }
                        }
                        for (i = 1; i <= 6; i++) p[i] = f[i]
                        have = 1
                    }
                }'
        echo
    } >>"$WORK/timeline.txt"
}

# --- per-request latency of the servers ------------------------------------------
# probe NAME PORT KEY SECRET REGION: 40 GETs of 700 kB objects with curl,
# over one kept-alive connection and over a fresh connection each: mean ms,
# and how many of the kept-alive ones took over 30 ms. Cairn stores ~1000 objects of up to ~900 KiB per backup of this data
# set, restic ~20 packs of ~16 MiB, so what one request costs matters.
probe() {
    local name=$1 port=$2 key=$3 secret=$4 region=$5 i h e args=()
    e=$(sha256sum </dev/null | cut -d' ' -f1)
    h=$(sha256sum "$C/obj" | cut -d' ' -f1)
    local sig=(--aws-sigv4 "aws:amz:$region:s3" --user "$key:$secret")
    for i in $(seq 40); do
        curl -sf "${sig[@]}" -H "x-amz-content-sha256: $h" -T "$C/obj" "http://127.0.0.1:$port/$BUCKET/probe/o$i" -o /dev/null ||
            die "probe: PUT to $name failed"
        args+=("http://127.0.0.1:$port/$BUCKET/probe/o$i" -o /dev/null)
    done
    curl -sf "${sig[@]}" -H "x-amz-content-sha256: $e" -w '%{time_total}\n' "${args[@]}" >"$LOG/probe-$name.keepalive" ||
        die "probe: GET from $name failed"
    put "probe.$name.keepalive_ms" "$(awk '{ s += $1 } END { printf "%.1f", s / NR * 1000 }' "$LOG/probe-$name.keepalive")"
    put "probe.$name.keepalive_slow" "$(awk '$1 > 0.03 { n++ } END { print n + 0 }' "$LOG/probe-$name.keepalive")"
    put "probe.$name.fresh_ms" "$(for i in $(seq 40); do
        curl -sf "${sig[@]}" -H "x-amz-content-sha256: $e" -w '%{time_total}\n' "http://127.0.0.1:$port/$BUCKET/probe/o$i" -o /dev/null
    done | awk '{ s += $1 } END { printf "%.1f", s / NR * 1000 }')"
    say "probe $name: a GET of 700 kB takes $(last "probe.$name.keepalive_ms") ms on average on a kept-alive connection ($(last "probe.$name.keepalive_slow") of 40 over 30 ms), $(last "probe.$name.fresh_ms") ms on a fresh one"
}
if curl --help all 2>/dev/null | grep -q aws-sigv4; then
    R=$WORK/probe LOG=$WORK/probe/log C=$WORK/probe CFG=probe
    mkdir -p "$LOG"
    head -c 700000 /dev/urandom >"$C/obj"
    start_s3s
    probe s3s "$S3S_PORT" "$S3S_KEY" "$S3S_SECRET" us-east-1
    start_garage
    probe garage "$GARAGE_PORT" "$GARAGE_KEY" "$GARAGE_SECRET" garage
    stop_servers
    [ -n "${BENCH_KEEP:-}" ] || rm -rf "$C"
else
    say "curl without --aws-sigv4: no latency probe"
fi

# --- the run ---------------------------------------------------------------------------
: >"$WORK/timeline.txt"
for REP in $(seq "$REPEAT"); do
    R=$WORK/r$REP LOG=$WORK/r$REP/log
    mkdir -p "$LOG" "$R/restore"
    for CFG in $CONFIGS; do
        say "=== $CFG, run $REP of $REPEAT"
        C=$R/$CFG
        mkdir -p "$C"
        CFG_NAME=${CFG#*-}
        case $CFG in
        restic-s3s) run_restic s3s ;;
        restic-garage) run_restic garage ;;
        cairn-local) run_cairn local ;;
        cairn-s3s) run_cairn s3s ;;
        cairn-garage) run_cairn garage ;;
        cairn-all) run_cairn local s3s garage ;;
        cairn-ipfs) run_cairn ipfs ;;
        cairn-arweave) run_cairn arweave ;;
        esac
        # the next configuration starts from nothing
        [ -n "${BENCH_KEEP:-}" ] || rm -rf "$C"
    done
done
REP=0
TOTAL_MIN=$(awk -v s=$((SECONDS - START_SECONDS)) 'BEGIN { printf "%.1f", s / 60 }')

# --- report --------------------------------------------------------------------------
# vals KEY: the distinct values of KEY over the repetitions, with how often
vals() {
    awk -F'\t' -v k="$1" '$2 == k { if (!c[$3]++) o[n++] = $3 }
        END { for (i = 0; i < n; i++) printf "%s%s (%d×)", (i ? "; " : ""), o[i], c[o[i]] }' "$RAW"
}
cell_wall() { [ -n "$(get "$1.wall")" ] && wall "$1.wall" || echo "–"; }
cell_rate() { rate "$2" "$(get "$1.wall")"; }
# one table row: LABEL then one value per column of COLS
COLS=(cairn.local cairn.s3s restic.s3s cairn.garage restic.garage cairn.all)
row() { # LABEL FUNC SUFFIX [BYTES]
    local label=$1 fn=$2 suf=$3 bytes=${4:-} c out
    out="| $label"
    for c in "${COLS[@]}"; do out+=" | $($fn "$c$suf" "$bytes")"; done
    echo "$out |"
}
f_wall() { cell_wall "$1"; }
f_rate() { cell_rate "$1" "$2"; }
f_mib() { mib "$(get "$1")"; }
f_v() { v "$1"; }
f_mb() { mb "$(get "$1")"; }
# ratio of Cairn to restic on the same server for KEYSUFFIX (median of each)
r2() { ratio "$(get "cairn.$1$2")" "$(get "restic.$1$2")"; }
r2rate() { ratio "$(get "restic.$1$2.wall")" "$(get "cairn.$1$2.wall")"; }
sizes_cell() { # CONFIG WHEN
    local c=$1 when=$2 n out=''
    for n in local s3s garage; do
        [ -n "$(get "$c.$when.${n}_bytes")" ] && out+="${out:+ / }$(mb "$(get "$c.$when.${n}_bytes")")"
    done
    echo "${out:-–}"
}

DATE=$(date -u +%Y-%m-%d)
REPORT=$WORK/report.md
{
    echo "<!-- networks:begin (written by bench/run-networks.sh; edit outside the markers) -->"
    echo "### Results: $DATE, SCALE=$SCALE"
    echo
    echo "- Machine: $(machine)"
    echo "- Versions: cairn ${CAIRN_LABEL:-–}; $(ver restic version); $(ver "$S3S_FS" --version); garage $(ver "$GARAGE" --version | sed 's/^garage //'); nats-server $(ver nats-server --version | sed 's/^nats-server: //'); $(ver psql --version | sed 's/^psql (PostgreSQL) /PostgreSQL /')"
    echo "- Data: v1 $(mb "$V1_BYTES") MB, v2 $(mb "$V2_BYTES") MB (pg_dump $(mb "$DUMP_BYTES") MB, 256 MiB random, 128 MiB duplicate of it); \`diff\` of the two dumps: $V2_DIFF_LINES lines removed or added"
    echo "- Configurations in the order run, each on fresh servers and repositories: $CONFIGS. Each: full backup (v1), incremental (v2), restore (v2, checked byte for byte). Total run: $TOTAL_MIN min; load average (1, 5, 15 min) before: $LOAD_BEFORE, after: $(cut -d' ' -f1-3 /proc/loadavg)."
    echo "- Every figure is the median of $REPEAT repetitions; wall times show the range in brackets. MB = 10^6 bytes; MB/s = size of the version backed up or restored / median wall seconds."
    echo
    echo "| | Cairn → local dir | Cairn → s3s-fs | restic → s3s-fs | Cairn → Garage | restic → Garage | Cairn → all three | Cairn / restic, s3s-fs | Cairn / restic, Garage |"
    echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|"
    for ph in full incr restore; do
        case $ph in full) lab="Full backup (v1)" bytes=$V1_BYTES ;; incr) lab="Incremental (v2)" bytes=$V2_BYTES ;; restore) lab="Restore (v2)" bytes=$V2_BYTES ;; esac
        echo "$(row "$lab: wall s" f_wall ".$ph") $(r2 s3s ".$ph.wall") | $(r2 garage ".$ph.wall") |"
        echo "$(row "$lab: **MB/s**" f_rate ".$ph" "$bytes") **$(r2rate s3s ".$ph")** | **$(r2rate garage ".$ph")** |"
        echo "$(row "$lab: peak RSS MiB, Cairn or restic ¹" f_mib ".$ph.own_rss_kib") $(r2 s3s ".$ph.own_rss_kib") | $(r2 garage ".$ph.own_rss_kib") |"
        echo "$(row "$lab: peak RSS MiB, S3 servers ²" f_mib ".$ph.server_rss_kib") | |"
        echo "$(row "$lab: CPU s, Cairn or restic ³" f_v ".$ph.own_cpu") $(r2 s3s ".$ph.own_cpu") | $(r2 garage ".$ph.own_cpu") |"
        echo "$(row "$lab: CPU s, S3 servers" f_v ".$ph.server_cpu") | |"
        echo "$(row "$lab: cores busy (all CPU / wall)" f_v ".$ph.cores") | |"
    done
    printf '| Repository after the full backup, MB ⁴ |'
    for c in "${COLS[@]}"; do printf ' %s |' "$(sizes_cell "$c" after_full)"; done
    printf ' %s | %s |\n' "$(ratio "$(get cairn.s3s.after_full.s3s_bytes)" "$(get restic.s3s.after_full.s3s_bytes)")" "$(ratio "$(get cairn.garage.after_full.garage_bytes)" "$(get restic.garage.after_full.garage_bytes)")"
    printf '| **Repository after both backups, MB** ⁴ |'
    for c in "${COLS[@]}"; do printf ' %s |' "$(sizes_cell "$c" after_both)"; done
    printf ' %s | %s |\n' "$(ratio "$(get cairn.s3s.after_both.s3s_bytes)" "$(get restic.s3s.after_both.s3s_bytes)")" "$(ratio "$(get cairn.garage.after_both.garage_bytes)" "$(get restic.garage.after_both.garage_bytes)")"
    echo
    echo "¹ Cairn's backups: the \`cairn backup\` client + \`cairn serve all\` + its private nats-server (peaks since they started,"
    echo "PostgreSQL not counted); Cairn's restore and restic: the client alone."
    echo "² s3s-fs and/or Garage, peak since they started (fresh for every configuration)."
    echo "³ Cairn: client + serve + nats-server + this run's PostgreSQL backends during the phase."
    echo "⁴ \`du -sb\` of what each network holds: the fs network's directory, s3s-fs's root directory, Garage's metadata and"
    echo "data directories. \"all three\": local / s3s-fs / Garage. Of Garage's figure, its metadata directory (SQLite) after both"
    echo "backups: Cairn $(mb "$(get cairn.garage.after_both.garage_meta_bytes)") MB, restic $(mb "$(get restic.garage.after_both.garage_meta_bytes)") MB."
    echo
    if [[ " $CONFIGS " == *" cairn-all "* ]]; then
        echo "Restore of the three-network repository, through each network:"
        echo
        echo "| restore (v2) from | wall s | MB/s | client peak RSS MiB | client CPU s | server CPU s | chunks read from |"
        echo "|---|---:|---:|---:|---:|---:|---|"
        for ph in restore restore_s3s restore_garage; do
            case $ph in restore) lab="all three configured (fastest first)" ;; restore_s3s) lab="s3s-fs alone (a config naming only it)" ;; restore_garage) lab="Garage alone (a config naming only it)" ;; esac
            echo "| $lab | $(cell_wall cairn.all.$ph) | $(cell_rate cairn.all.$ph "$V2_BYTES") | $(mib "$(get cairn.all.$ph.rss_kib)") | $(v cairn.all.$ph.cpu) | $(v cairn.all.$ph.server_cpu) | $(vals cairn.all.$ph.chunks_from) |"
        done
        echo
    fi
    if [[ " $CONFIGS " == *" cairn-ipfs "* || " $CONFIGS " == *" cairn-arweave "* ]]; then
        echo "Cairn to an IPFS node (js-ipfs 0.66.1, Kubo RPC API) and to an Arweave gateway (arlocal, mining after each"
        echo "post, one post at a time), with Cairn to the local directory again for scale (no restic: it speaks neither):"
        echo
        echo "| | Cairn → local dir | Cairn → IPFS | Cairn → Arweave |"
        echo "|---|---:|---:|---:|"
        for ph in full incr restore; do
            case $ph in full) lab="Full backup (v1)" bytes=$V1_BYTES ;; incr) lab="Incremental (v2)" bytes=$V2_BYTES ;; restore) lab="Restore (v2)" bytes=$V2_BYTES ;; esac
            echo "| $lab: wall s | $(cell_wall cairn.local.$ph) | $(cell_wall cairn.ipfs.$ph) | $(cell_wall cairn.arweave.$ph) |"
            echo "| $lab: **MB/s** | $(cell_rate cairn.local.$ph "$bytes") | $(cell_rate cairn.ipfs.$ph "$bytes") | $(cell_rate cairn.arweave.$ph "$bytes") |"
            echo "| $lab: CPU s, Cairn | $(v cairn.local.$ph.own_cpu) | $(v cairn.ipfs.$ph.own_cpu) | $(v cairn.arweave.$ph.own_cpu) |"
            echo "| $lab: CPU s, the node | – | $(v cairn.ipfs.$ph.node_cpu) | $(v cairn.arweave.$ph.node_cpu) |"
        done
        echo "| Repository after both backups, MB (the node's whole data directory) | $(mb "$(get cairn.local.after_both.local_bytes)") | $(mb "$(get cairn.ipfs.after_both.ipfs_bytes)") | $(mb "$(get cairn.arweave.after_both.arweave_bytes)") |"
        echo
    fi
    echo "Where a Cairn backup's time goes, per configuration (medians; seconds from the start of \`cairn backup\`):"
    echo
    echo "| | full: local | full: s3s-fs | full: Garage | full: all three | incr: local | incr: s3s-fs | incr: Garage | incr: all three |"
    echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|"
    dt_row() { # LABEL FUNC SUFFIX
        local out="| $1" ph c
        for ph in full incr; do for c in local s3s garage all; do out+=" | $($2 "cairn.$c.$ph$3")"; done; done
        echo "$out |"
    }
    lw() { # the last write to each network, for the all-three configuration
        local k=$1 c=${1#cairn.} n out=''
        c=${c%%.*}
        if [ "$c" = all ]; then
            for n in local s3s garage; do out+="${out:+ / }$(v "$k.$n.last_write_s")"; done
        else
            out=$(v "$k.$c.last_write_s")
        fi
        echo "$out"
    }
    dt_row "wall s" f_v ".wall"
    dt_row "end of ingest (ledger)" f_v ".ingested_s"
    dt_row "last object written to the network (all three: local / s3s-fs / Garage)" lw ""
    dt_row "outcome recorded (ledger)" f_v ".outcome_s"
    dt_row "from the last write to the outcome (verify reading back)" f_v ".after_last_write_s"
    dt_row "CPU s: serve (ingest, encrypt, store, verify, ledger)" f_v ".serve_cpu"
    dt_row "CPU s: nats-server" f_v ".nats_cpu"
    dt_row "CPU s: PostgreSQL backends" f_v ".pg_cpu"
    dt_row "CPU s: s3s-fs" f_v ".s3s_cpu"
    dt_row "CPU s: Garage" f_v ".garage_cpu"
    dt_row "CPU s: everything" f_v ".all_cpu"
    dt_row "cores busy on average (of 2)" f_v ".cores"
    dt_row "\`cairn serve all\` peak RSS so far, MiB" f_mib ".serve_hwm_kib"
    dt_row "nats-server peak RSS so far, MiB" f_mib ".nats_hwm_kib"
    dt_row "\`bytes_stored\` reported, MB" f_mb ".bytes_stored"
    echo
    if [ -n "$(get cairn.all.full.wall)" ] && [ -n "$(get cairn.local.full.wall)" ] && [ -n "$(get cairn.s3s.full.wall)" ] && [ -n "$(get cairn.garage.full.wall)" ]; then
        for ph in full incr; do
            echo "- ${ph/incr/incremental}: one backup to all three networks $(v cairn.all.$ph.wall) s; the slowest single network" \
                "$(printf '%s\n' "$(get cairn.local.$ph.wall) local" "$(get cairn.s3s.$ph.wall) s3s-fs" "$(get cairn.garage.$ph.wall) Garage" | sort -g | tail -1 | awk '{ printf "%.2f s (%s)", $1, $2 }')," \
                "the three single-network backups one after another $(sum "$(get cairn.local.$ph.wall)" "$(get cairn.s3s.$ph.wall)" "$(get cairn.garage.$ph.wall)") s."
        done
        echo
    fi
    if [ -n "$(get probe.s3s.keepalive_ms)" ]; then
        echo "- One request: 40 GETs of 700 kB objects with curl (before the repetitions) take on average $(get probe.s3s.keepalive_ms) ms on s3s-fs" \
            "($(get probe.s3s.keepalive_slow) of them over 30 ms) and $(get probe.garage.keepalive_ms) ms on Garage ($(get probe.garage.keepalive_slow) over 30 ms)" \
            "over one kept-alive connection; $(get probe.s3s.fresh_ms) and $(get probe.garage.fresh_ms) ms with a fresh connection each."
        echo
    fi
    echo "The CPU and write timelines of the Cairn backups (last repetition) are in"
    echo "[bench/results/$DATE-s$SCALE-networks-timeline.txt](bench/results/$DATE-s$SCALE-networks-timeline.txt)."
    echo "<!-- networks:end -->"
} >"$REPORT"

mkdir -p "$HERE/results"
cp "$RAW" "$HERE/results/$DATE-s$SCALE-networks.tsv"
cp "$REPORT" "$HERE/results/$DATE-s$SCALE-networks.md"
cp "$WORK/timeline.txt" "$HERE/results/$DATE-s$SCALE-networks-timeline.txt"
splice "$OUT" "$REPORT" '<!-- networks:begin' '<!-- networks:end -->'
cat "$REPORT"
say "done in $TOTAL_MIN min; results in $OUT and bench/results/$DATE-s$SCALE-networks{.md,.tsv,-timeline.txt}"
