#!/usr/bin/env bash
# Start an IPFS Pinning Service API server on 127.0.0.1:PORT that accepts the
# bearer token TOKEN, in the foreground (exec: this script's PID is the
# server's). State is in memory: a restart starts empty.
#
#   scripts/servers/pinning/start.sh PORT TOKEN
#
# Installs it first if needed (install.sh). Prints
#   {"ready":true,"host":"127.0.0.1","port":PORT,"pid":PID}
# on stdout once it listens; PORT 0 picks a free port (read it from that line).
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
[ $# -eq 2 ] || { echo "usage: $0 PORT TOKEN" >&2; exit 2; }
cache=$("$here/install.sh")
export NODE_PATH="$cache/node_modules"
exec node "$here/start.js" "$@"
