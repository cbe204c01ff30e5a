#!/usr/bin/env bash
# Build the benchmark data set in two versions:
#
#   DIR/v1/dump.sql         pg_dump (plain SQL) of a database initialised by
#                           `pgbench -i -s SCALE` (compressible, realistic)
#   DIR/v1/random.bin       256 MiB from /dev/urandom (incompressible)
#   DIR/v1/random-copy.bin  the first 128 MiB of random.bin (deduplicable)
#   DIR/v2/...              the same, except that the dump is taken after
#                           about 1% of the pgbench_accounts rows were updated
#
# Usage: bench/make-dataset.sh DIR [SCALE]      (SCALE defaults to 30)
#
# Needs psql, pgbench and pg_dump, and PostgreSQL on 127.0.0.1:5432 reachable
# as user postgres without a password (override with PGHOST/PGPORT/PGUSER).
# The scratch database is private to this run and dropped at the end.
set -euo pipefail

DIR=${1:?usage: make-dataset.sh DIR [SCALE]}
SCALE=${2:-30}
case $SCALE in '' | *[!0-9]*) echo "make-dataset: SCALE must be a positive integer, got '$SCALE'" >&2; exit 2 ;; esac

export PGHOST=${PGHOST:-127.0.0.1} PGPORT=${PGPORT:-5432} PGUSER=${PGUSER:-postgres}
export PGOPTIONS="${PGOPTIONS:-} -c client_min_messages=warning"
# A name no other tool or concurrent run uses.
DB="cairn_benchdata_s${SCALE}_$$"

psql_q() { psql -X -q -v ON_ERROR_STOP=1 "$@"; }
cleanup() { psql_q -d postgres -c "drop database if exists $DB" >/dev/null 2>&1 || true; }
trap cleanup EXIT

mkdir -p "$DIR/v1" "$DIR/v2"

echo "make-dataset: pgbench -i -s $SCALE into $DB" >&2
psql_q -d postgres -c "drop database if exists $DB" -c "create database $DB"
pgbench -i -q -s "$SCALE" "$DB" >/dev/null 2>&1

echo "make-dataset: v1" >&2
pg_dump -Fp "$DB" >"$DIR/v1/dump.sql"
head -c $((256 * 1024 * 1024)) /dev/urandom >"$DIR/v1/random.bin"
head -c $((128 * 1024 * 1024)) "$DIR/v1/random.bin" >"$DIR/v1/random-copy.bin"

echo "make-dataset: v2 (every 100th account updated)" >&2
psql_q -d "$DB" -c "update pgbench_accounts set abalance = abalance + 1 where aid % 100 = 0"
pg_dump -Fp "$DB" >"$DIR/v2/dump.sql"
cp "$DIR/v1/random.bin" "$DIR/v1/random-copy.bin" "$DIR/v2/"

du -sb "$DIR/v1" "$DIR/v2" >&2
