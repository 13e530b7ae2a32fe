# syntax=docker/dockerfile:1
# The `carewatch` binary in a small runtime image, run as a non-root user.
# Build: docker build -t carewatch .   Run: see compose.yaml and README.md,
# "Running in production".

FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked -p carewatch-cli --bin carewatch

FROM debian:bookworm-slim
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --user-group --home-dir /var/lib/carewatch \
       --create-home --shell /usr/sbin/nologin carewatch
COPY --from=build /src/target/release/carewatch /usr/local/bin/carewatch
USER 10001:10001
WORKDIR /var/lib/carewatch
# The data directory holds the master key (SQLite: the database too) and,
# unless a certificate is given, the self-signed one.
ENV CAREWATCH_DATA_DIR=/var/lib/carewatch \
    CAREWATCH_LISTEN=0.0.0.0:7443 \
    CAREWATCH_SERVER=https://localhost:7443 \
    CAREWATCH_CA_CERT=/var/lib/carewatch/cert.pem
VOLUME ["/var/lib/carewatch"]
EXPOSE 7443
# The gRPC health service, over TLS like every client.
HEALTHCHECK --interval=10s --timeout=7s --start-period=30s --retries=3 \
    CMD ["carewatch", "health"]
ENTRYPOINT ["carewatch"]
CMD ["serve"]
