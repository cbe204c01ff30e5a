#!/usr/bin/env bash
# Shared by scripts/setup.sh and scripts/test.sh: make sure the real parts
# Cairn talks to are installed and running on loopback (Debian), and that a
# Rust toolchain can build the workspace.
set -euo pipefail

say() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else die "need root (or sudo) to run: $*"; fi
}

APT_UPDATED=0
apt_install() {
  local missing=()
  for pkg in "$@"; do dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg"); done
  [ ${#missing[@]} -eq 0 ] && return 0
  say "installing ${missing[*]}"
  if [ $APT_UPDATED -eq 0 ]; then as_root apt-get update -qq; APT_UPDATED=1; fi
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
}

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

ensure_nats() {
  apt_install nats-server
  if ! port_open 4222; then
    say "starting nats-server (JetStream) on 127.0.0.1:4222"
    as_root mkdir -p /var/lib/nats-server
    as_root start-stop-daemon --start --oknodo --background --exec /usr/sbin/nats-server -- \
      -a 127.0.0.1 -p 4222 -js -sd /var/lib/nats-server -l /var/log/nats-server.log
    for _ in $(seq 50); do port_open 4222 && break; sleep 0.1; done
    port_open 4222 || die "nats-server did not start; see /var/log/nats-server.log"
  fi
}

ensure_postgres() {
  apt_install postgresql postgresql-client
  local fresh=0
  if ! port_open 5432; then
    say "starting PostgreSQL on 127.0.0.1:5432"
    local ver; ver=$(ls /etc/postgresql | sort -n | tail -1)
    [ -n "$ver" ] || die "no PostgreSQL cluster found under /etc/postgresql"
    as_root pg_ctlcluster --skip-systemctl-redirect "$ver" main start || as_root pg_ctlcluster "$ver" main start
    for _ in $(seq 50); do port_open 5432 && break; sleep 0.1; done
    port_open 5432 || die "PostgreSQL did not start"
    fresh=1
  fi
  if ! psql -h 127.0.0.1 -U postgres -d postgres -qAtc 'select 1' >/dev/null 2>&1; then
    # A fresh Debian cluster asks TCP clients for a password. Cairn's default
    # config connects as `postgres` on 127.0.0.1 without one; trust loopback
    # only (this is a development set-up; production passes a libpq URL).
    local hba; hba=$(as_root su postgres -s /bin/sh -c "psql -qAtc 'show hba_file'")
    say "allowing loopback connections as postgres without a password ($hba)"
    as_root sed -i '1i host all postgres 127.0.0.1/32 trust' "$hba"
    as_root su postgres -s /bin/sh -c "psql -qAtc 'select pg_reload_conf()'" >/dev/null
    psql -h 127.0.0.1 -U postgres -d postgres -qAtc 'select 1' >/dev/null || die "cannot connect to PostgreSQL as postgres@127.0.0.1"
  fi
  : "$fresh"
}

# MariaDB and Redis for the database-source tests (tests/tests/databases.rs):
# the MariaDB server on its socket (root by unix_socket), and redis-server and
# redis-cli (those tests start Redis servers of their own). The PostgreSQL
# cluster those tests recover is their own too (initdb, run as `postgres`).
ensure_test_databases() {
  apt_install mariadb-server mariadb-client redis-server redis-tools
  if ! mariadb -uroot -e 'select 1' >/dev/null 2>&1; then
    say "starting MariaDB"
    as_root service mariadb start >/dev/null 2>&1 ||
      as_root start-stop-daemon --start --oknodo --background --exec /usr/bin/mysqld_safe
    for _ in $(seq 150); do mariadb -uroot -e 'select 1' >/dev/null 2>&1 && break; sleep 0.2; done
    mariadb -uroot -e 'select 1' >/dev/null 2>&1 || die "MariaDB did not start (mariadb -uroot cannot connect)"
  fi
}

ensure_rust() {
  command -v cargo >/dev/null || die "no Rust toolchain: install Rust 1.95 or newer (rustup) and re-run"
  apt_install gcc pkg-config
  # The ops console's front end is bundled with npm at build time.
  command -v npm >/dev/null || apt_install nodejs npm
  export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/cairn-target}"
  mkdir -p "$CARGO_TARGET_DIR"
}

# cargo-fuzz, for the bounded fuzzing run (scripts/fuzz.sh); built once
# into ~/.cargo/bin (~2 min).
ensure_cargo_fuzz() {
  if ! command -v cargo-fuzz >/dev/null; then
    say "installing cargo-fuzz 0.13.2 (~2 min, once)"
    cargo install --quiet cargo-fuzz --version 0.13.2 --locked
  fi
}

# Real storage servers the tests talk to (README.md, "Networks", says which
# and why; each has its starter in scripts/servers/ and its harness in
# tests/src/servers/): two real S3 servers for the S3 adapter's conformance suite,
# s3s-fs (SigV4) and Garage (strict SigV4 and region), built from crates.io
# once into ~/.cargo/bin; and arlocal for the Arweave adapter (npm, cached
# under ~/.cache/cairn-servers).
ensure_test_servers() {
  # `ip netns` and veth pairs: the three-host test's network namespaces.
  apt_install iproute2
  if ! command -v s3s-fs >/dev/null; then
    say "installing s3s-fs 0.14.1 (an S3 server for the tests; ~2 min)"
    cargo install --quiet s3s-fs --version 0.14.1 --locked --features binary
  fi
  say "arlocal (a local Arweave gateway; npm, ~1-2 min the first time)"
  bash scripts/servers/arweave/install.sh >/dev/null
  say "js-ipfs (a local IPFS node, Kubo RPC API; npm, ~1 min the first time)"
  bash scripts/servers/ipfs/install.sh
  say "an IPFS Pinning Service API server (npm, ~20 s the first time)"
  bash scripts/servers/pinning/install.sh >/dev/null
  say "moto's S3 server, for S3 Object Lock (PyPI, ~30 s the first time)"
  bash scripts/servers/moto/install.sh >/dev/null
  if ! command -v garage >/dev/null; then
    say "installing Garage 2.5.0 (a second S3 server for the tests; ~8 min, once)"
    cargo install --quiet garage --version 2.5.0 --locked --no-default-features --features bundled-libs,sqlite
  fi
  # Headless Chromium prints compliance reports to PDF and renders them for
  # the tests that look at them.
  apt_install chromium
  # The console's tests drive that Chromium through WebDriver.
  apt_install chromium-driver
}
