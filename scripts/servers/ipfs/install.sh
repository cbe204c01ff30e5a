#!/usr/bin/env bash
# Install js-ipfs 0.66.1 (npm `ipfs`, pure JS, Kubo-compatible RPC API) for
# Cairn's tests, outside the repository:
#   $CAIRN_IPFS_HOME (default $HOME/.cache/cairn-servers/ipfs)
# Idempotent: does nothing when that version is already installed there with
# this directory's package.json / package-lock.json / polyfill.cjs.
# Uses the machine's node and npm (installs Debian's nodejs/npm only when
# there is no node at all). See docs/servers/ipfs.md.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
DEST=${CAIRN_IPFS_HOME:-$HOME/.cache/cairn-servers/ipfs}
WANT=0.66.1

say() { printf '==> %s\n' "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
  say "no node/npm on this machine: installing Debian's nodejs and npm"
  if [ "$(id -u)" -eq 0 ]; then SUDO=(); elif command -v sudo >/dev/null; then SUDO=(sudo); else die "need node and npm (or root to install them)"; fi
  "${SUDO[@]}" apt-get update -qq
  "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm >/dev/null
fi
node_major=$(node -p 'process.versions.node.split(".")[0]')
[ "$node_major" -ge 16 ] || die "js-ipfs needs node >= 16 (found $(node --version))"

# A stamp of what was installed: the inputs' hashes and the resulting version.
stamp_want=$( (cd "$HERE" && sha256sum package.json package-lock.json polyfill.cjs 2>/dev/null; echo "ipfs $WANT") | sha256sum | cut -d' ' -f1)
installed_version() {
  node -p "require('$DEST/node_modules/ipfs/package.json').version" 2>/dev/null || true
}
installed() {
  [ -f "$DEST/.cairn-stamp" ] && [ "$(cat "$DEST/.cairn-stamp")" = "$stamp_want" ] \
    && [ "$(installed_version)" = "$WANT" ] && [ -x "$DEST/node_modules/.bin/jsipfs" ]
}
installed && exit 0

# Several tests may start nodes at once: one installs, the others wait.
mkdir -p "$DEST"
exec 9>"$DEST/.install.lock"
flock 9
installed && exit 0

say "installing js-ipfs $WANT into $DEST (npm, ~1000 packages, 1-4 minutes once)"
rm -f "$DEST/.cairn-stamp"
cp "$HERE/package.json" "$HERE/polyfill.cjs" "$DEST/"
if [ -f "$HERE/package-lock.json" ]; then
  cp "$HERE/package-lock.json" "$DEST/"
  npm_cmd=(ci)
else
  rm -f "$DEST/package-lock.json"
  npm_cmd=(install)
fi
# Install scripts are not needed (classic-level ships prebuilt binaries;
# the others only print or build browser files), so none run. npm's cache
# and logs stay inside $DEST and go once the install succeeded.
(cd "$DEST" && NO_UPDATE_NOTIFIER=1 npm "${npm_cmd[@]}" --ignore-scripts --no-audit --no-fund \
   --loglevel=error --cache "$DEST/.npm-cache" >&2)
rm -rf "$DEST/.npm-cache"

got=$(installed_version)
[ "$got" = "$WANT" ] || die "installed ipfs is '$got', wanted $WANT"
for pin in "@libp2p/tcp 6.1.2" "@libp2p/websockets 5.0.5" "@multiformats/mafmt 11.1.1"; do
  set -- $pin
  v=$(node -p "require('$DEST/node_modules/$1/package.json').version")
  [ "$v" = "$2" ] || die "$1 is $v, the overrides want $2"
done
echo "$stamp_want" > "$DEST/.cairn-stamp"
say "js-ipfs $WANT installed in $DEST"
