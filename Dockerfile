# syntax=docker/dockerfile:1
#
# One image holding every Random Chats binary: the six services (auth-service,
# message-service, matching-service, ws-manager, ws-handler, gateway) and the one-process
# `random-chats`. Which one a container runs is its command, e.g.
#
#   docker build -t random-chats .
#   docker run --rm random-chats auth-service --help
#
# Nothing secret is built in: every setting, the service token included, comes from the
# environment at run time (see docs/OPERATIONS.md).

ARG RUST_VERSION=1.95
ARG DEBIAN_RELEASE=bookworm

FROM rust:${RUST_VERSION}-${DEBIAN_RELEASE} AS builder
WORKDIR /src
COPY . .
# The registry, the git checkouts and the target directory live in BuildKit cache mounts,
# so a rebuild after a source change recompiles the workspace crates, not the dependencies.
# The cache is not part of any image layer, hence the copy out of it.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/usr/local/cargo/git \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --workspace --bins \
    && mkdir -p /out \
    && for bin in auth-service message-service matching-service ws-manager ws-handler gateway random-chats; do \
         cp "target/release/$bin" /out/; \
       done

FROM debian:${DEBIAN_RELEASE}-slim AS runtime
# ca-certificates: TLS to managed backends (DynamoDB on AWS, MongoDB Atlas, ...);
# curl: the health checks of docker-compose.yml (`curl -fsS http://127.0.0.1:PORT/readyz`).
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates curl \
    && rm -rf /var/lib/apt/lists/*
RUN groupadd --system --gid 10001 app \
    && useradd --system --uid 10001 --gid app --home-dir /var/lib/random-chats --shell /usr/sbin/nologin app \
    && mkdir -p /var/lib/random-chats \
    && chown app:app /var/lib/random-chats \
    && chmod 0700 /var/lib/random-chats
COPY --from=builder /out/ /usr/local/bin/
# The working directory is the data directory: the embedded defaults (`./data/...`) and
# auth-service's generated signing key land here. Mount a volume on it to keep them.
WORKDIR /var/lib/random-chats
USER app:app
# SIGTERM starts the graceful shutdown of every binary (ws-handler drains its sockets).
STOPSIGNAL SIGTERM
CMD ["random-chats", "--listen", "0.0.0.0:8080"]
