#!/usr/bin/env bash
# Cairn's main job, end to end, on a fresh Debian machine or a developer's:
# installs and starts what is missing (nats-server with JetStream, PostgreSQL
# server and client tools), builds Cairn, starts every stage, backs up a
# sample PostgreSQL database and a directory, restores both, and shows that
# they match.
#
# Everything it creates lives under ./cairn-demo (data, config, logs) and the
# NATS prefix `demo`; run it again at will. The passphrase is generated once
# into ./cairn-demo/passphrase unless CAIRN_PASSPHRASE is set.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
ensure_nats
ensure_postgres
ensure_rust

say "building cairn (release)"
cargo build --release -p cairn --quiet
CAIRN="$CARGO_TARGET_DIR/release/cairn"

DEMO="$PWD/cairn-demo"
mkdir -p "$DEMO"
if [ -z "${CAIRN_PASSPHRASE:-}" ]; then
  [ -f "$DEMO/passphrase" ] || (umask 077; head -c 24 /dev/urandom | base64 > "$DEMO/passphrase")
  export CAIRN_KEYS__PASSPHRASE_FILE="$DEMO/passphrase"
fi
cat > "$DEMO/cairn.toml" <<TOML
data_dir = "$DEMO/data"
[nats]
prefix = "demo"
[postgres]
url = "host=127.0.0.1 port=5432 user=postgres dbname=cairn_demo"
TOML
export CAIRN_CONFIG="$DEMO/cairn.toml"

if [ ! -f "$DEMO/data/networks/local/config" ]; then
  say "initialising the repository"
  "$CAIRN" init
fi

say "starting every stage (cairn serve all; log: cairn-demo/serve.log)"
"$CAIRN" serve all > "$DEMO/serve.log" 2>&1 &
SERVE=$!
trap 'kill $SERVE 2>/dev/null || true' EXIT
sleep 1
kill -0 $SERVE 2>/dev/null || { cat "$DEMO/serve.log"; die "cairn serve did not start"; }

export PGOPTIONS="--client-min-messages=warning"
P="psql -h 127.0.0.1 -U postgres -qAt"
say "creating the sample database cairn_demo_app"
$P -d postgres -c "DROP DATABASE IF EXISTS cairn_demo_app WITH (FORCE)" -c "CREATE DATABASE cairn_demo_app"
$P -d cairn_demo_app -c "
  CREATE TABLE accounts (id int PRIMARY KEY, owner text NOT NULL, balance numeric NOT NULL);
  INSERT INTO accounts SELECT g, 'owner-' || g, round((g * 37 % 10007) / 3.0, 2) FROM generate_series(1, 200000) g;
  CREATE TABLE events (id bigserial PRIMARY KEY, account int REFERENCES accounts, note text);
  INSERT INTO events (account, note) SELECT 1 + g % 200000, md5(g::text) FROM generate_series(1, 100000) g;"

say "backing up the database"
"$CAIRN" backup --postgres "postgresql://postgres@127.0.0.1:5432/cairn_demo_app" --tag demo
DB_ID=$("$CAIRN" list --dataset cairn_demo_app --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["backups"][0]["backup_id"])')

say "backing up a directory (this project's sources)"
SRC="$PWD/services"
"$CAIRN" backup "$SRC" --dataset demo-sources --tag demo
DIR_ID=$("$CAIRN" list --dataset demo-sources --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["backups"][0]["backup_id"])')

say "restoring the database into cairn_demo_restored"
$P -d postgres -c "DROP DATABASE IF EXISTS cairn_demo_restored WITH (FORCE)" -c "CREATE DATABASE cairn_demo_restored"
"$CAIRN" restore "$DB_ID" --to-postgres "postgresql://postgres@127.0.0.1:5432/cairn_demo_restored"
SUM="SELECT md5(string_agg(id::text || owner || balance::text, ',' ORDER BY id)) || ':' || (SELECT md5(string_agg(id::text || account::text || note, ',' ORDER BY id)) FROM events) FROM accounts"
A=$($P -d cairn_demo_app -c "$SUM"); B=$($P -d cairn_demo_restored -c "$SUM")
[ "$A" = "$B" ] || die "restored database differs: $A vs $B"
echo "database restored and identical (checksum $A)"

say "restoring the directory into cairn-demo/restored"
rm -rf "$DEMO/restored"
"$CAIRN" restore "$DIR_ID" --to "$DEMO/restored"
diff -r "$SRC" "$DEMO/restored/services" >/dev/null || die "restored directory differs from $SRC"
echo "directory restored and identical ($(find "$SRC" -type f | wc -l) files)"

say "backups and the audit ledger"
"$CAIRN" list --tag demo
"$CAIRN" audit verify
cat <<MSG

Done. Both restores match their sources. To keep using this demo:
  export CAIRN_CONFIG=$DEMO/cairn.toml CAIRN_KEYS__PASSPHRASE_FILE=$DEMO/passphrase
  $CAIRN serve all &      # the stage workers
  $CAIRN backup PATH...   # then list, show, restore, forget, audit verify
MSG
