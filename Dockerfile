# syntax=docker/dockerfile:1
#
# The `cairn` binary (every stage and the CLI) in a small Debian image.
#   docker build -t cairn:local .
# Not built on the development machines (they have no Docker engine); the
# build steps are the ones used there: `cargo build -p cairn --release`.

# ---- build ----------------------------------------------------------------
FROM rust:1.95-bookworm AS build
# Node.js and npm bundle the ops console's front end at build time
# (services/console/build.rs); the image runs without them.
RUN apt-get update \
 && apt-get install -y --no-install-recommends nodejs npm \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
# The whole workspace: every member's Cargo.toml must be present for cargo to
# load the workspace, and the ledger embeds schemas/sql/ at compile time.
COPY . .
# Cache mounts keep the registry and compiled dependencies between builds;
# the binary is copied out of the cached target directory before the step
# ends, since cache mounts are not part of the image.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/usr/local/cargo/git \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p cairn \
 && install -D -m 0755 target/release/cairn /out/cairn

# ---- runtime --------------------------------------------------------------
FROM debian:bookworm-slim
# ca-certificates: TLS to storage networks and brokers.
# postgresql-client: pg_dump (ingest, PostgreSQL sources) and pg_restore
# (`cairn restore --to-postgres`). Bookworm ships version 15; pg_dump refuses
# to dump a newer server, so for PostgreSQL 16+ sources install the matching
# client from apt.postgresql.org instead.
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates postgresql-client \
 && rm -rf /var/lib/apt/lists/*
# An unprivileged user; /var/lib/cairn is its data directory (the default
# `local` network lives in /var/lib/cairn/networks/local). A named volume
# mounted there starts with this ownership.
RUN groupadd --system --gid 10001 cairn \
 && useradd --system --uid 10001 --gid cairn --home-dir /var/lib/cairn \
        --shell /usr/sbin/nologin cairn \
 && install -d -o cairn -g cairn -m 0750 /var/lib/cairn
COPY --from=build /out/cairn /usr/local/bin/cairn
ENV CAIRN_DATA_DIR=/var/lib/cairn \
    HOME=/var/lib/cairn
USER cairn:cairn
WORKDIR /var/lib/cairn
VOLUME ["/var/lib/cairn"]
ENTRYPOINT ["cairn"]
CMD ["--help"]
