#!/bin/sh
# hostbeat-entrypoint — the container image's ENTRYPOINT (installed as
# /usr/local/bin/hostbeat-entrypoint by the Dockerfile).
#
# The image's beats.yml (beats.docker.yml) reads these variables itself with
# ${VAR:default}; they are also passed as -E overrides so that a config mounted over
# /etc/hostbeat/beats.yml without ${...} follows them too (each -E value is parsed as
# YAML, so every value is passed as a double-quoted YAML string):
#   ELASTICSEARCH_HOSTS      output.elasticsearch.hosts (comma-separated list)
#   ELASTICSEARCH_USERNAME   output.elasticsearch.username
#   ELASTICSEARCH_PASSWORD   output.elasticsearch.password
#   ELASTICSEARCH_API_KEY    output.elasticsearch.api_key
#   KIBANA_HOST              setup.kibana.host
# Unset or empty variables leave the file's value. Then
#   exec hostbeat -e -c $HOSTBEAT_CONFIG [-E ...] "$@"
# so `docker run IMAGE version`, `... test config`, `... -E key=value` work as with the
# binary. HOSTBEAT_BIN and HOSTBEAT_CONFIG exist for tests.
set -eu

bin=${HOSTBEAT_BIN:-/usr/local/bin/hostbeat}
config=${HOSTBEAT_CONFIG:-/etc/hostbeat/beats.yml}

# YAML double-quoted scalar: backslash and double quote escaped, and "${" written as
# "$${" so that the loader keeps it literal instead of expanding it.
yq() {
	printf '"%s"' "$(printf '%s' "$1" | sed -e 's/\\/\\\\/g' -e 's/"/\\"/g' -e 's/[$]{/$${/g')"
}

# "a, b,c" -> ["a", "b", "c"] (empty items dropped)
ylist() {
	out='' sep=''
	old_ifs=$IFS
	IFS=,
	for item in $1; do
		item=$(printf '%s' "$item" | sed -e 's/^[[:space:]]*//' -e 's/[[:space:]]*$//')
		[ -n "$item" ] || continue
		out="$out$sep$(yq "$item")"
		sep=", "
	done
	IFS=$old_ifs
	printf '[%s]' "$out"
}

set -- -e -c "$config" "$@"
if [ -n "${KIBANA_HOST:-}" ]; then
	set -- "$@" -E "setup.kibana.host=$(yq "$KIBANA_HOST")"
fi
if [ -n "${ELASTICSEARCH_API_KEY:-}" ]; then
	set -- "$@" -E "output.elasticsearch.api_key=$(yq "$ELASTICSEARCH_API_KEY")"
fi
if [ -n "${ELASTICSEARCH_PASSWORD:-}" ]; then
	set -- "$@" -E "output.elasticsearch.password=$(yq "$ELASTICSEARCH_PASSWORD")"
fi
if [ -n "${ELASTICSEARCH_USERNAME:-}" ]; then
	set -- "$@" -E "output.elasticsearch.username=$(yq "$ELASTICSEARCH_USERNAME")"
fi
if [ -n "${ELASTICSEARCH_HOSTS:-}" ]; then
	set -- "$@" -E "output.elasticsearch.hosts=$(ylist "$ELASTICSEARCH_HOSTS")"
fi
exec "$bin" "$@"
