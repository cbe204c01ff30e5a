#!/usr/bin/env bash
# start.sh DIR API_PORT — run a local IPFS node (js-ipfs 0.66.1, Kubo-compatible
# RPC API at http://127.0.0.1:API_PORT/api/v0/...) for Cairn's tests.
#
# - Initialises an IPFS repo in DIR on first use (`jsipfs init --profile=test`).
# - Binds everything to 127.0.0.1: the RPC API on API_PORT; Gateway, gRPC
#   ("RPC") and the libp2p swarm on ports the kernel picks (tcp/0), so they
#   never collide. No traffic leaves the machine: no bootstrap peers, no MDNS,
#   no DHT, no relay, no delegates, no preload, no NAT port mapping, no pubsub,
#   no npm update check.
# - Runs the daemon in the foreground with `exec`: the PID of this script is
#   the PID of the node; kill it (SIGTERM shuts down cleanly) to stop it.
# - Ready when `curl -X POST http://127.0.0.1:API_PORT/api/v0/id` answers 200
#   with this repo's peer ID (wait.sh API_PORT SECONDS DIR checks both):
#   ~6 s on first start (init), ~4 s on a restart.
#
# Installs js-ipfs first if needed (install.sh; $CAIRN_IPFS_HOME, default
# $HOME/.cache/cairn-servers/ipfs). See docs/servers/ipfs.md.
set -euo pipefail

[ $# -eq 2 ] || { echo "usage: $0 DIR API_PORT" >&2; exit 2; }
DIR=$1
API_PORT=$2
case $API_PORT in ''|*[!0-9]*) echo "API_PORT must be a number" >&2; exit 2;; esac

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
HOME_DIR=${CAIRN_IPFS_HOME:-$HOME/.cache/cairn-servers/ipfs}
export CAIRN_IPFS_HOME=$HOME_DIR
"$HERE/install.sh"

JSIPFS=$HOME_DIR/node_modules/.bin/jsipfs
export IPFS_PATH=$DIR
export NODE_OPTIONS="--require $HOME_DIR/polyfill.cjs${NODE_OPTIONS:+ $NODE_OPTIONS}"
export NO_UPDATE_NOTIFIER=1   # the CLI would otherwise ask the npm registry for updates

# js-ipfs does not exit when it cannot bind its API port (it prints
# EADDRINUSE and stays up without an API), so refuse a taken port here.
node -e "require('net').createServer().once('error',e=>{console.error('API port $API_PORT: '+e.code);process.exit(1)}).listen($API_PORT,'127.0.0.1',function(){this.close()})" \
  || { echo "127.0.0.1:$API_PORT is not free" >&2; exit 1; }

mkdir -p "$DIR"

# A daemon killed with SIGKILL leaves DIR/repo.lock behind, and js-ipfs
# refuses to start for 20 s (until the lock goes stale). When the daemon that
# last ran on DIR (its PID is in DIR/daemon.pid) is gone, drop its lock.
if [ -e "$DIR/repo.lock" ]; then
  old=$(cat "$DIR/daemon.pid" 2>/dev/null || true)
  if [ -n "$old" ] && kill -0 "$old" 2>/dev/null \
     && tr '\0' ' ' <"/proc/$old/cmdline" 2>/dev/null | grep -q ipfs; then
    echo "an IPFS daemon (PID $old) is already running on $DIR" >&2; exit 1
  fi
  rm -rf "$DIR/repo.lock" "$DIR/api"
fi
echo $$ >"$DIR/daemon.pid"   # exec keeps this PID

if [ ! -f "$DIR/config" ]; then
  "$JSIPFS" init --profile=test --empty-repo >"$DIR/init.log" 2>&1 \
    || { cat "$DIR/init.log" >&2; exit 1; }
fi

# (Re)write the addresses and the no-network settings on every start, so a
# repo can be restarted on another API port.
node - "$DIR/config" "$API_PORT" <<'EOF'
const fs = require('fs')
const [file, port] = process.argv.slice(2)
const c = JSON.parse(fs.readFileSync(file, 'utf8'))
c.Addresses = {
  ...c.Addresses,
  API: `/ip4/127.0.0.1/tcp/${port}`,
  Gateway: '/ip4/127.0.0.1/tcp/0',
  RPC: '/ip4/127.0.0.1/tcp/0',
  Swarm: ['/ip4/127.0.0.1/tcp/0'],
  Announce: [],
  NoAnnounce: [],
  Delegates: []
}
c.Bootstrap = []
c.Discovery = { MDNS: { Enabled: false, Interval: 10 }, webRTCStar: { Enabled: false } }
c.Routing = { Type: 'none' }
c.Pubsub = { ...(c.Pubsub || {}), Router: 'gossipsub', Enabled: false }
c.Swarm = { ...(c.Swarm || {}), DisableNatPortMap: true }
c.relay = { enabled: false, hop: { enabled: false, active: false } }
fs.writeFileSync(file, JSON.stringify(c, null, 2))
EOF

exec "$JSIPFS" daemon --enable-preload=false
