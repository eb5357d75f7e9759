# ScopeGate as a small, non-root container image.
#
#   docker build -t scopegate .
#   docker run --rm -p 8080:8080 -v /etc/scopegate:/etc/scopegate:ro -v scopegate-data:/var/lib/scopegate \
#     -e SCOPEGATE_ADMIN_TOKEN=... scopegate
#
# The configuration is read from /etc/scopegate/scopegate.yaml; store.path should point under
# /var/lib/scopegate (a volume), and secrets come from the environment or files named in the config.

ARG SWIFT_VERSION=6.3
FROM swift:${SWIFT_VERSION}-bookworm AS build
RUN apt-get update && apt-get install -y --no-install-recommends libsqlite3-dev && rm -rf /var/lib/apt/lists/*
WORKDIR /src
# Dependencies first, so that a change to ScopeGate's sources does not fetch them again.
COPY Package.swift ./
COPY Package.resolved* ./
RUN swift package resolve
COPY Sources ./Sources
COPY Tests ./Tests
RUN swift build -c release --product scopegate --static-swift-stdlib \
    && install -D .build/release/scopegate /out/scopegate

FROM debian:bookworm-slim
RUN apt-get update \
    && apt-get install -y --no-install-recommends libsqlite3-0 ca-certificates tzdata \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --home-dir /var/lib/scopegate --create-home --shell /usr/sbin/nologin scopegate
COPY --from=build /out/scopegate /usr/local/bin/scopegate
USER 10001:10001
WORKDIR /var/lib/scopegate
# The public listener and the admin listener (health, readiness, metrics, admin API).
EXPOSE 8080 8081
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/scopegate"]
CMD ["serve", "--config", "/etc/scopegate/scopegate.yaml"]
