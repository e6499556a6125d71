# authgate: build the `authgate` binary, then ship it alone on a slim Debian.
#
#   docker build -t authgate .
#   docker run --rm -p 8080:8080 -e AUTHGATE_REDIS_URL=redis://host:6379 authgate
#
# The build needs the whole workspace (every member's Cargo.toml and Cargo.lock),
# so the context is the repository root; .dockerignore keeps target/ and .git/ out.

FROM rust:1-bookworm AS builder
WORKDIR /src
COPY . .
# --locked: build exactly what Cargo.lock says, or fail.
RUN cargo build --release --locked -p authgate-gateway \
 && install -m 0755 target/release/authgate /usr/local/bin/authgate

FROM debian:bookworm-slim
# ca-certificates: for outgoing TLS once the gateway makes any (SMTP, webhooks).
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --no-create-home --home-dir /nonexistent \
      --shell /usr/sbin/nologin authgate
COPY --from=builder /usr/local/bin/authgate /usr/local/bin/authgate
USER authgate
# The binary's own default is 127.0.0.1:8080, which is unreachable from outside a container.
ENV AUTHGATE_BIND=0.0.0.0:8080
EXPOSE 8080
ENTRYPOINT ["authgate"]
CMD ["serve"]
