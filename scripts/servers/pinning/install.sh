#!/usr/bin/env bash
# Install an IPFS Pinning Service API server for Cairn's tests
# (mock-ipfs-pinning-service 0.4.2 from the npm registry: ipfs-shipyard's
# in-memory implementation of the spec, validating every request against the
# spec's OpenAPI document; Kubo's own `pin remote` tests run against it) into
# a cache directory outside the repository. Idempotent: does nothing when the
# cache holds exactly what package.json + package-lock.json here pin.
#
#   scripts/servers/pinning/install.sh        # prints the cache directory
#
# Cache: $CAIRN_PINNING_DIR, else $HOME/.cache/cairn-servers/pinning.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
dir=${CAIRN_PINNING_DIR:-$HOME/.cache/cairn-servers/pinning}

command -v node >/dev/null && command -v npm >/dev/null \
  || { echo "error: node and npm are needed (Debian: apt-get install nodejs npm)" >&2; exit 1; }

mkdir -p "$(dirname "$dir")"
# Tests that start servers in parallel may all call this at once: one installs.
exec 9>"$dir.lock"
flock 9

want=$(cat "$here/package.json" "$here/package-lock.json" | sha256sum | cut -d' ' -f1)
stamp="$dir/.cairn-installed"
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] \
   && [ -f "$dir/node_modules/mock-ipfs-pinning-service/index.js" ]; then
  echo "$dir"
  exit 0
fi

mkdir -p "$dir"
cp "$here/package.json" "$here/package-lock.json" "$dir/"
echo "==> installing an IPFS Pinning Service API server into $dir (npm, ~20 s once)" >&2
( cd "$dir" && NO_UPDATE_NOTIFIER=1 npm ci --ignore-scripts --no-audit --no-fund --loglevel=error >&2 )
echo "$want" > "$stamp"
echo "$dir"
