# syntax=docker/dockerfile:1
# The immich-backup image: backup, restore-verify and device-sync; pg_dump and psql
# of one PostgreSQL major with that major's server binaries (restore-verify's
# scratch database check); tini as PID 1 so SIGTERM reaches `backup`, which then
# stops gracefully and saves its manifest. See docs/deploy.md.
#
#   docker build -t registry.example.com/immich-backup:0.1.0 .
#
# PG_MAJOR: pg_dump must be at least the server's major, and Immich allows 14 to 18,
# so the newest one dumps every supported server.
ARG RUST_VERSION=1.95
ARG PG_MAJOR=18

FROM docker.io/library/rust:${RUST_VERSION}-slim-bookworm AS build
WORKDIR /src
COPY . .
# The same command as `cargo xtask dist` (xtask's test `the_dockerfile_builds_what_dist_builds`).
RUN cargo build --release --locked --bin backup --bin restore-verify --bin device-sync

FROM docker.io/library/debian:bookworm-slim AS runtime
ARG PG_MAJOR
ARG VERSION=0.1.0
LABEL org.opencontainers.image.title="immich-backup" \
      org.opencontainers.image.description="Incremental, append-only backup of an Immich library and its PostgreSQL database to Google Cloud Storage, with restore verification" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.licenses="MIT OR Apache-2.0" \
      org.opencontainers.image.documentation="docs/deploy.md"
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
# PostgreSQL's own Debian repository (PGDG) carries every major for bookworm; its
# server package must not create a cluster at install time. Versions are not pinned:
# the image is rebuilt for security updates, and PG_MAJOR pins what matters.
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates curl gnupg tini \
 && install -d /usr/share/postgresql-common/pgdg /etc/postgresql-common \
 && curl -fsSL https://www.postgresql.org/media/keys/ACCC4CF8.asc \
      | gpg --dearmor -o /usr/share/postgresql-common/pgdg/apt.postgresql.org.gpg \
 && echo "deb [signed-by=/usr/share/postgresql-common/pgdg/apt.postgresql.org.gpg] https://apt.postgresql.org/pub/repos/apt bookworm-pgdg main" \
      > /etc/apt/sources.list.d/pgdg.list \
 && echo "create_main_cluster = false" > /etc/postgresql-common/createcluster.conf \
 && apt-get update \
 && apt-get install -y --no-install-recommends "postgresql-${PG_MAJOR}" "postgresql-${PG_MAJOR}-pgvector" \
 && apt-get purge -y curl gnupg \
 && apt-get autoremove -y \
 && rm -rf /var/lib/apt/lists/*
# initdb needs a passwd entry for the user it runs as.
RUN useradd --uid 10001 --user-group --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin immich-backup
COPY --from=build /src/target/release/backup /src/target/release/restore-verify /src/target/release/device-sync /usr/local/bin/
# Debian's /usr/bin/pg_dump is a Perl wrapper; the major's own binaries come first.
ENV PATH="/usr/lib/postgresql/${PG_MAJOR}/bin:/usr/local/bin:/usr/bin:/bin" \
    TMPDIR=/tmp
USER 10001:10001
WORKDIR /tmp
HEALTHCHECK NONE
ENTRYPOINT ["/usr/bin/tini", "--"]
CMD ["backup", "--help"]
