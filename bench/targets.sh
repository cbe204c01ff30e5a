#!/usr/bin/env bash
# Every figure issue 11's targets ask for, in one command:
#
#   1. restic, borg, rustic and Cairn on both shapes (bench/run.sh SCALE,
#      BENCH_REPEAT repetitions): throughput, CPU, repository size and peak
#      memory against the fastest peer of each phase; written into
#      BENCHMARKS.md between the results markers.
#   2. Scaling, Cairn alone, one repetition of each shape: everything pinned
#      to one core (taskset -c 0; PostgreSQL's backends are not pinned), on
#      both cores, on both cores with a second encrypt and store replica
#      (`cairn serve encrypt store` beside `serve all`), and with that second
#      replica on a spare core (everything else pinned to CPU 0, it to CPU 1).
#   3. Peak memory on a large source: Cairn alone, BENCH_BIG_GIB (default 10)
#      files of 1 GiB of random bytes, restored to disk.
#
# Every run's report is kept in bench/results/<date>-<shape>-<commit>-<label>.md
# (.tsv beside it); this script ends with a summary of parts 2 and 3.
#
# Usage: bench/targets.sh [SCALE]        (default 30; about 35 minutes on two
# cores once rustic is built, plus its one build, ~17 minutes)
# Environment: as bench/run.sh (BENCH_REPEAT, BENCH_SMALL_FILES, BENCH_BIG_GIB,
# BENCH_REV, ...); TARGETS_PARTS="peers scaling big" picks parts.
set -euo pipefail
SCALE=${1:-30}
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
PARTS=${TARGETS_PARTS:-peers scaling big}
SCRATCH=$(mktemp -d /tmp/cairn-targets.XXXXXX)
trap 'rm -rf "$SCRATCH"' EXIT
say() { printf '\n\033[1m==> %s\033[0m\n' "$*" >&2; }
has() { [[ " $PARTS " == *" $1 "* ]]; }

# Data sets made by the first run and shared by the others (each run copies
# its source).
export BENCH_DATA=$SCRATCH/dump BENCH_SMALL_DATA=$SCRATCH/small

if has peers; then
    say "1/3: four tools, both shapes"
    bash "$HERE/run.sh" "$SCALE"
fi
# Later runs reuse the binary the first one built.
export BENCH_NO_BUILD=${BENCH_NO_BUILD:-$(has peers && echo 1 || true)}

scaling_run() { # label, then the command's prefix
    local label=$1
    shift
    BENCH_TOOLS=cairn BENCH_REPEAT=1 BENCH_LABEL=$label BENCH_OUT=$SCRATCH/$label.md \
        "$@" bash "$HERE/run.sh" "$SCALE"
}
if has scaling; then
    say "2/3: scaling (Cairn alone): one core, two cores, a second encrypt and store"
    scaling_run one-core taskset -c 0
    export BENCH_NO_BUILD=1
    scaling_run two-cores env
    BENCH_EXTRA_SERVE="encrypt store" scaling_run replica env
    # A host with a spare core: the first replica and everything else on
    # CPU 0, the second encrypt and store on CPU 1 (against one-core).
    BENCH_EXTRA_SERVE="encrypt store" BENCH_EXTRA_CPU=1 scaling_run spare-core taskset -c 0
fi
if has big; then
    say "3/3: ${BENCH_BIG_GIB:-10} GiB of random files (Cairn alone, restored to disk)"
    BENCH_TOOLS=cairn BENCH_SHAPES=big BENCH_REPEAT=1 BENCH_LABEL=big \
        BENCH_OUT=$SCRATCH/big.md bash "$HERE/run.sh" "$SCALE"
    export BENCH_NO_BUILD=1
fi

# --- summary of parts 2 and 3, from the runs' result files -----------------
newest() { ls -t "$HERE"/results/*-"$1"-*"$2".tsv 2>/dev/null | head -1; }
val() { awk -v k="$2" '$2 == k { print $3; exit }' "$1"; }
if has scaling; then
    echo
    echo "Scaling, Cairn's full backup (wall s; CPU-s of every Cairn process, nats-server and PostgreSQL in brackets):"
    echo
    echo "| shape | one core | two cores | two cores, second encrypt and store |"
    echo "|---|---:|---:|---:|"
    for shape in s$SCALE small${BENCH_SMALL_FILES:-30000}; do
        row="| $shape"
        for label in one-core two-cores replica; do
            f=$(newest "$shape" "$label")
            if [ -n "$f" ]; then
                row="$row | $(val "$f" cairn.full.wall) ($(val "$f" cairn.full.total_cpu))"
            else
                row="$row | (missing)"
            fi
        done
        echo "$row |"
    done
fi
if has big; then
    f=$(newest "big${BENCH_BIG_GIB:-10}g" big)
    if [ -n "$f" ]; then
        echo
        echo "Large source (${BENCH_BIG_GIB:-10} GiB): full backup $(val "$f" cairn.full.wall) s on $(val "$f" cairn.full.total_cpu) CPU-s;" \
            "peak RSS (KiB): serve $(val "$f" cairn.serve_hwm_kib), nats-server $(val "$f" cairn.nats_hwm_kib)," \
            "client backing up $(val "$f" cairn.full.rss_kib), restoring $(val "$f" cairn.restore.rss_kib); restore $(val "$f" cairn.restore.wall) s"
    fi
fi
