#!/usr/bin/env bash
# Install moto's S3 server (moto[server] 5.2.5, from PyPI) into a virtualenv
# outside the repository, for the one thing neither s3s-fs nor Garage
# implements: S3 Object Lock (buckets created with it, retention on PutObject
# and multipart uploads, PutObjectRetention, AccessDenied on deleting a
# locked version). Idempotent.
#
#   scripts/servers/moto/install.sh     # prints the path of moto_server
#
# Virtualenv: $CAIRN_MOTO_DIR, else $HOME/.cache/cairn-servers/moto.
set -euo pipefail
dir=${CAIRN_MOTO_DIR:-$HOME/.cache/cairn-servers/moto}
want="moto[server]==5.2.5"
mkdir -p "$(dirname "$dir")"
exec 9>"$dir.lock"
flock 9
if [ -x "$dir/bin/moto_server" ] && [ "$(cat "$dir/.cairn-installed" 2>/dev/null)" = "$want" ]; then
  echo "$dir/bin/moto_server"
  exit 0
fi
command -v python3 >/dev/null || { echo "error: python3 is needed" >&2; exit 1; }
echo "==> installing $want into $dir (PyPI, ~30 s once)" >&2
rm -rf "$dir"
if ! python3 -m venv "$dir" >&2; then
  # Debian's python3 keeps venv in a separate package.
  if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null; then
    echo "==> installing Debian's python3-venv" >&2
    apt-get install -y -qq python3-venv >/dev/null
    rm -rf "$dir"
    python3 -m venv "$dir" >&2
  else
    echo "error: python3 -m venv failed (Debian: apt-get install python3-venv)" >&2
    exit 1
  fi
fi
"$dir/bin/pip" install --quiet --disable-pip-version-check "$want" >&2
echo "$want" > "$dir/.cairn-installed"
echo "$dir/bin/moto_server"
