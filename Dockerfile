# syntax=docker/dockerfile:1
# Tollgate gateway image: docker build -t tollgate .
#   docker run --rm -p 8080:8080 tollgate                       # serve with the bundled example config
#   docker run --rm -p 8080:8080 -v $PWD/my.toml:/etc/tollgate/config.toml:ro tollgate serve --config /etc/tollgate/config.toml
# Only the gateway binary is shipped: stdio upstreams need their own runtimes (node, python, ...),
# so build FROM this image and add them, or point Tollgate at Streamable HTTP upstreams.

# ---- build ----------------------------------------------------------------------------------
FROM rust:1.95-bookworm AS builder
WORKDIR /build

# Dependency layer: compile every dependency against a stub main, so that editing the sources
# does not rebuild them. Invalidated only by Cargo.toml / Cargo.lock.
COPY Cargo.toml Cargo.lock ./
RUN mkdir -p src \
 && echo 'fn main() {}' > src/main.rs \
 && cargo build --release --locked --bin tollgate --no-default-features \
 && rm -rf src

# The real build. `touch` makes sure cargo does not mistake the stub's output for up to date
# (COPY keeps the context's mtimes, which may be older than the stub build).
COPY . .
RUN touch src/main.rs \
 && cargo build --release --locked --bin tollgate --no-default-features \
 && install -D -m 0755 target/release/tollgate /out/tollgate

# ---- runtime --------------------------------------------------------------------------------
FROM debian:bookworm-slim
# ca-certificates: trust roots for HTTPS upstreams; nothing else is installed.
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 10001 tollgate \
 && useradd --system --uid 10001 --gid 10001 --home-dir /var/lib/tollgate --create-home \
        --shell /usr/sbin/nologin tollgate

COPY --from=builder /out/tollgate /usr/local/bin/tollgate
COPY config.example.toml /etc/tollgate/config.example.toml
COPY policies/ /etc/tollgate/policies/

WORKDIR /var/lib/tollgate
# Numeric uid:gid (= tollgate:tollgate) so that Kubernetes' runAsNonRoot can verify it.
USER 10001:10001
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/tollgate"]
# Inside a container the listener must not be loopback-only, and a non-loopback listener needs an
# [auth] section: mount a config that has one (the example's is commented out, so this default
# command refuses to start with a message saying so).
CMD ["serve", "--config", "/etc/tollgate/config.example.toml", "--listen", "0.0.0.0:8080"]
