# One image: the sidecar, the injector, and the example servers (a binary of their own, so the sidecar
# neither links nor loads them). Built on Debian bookworm with the toolchain CI uses (Rust 1.95), so the binaries
# are the same kind CI builds and tests; run on distroless cc (glibc, no shell) as a numeric non-root user.
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock rustfmt.toml ./
COPY src ./src
COPY benches ./benches
COPY tests ./tests
COPY webhook ./webhook
COPY example-servers ./example-servers
RUN cargo build --release --locked --bin mcplex --bin mcplex-webhook --bin mcplex-examples

FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /src/target/release/mcplex /usr/local/bin/mcplex
COPY --from=build /src/target/release/mcplex-webhook /usr/local/bin/mcplex-webhook
COPY --from=build /src/target/release/mcplex-examples /usr/local/bin/mcplex-examples
# 15302: sidecar admin (probes, metrics). 15301 is loopback-only MCP, so it is not exposed. 8443: webhook.
EXPOSE 15302 8443
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/mcplex"]
