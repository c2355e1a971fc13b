# hostbeat container image (multi-stage, Debian bookworm).
# Not built or run on the development machines (no Docker engine there); the
# verified-by-test image work is tracked in the Docker issue.
FROM debian:bookworm-slim AS build
RUN apt-get update && apt-get install -y --no-install-recommends \
        build-essential pkg-config libpcap-dev libjson-c-dev libyaml-dev \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN make clean && make -j"$(nproc)" CI=true hostbeat

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends \
        libpcap0.8 libjson-c5 libyaml-0-2 ca-certificates \
    && rm -rf /var/lib/apt/lists/*
COPY --from=build /src/hostbeat /usr/local/bin/hostbeat
COPY beats.yml /etc/hostbeat/beats.yml
WORKDIR /var/lib/hostbeat
# Needs: --net=host (see docker0), --cap-add NET_RAW --cap-add NET_ADMIN.
ENTRYPOINT ["/usr/local/bin/hostbeat", "-e", "-c", "/etc/hostbeat/beats.yml"]
