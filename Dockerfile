# One image: the sidecar, the injector, and the example servers (a binary of their own, so the sidecar
# neither links nor loads them). Built on Debian bookworm with the toolchain CI uses (Rust 1.95) by
# scripts/pgo-build, which trains a profile and then calls scripts/release-build, which links them statically
# (static-pie; see those scripts for why); run on distroless cc (no shell) as a numeric non-root user.
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock rustfmt.toml ./
COPY .cargo ./.cargo
COPY src ./src
COPY benches ./benches
COPY tests ./tests
COPY webhook ./webhook
COPY example-servers ./example-servers
COPY scripts/pgo-build scripts/bench scripts/release-build scripts/static-cargo ./scripts/
COPY build/startup-order.txt ./build/
# Profile-guided: the benchmark drives an instrumented sidecar first (scripts/pgo-build says why and what).
RUN out=$(scripts/pgo-build --bin mcplex --bin mcplex-webhook --bin mcplex-examples) \
    && mkdir -p /out && cp "$out/mcplex" "$out/mcplex-webhook" "$out/mcplex-examples" /out/

FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /out/mcplex /usr/local/bin/mcplex
COPY --from=build /out/mcplex-webhook /usr/local/bin/mcplex-webhook
COPY --from=build /out/mcplex-examples /usr/local/bin/mcplex-examples
# 15302: sidecar admin (probes, metrics). 15301 is loopback-only MCP, so it is not exposed. 8443: webhook.
EXPOSE 15302 8443
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/mcplex"]
