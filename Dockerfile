# syntax=docker/dockerfile:1
# okrd's image: built in the Rust image, run from a slim Debian as a
# non-root user. `docker compose up` builds it (docker-compose.yml); alone:
#   docker build -t okrd . && docker run -p 9464:9464 okrd
# runs the SQLite demo (config/okrd.yaml) on http://localhost:9464/.

FROM rust:1-bookworm AS build
# librdkafka is compiled from the sources rdkafka-sys bundles (configure +
# make, linking the system zlib and OpenSSL, for SSL and SASL); the rust
# image has the compiler and make.
RUN apt-get update \
 && apt-get install -y --no-install-recommends pkg-config zlib1g-dev libssl-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src src
COPY migrations migrations
# The registry and target directory are build caches, kept between builds.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --bin okrd \
 && cp target/release/okrd /usr/local/bin/okrd

FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates zlib1g libssl3 \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --user-group --home-dir /app --shell /usr/sbin/nologin okrd
WORKDIR /app
COPY --from=build /usr/local/bin/okrd /usr/local/bin/okrd
# The default deployment layout (SPEC §1); migrations are in the binary.
COPY config config
COPY connectors connectors
RUN mkdir data && chown okrd:okrd data
USER okrd
# Listen beyond the container's loopback; a config's http.listen is
# overridden by this (OKRD_<PATH> variables win over files).
ENV OKRD_HTTP__LISTEN=0.0.0.0:9464
EXPOSE 9464
VOLUME ["/app/data"]
ENTRYPOINT ["okrd"]
CMD ["serve"]
