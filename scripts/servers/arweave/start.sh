#!/usr/bin/env bash
# Start arlocal (local Arweave gateway) on 127.0.0.1:PORT with its data in DIR,
# in the foreground (exec: the PID of this script is the PID of the server, so
# a test can stop it with kill PID).
#
#   scripts/servers/arweave/start.sh DIR PORT [--persist]
#
# Installs arlocal first if needed (install.sh; once, ~1 min). Prints
#   {"ready":true,"host":"127.0.0.1","port":PORT,"pid":PID,"db":"DIR/db"}
# on stdout when GET /info answers. PORT 0 picks a free port (read it from
# that line). Set CAIRN_ARWEAVE_DIR to use another install directory.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
[ $# -ge 2 ] || { echo "usage: $0 DIR PORT [--persist]" >&2; exit 2; }
cache=$("$here/install.sh")
export NODE_PATH="$cache/node_modules"
exec node "$here/start.js" "$@"
