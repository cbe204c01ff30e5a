#!/usr/bin/env bash
# A/B of two Cairn binaries on one machine: full backups of the same data
# set with bench/profile-cairn.sh (NO_PERF=1), alternating A and B, RUNS
# times each; prints one line per run (wall and CPU-seconds of serve, the
# private nats-server and this run's PostgreSQL backends, from the
# profile's /proc timeline) and the medians.
#
# Usage: bench/ab.sh A_BIN B_BIN DATA_DIR [RUNS]   (DATA_DIR from
# bench/make-dataset.sh or bench/make-smallfiles.sh; RUNS default 3)
set -euo pipefail
A=${1:?usage: ab.sh A_BIN B_BIN DATA_DIR [RUNS]}
B=${2:?usage: ab.sh A_BIN B_BIN DATA_DIR [RUNS]}
DATA=${3:?usage: ab.sh A_BIN B_BIN DATA_DIR [RUNS]}
RUNS=${4:-3}
here=$(cd "$(dirname "$0")" && pwd)

one() { # BIN LABEL RUN -> "label run wall W serve S nats N pg P total T"
    local out
    out=$(NO_PERF=1 CAIRN_BIN="$1" "$here/profile-cairn.sh" "$DATA")
    echo "$out" | grep -q ': completed,' || { echo "$out" | head -5 >&2; echo "backup did not complete" >&2; exit 1; }
    echo "$out" | awk -v label="$2" -v run="$3" '
        /^== backup / { for (i = 1; i <= NF; i++) if ($i == "s" && $(i + 1) ~ /^wall/) wall = $(i - 1) }
        /^  +[0-9.]+ +[0-9]+ +[0-9]+ +[0-9]+ +[0-9.]+$/ {
            dt = (seen ? $1 - t : 0.25); t = $1; seen = 1
            s += $2 / 100 * dt; n += $3 / 100 * dt; g += $4 / 100 * dt }
        END { printf "%s %s wall %.2f serve %.2f nats %.2f pg %.2f total %.2f\n", label, run, wall, s, n, g, s + n + g }'
}

results=$(mktemp)
for r in $(seq "$RUNS"); do
    one "$A" A "$r" | tee -a "$results"
    one "$B" B "$r" | tee -a "$results"
done
for l in A B; do
    awk -v l="$l" '$1 == l { w[++k] = $4; c[k] = $12 }
        END { n = asort(w); asort(c); m = int((n + 1) / 2); printf "median %s: wall %.2f s, CPU %.2f s (%d runs)\n", l, w[m], c[m], n }' "$results"
done
rm -f "$results"
