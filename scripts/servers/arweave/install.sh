#!/usr/bin/env bash
# Install arlocal 1.1.66 (a local Arweave gateway) and the reference JS client
# arweave 1.15.7 into a cache directory outside the repository, from the npm
# registry. Idempotent: does nothing when the cache already holds exactly the
# packages pinned by package.json + package-lock.json next to this script.
#
#   scripts/servers/arweave/install.sh [CACHE_DIR]
#
# CACHE_DIR defaults to $CAIRN_ARWEAVE_DIR, else $HOME/.cache/cairn-servers/arweave.
# Prints the cache directory on stdout (everything else goes to stderr).
# Needs node (>= 18) and npm; sqlite3 is compiled from source the first time
# (~1.5 min; needs python3, make, g++).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
dir=${1:-${CAIRN_ARWEAVE_DIR:-$HOME/.cache/cairn-servers/arweave}}

command -v node >/dev/null || { echo "error: node is not installed (Debian: apt-get install nodejs npm)" >&2; exit 1; }
command -v npm >/dev/null || { echo "error: npm is not installed (Debian: apt-get install npm)" >&2; exit 1; }

mkdir -p "$(dirname "$dir")"
# Tests that start servers in parallel may all call this at once: one installs.
if command -v flock >/dev/null; then
  exec 9>"$dir.lock"
  flock 9
fi

want=$(cat "$here/package.json" "$here/package-lock.json" | sha256sum | cut -d' ' -f1)
stamp="$dir/.cairn-installed"
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] \
   && [ -f "$dir/node_modules/arlocal/bin/app.js" ] \
   && [ -f "$dir/node_modules/sqlite3/build/Release/node_sqlite3.node" ] \
   && [ -f "$dir/node_modules/arweave/package.json" ]; then
  echo "$dir"
  exit 0
fi

mkdir -p "$dir"
cp "$here/package.json" "$here/package-lock.json" "$dir/"
echo "==> installing arlocal 1.1.66 + arweave 1.15.7 into $dir (sqlite3 builds from source, ~1.5 min)" >&2
# sqlite3 would first try to download a prebuilt binary from outside the npm
# registry (unreachable here): build it from source straight away. node-gyp
# needs Node's headers: use the distribution's (Debian: /usr/include/node)
# rather than downloading them.
export npm_config_build_from_source=true
if [ -z "${npm_config_nodedir:-}" ] && [ -f /usr/include/node/node.h ]; then
  export npm_config_nodedir=/usr
fi
( cd "$dir" && npm ci --no-audit --no-fund --loglevel=error >&2 )
node -e 'require(process.argv[1] + "/node_modules/sqlite3")' "$dir" \
  || { echo "error: sqlite3 native module does not load in $dir" >&2; exit 1; }
echo "$want" > "$stamp"
echo "$dir"
