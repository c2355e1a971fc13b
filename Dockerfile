# syntax=docker/dockerfile:1
# hostbeat container image: multi-stage on Debian bookworm (see docker-compose.yml for
# how it runs: --net=host, --pid=host, cap_drop ALL + NET_RAW NET_ADMIN SYS_PTRACE
# DAC_READ_SEARCH, the host's / read-only under /hostfs).
#
# The package lists below are read by tests/docker/check_rootfs.sh, which builds the
# same stages in a debootstrap'ed bookworm root (no Docker engine needed): keep each
# list in ONE `apt-get install` of its stage.

FROM debian:bookworm-slim AS build
RUN apt-get update && apt-get install -y --no-install-recommends \
        build-essential pkg-config libpcap-dev libproc2-dev libcurl4-openssl-dev \
        libjson-c-dev libyaml-dev libisal-dev libdeflate-dev \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
# Everything the runtime image gets is staged under /out (a missing dashboards/ is an
# empty directory, so the image builds before the dashboards exist).
RUN make -j"$(nproc)" hostbeat \
    && install -D -m 0755 hostbeat /out/usr/local/bin/hostbeat \
    && install -D -m 0755 tests/docker/entrypoint.sh /out/usr/local/bin/hostbeat-entrypoint \
    && install -D -m 0644 beats.docker.yml /out/etc/hostbeat/beats.yml \
    && mkdir -p /out/usr/share/hostbeat/dashboards /out/usr/share/hostbeat/data \
    && if [ -d dashboards ]; then cp -a dashboards/. /out/usr/share/hostbeat/dashboards/; fi

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends \
        libpcap0.8 libproc2-0 libcurl4 libjson-c5 libyaml-0-2 libisal2 libdeflate0 ca-certificates \
    && rm -rf /var/lib/apt/lists/*
COPY --from=build /out/ /
WORKDIR /usr/share/hostbeat
# data/ holds the disk spool (queue.spool.path: data/spool) and the dead-letter file;
# mount a volume there to keep them across container restarts.
VOLUME ["/usr/share/hostbeat/data"]
# The entrypoint turns ELASTICSEARCH_HOSTS, ELASTICSEARCH_USERNAME/PASSWORD/API_KEY and
# KIBANA_HOST into -E overrides, then runs
#   hostbeat -e -c /etc/hostbeat/beats.yml [-E ...] "$@"
ENTRYPOINT ["/usr/local/bin/hostbeat-entrypoint"]
