# syntax=docker/dockerfile:1
# One image, both binaries:
#   sorcha-peer      the peer (the entrypoint; SorchaNetworks run `sorcha-peer run`)
#   sorcha-operator  the Kubernetes operator (the Helm chart runs it by command)
#
#   docker build -t ghcr.io/sorcha/sorcha-peer:0.1.0 .
#
# Ports:
#   5001  the peer's one listener: gRPC, REST (/api/v1/...), /metrics, /healthz, /readyz
#   8080  the operator's /metrics, /healthz, /readyz
# Volumes:
#   /var/lib/sorcha      the peer's data (SQLite peer list, transactions, queue); DataDirectory
#   /etc/sorcha/config   peer.yaml (SORCHA_CONFIG=/etc/sorcha/config/peer.yaml)
#   /etc/sorcha/tls, /etc/sorcha/trust   certificate/key and trusted CAs when mTLS is on
# User: 65532 (nonroot), no shell in the runtime image.

ARG RUST_VERSION=1.95
FROM rust:${RUST_VERSION}-bookworm AS build
WORKDIR /src
# Every workspace member must be present for cargo to load the workspace,
# including the end-to-end test crate (not built here). .proto files live in
# proto/ and compile with protox: no protoc needed.
COPY Cargo.toml Cargo.lock ./
COPY proto proto
COPY peer peer
COPY operator operator
COPY kind-tests kind-tests
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --bin sorcha-peer --bin sorcha-operator \
 && mkdir -p /out/bin /out/data \
 && cp target/release/sorcha-peer target/release/sorcha-operator /out/bin/

FROM gcr.io/distroless/cc-debian12:nonroot
LABEL org.opencontainers.image.title="sorcha-peer" \
      org.opencontainers.image.description="Sorcha peer and its Kubernetes operator" \
      org.opencontainers.image.source="https://github.com/sorcha/sorcha-peer" \
      org.opencontainers.image.licenses="Apache-2.0"
COPY --from=build /out/bin/ /usr/local/bin/
# Writable by the nonroot user: without a config the peer keeps its data in
# ./data under this working directory.
COPY --from=build --chown=65532:65532 /out/data /var/lib/sorcha
USER 65532:65532
WORKDIR /var/lib/sorcha
EXPOSE 5001 8080
VOLUME ["/var/lib/sorcha"]
ENTRYPOINT ["sorcha-peer"]
CMD ["run"]
