#!/usr/bin/env bash
# wait.sh API_PORT [SECONDS] [DIR] — wait until the IPFS node started by
# start.sh answers POST /api/v0/id on 127.0.0.1:API_PORT (default: up to 30 s).
# With DIR, also require that the node answering is the one whose repo is DIR
# (its peer ID), not some other process on that port.
set -euo pipefail
PORT=${1:?usage: $0 API_PORT [SECONDS] [DIR]}
LIMIT=${2:-30}
DIR=${3:-}
want=
end=$((SECONDS + LIMIT))
if [ -n "$DIR" ]; then
  # `jsipfs init` writes the config; on a machine busy with other tests it
  # can take well over the ~2 s it takes alone.
  while [ ! -s "$DIR/config" ] && [ $SECONDS -lt "$end" ]; do sleep 0.1; done
  [ -s "$DIR/config" ] || { echo "no IPFS repo in $DIR within ${LIMIT}s (jsipfs init)" >&2; exit 1; }
  want=$(node -p "JSON.parse(require('fs').readFileSync(process.argv[1],'utf8')).Identity.PeerID" "$DIR/config")
fi
while [ $SECONDS -lt "$end" ]; do
  if out=$(curl -fsS -m 2 -X POST "http://127.0.0.1:$PORT/api/v0/id" 2>/dev/null); then
    case $out in *"\"ID\":\"$want"*) exit 0;; esac
    echo "127.0.0.1:$PORT answers as another node, not the one in $DIR" >&2; exit 1
  fi
  sleep 0.1
done
echo "IPFS node on 127.0.0.1:$PORT did not answer /api/v0/id within ${LIMIT}s" >&2
exit 1
