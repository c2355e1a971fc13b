#!/usr/bin/env bash
# deps.sh — install the Debian 12 packages hostbeat needs to build and test, only the
# missing ones: one `apt-get update`, then one `apt-get install -y`.
#
# The database/cache servers (mariadb, postgresql, redis, memcached) are only used by
# tests/integration/servers.sh, which runs private instances inside network
# namespaces.  Installing them must not start them on the real host: for the install
# a /usr/sbin/policy-rc.d that exits 101 is put in place (only if there is none; ours
# is removed again by the trap), and afterwards a daemon of those packages that the
# install started anyway in the root network namespace is stopped. Daemons that were
# running before (a user's own database) are never touched. Nothing is disabled.
set -euo pipefail

build=(build-essential pkg-config libpcap-dev libproc2-dev libcurl4-openssl-dev libjson-c-dev
       libyaml-dev libisal-dev libdeflate-dev)
test=(libcmocka-dev zlib1g-dev python3 python3-pytest clang-14 libclang-rt-14-dev tcpdump tshark
      nginx-light dnsmasq-base dnsutils curl iproute2 procps time
      # real servers + clients for the mysql/pgsql/redis/memcache/thrift live tests
      mariadb-server mariadb-client postgresql postgresql-client redis-server redis-tools
      memcached libmemcached-tools python3-thrift
      # DBD::MariaDB: the one Debian client that does binary (COM_STMT_*) prepares
      libdbd-mariadb-perl
      # the image checks: a minimal bookworm root, and the compose file's YAML
      debootstrap python3-yaml openssl)

# daemons of the server packages above (process names, as pgrep -x sees them)
daemons=(mariadbd mysqld mysqld_safe mariadbd-safe postgres redis-server memcached)

missing=()
for p in "${build[@]}" "${test[@]}"; do
	status=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
	[[ $status == "install ok installed" ]] || missing+=("$p")
done

# PIDs of the package daemons running now in the root network namespace (never the
# private instances of a test run, which live in their own namespaces).
host_daemon_pids() {
	local self_ns pid ns name
	self_ns=$(readlink /proc/1/ns/net 2>/dev/null || readlink /proc/self/ns/net)
	for name in "${daemons[@]}"; do
		for pid in $(pgrep -x "$name" 2>/dev/null || true); do
			ns=$(readlink "/proc/$pid/ns/net" 2>/dev/null || true)
			[[ -n "$ns" && "$ns" == "$self_ns" ]] && echo "$pid"
		done
	done
	return 0
}

# Stop the package daemons that were not running before the install ($1: those PIDs).
stop_host_daemons() {
	local before=" $1 " self_ns pid ns name stopped=()
	self_ns=$(readlink /proc/1/ns/net 2>/dev/null || readlink /proc/self/ns/net)
	for name in "${daemons[@]}"; do
		for pid in $(pgrep -x "$name" 2>/dev/null || true); do
			[[ $before == *" $pid "* ]] && continue
			ns=$(readlink "/proc/$pid/ns/net" 2>/dev/null || true)
			[[ -n "$ns" && "$ns" == "$self_ns" ]] || continue
			kill -TERM "$pid" 2>/dev/null && stopped+=("$name[$pid]")
		done
	done
	((${#stopped[@]})) || return 0
	echo "deps: stopped host daemon(s) started by the packages: ${stopped[*]}" >&2
	local i
	for ((i = 0; i < 100; i++)); do
		local alive=0
		for name in "${daemons[@]}"; do
			for pid in $(pgrep -x "$name" 2>/dev/null || true); do
				[[ $before == *" $pid "* ]] && continue
				ns=$(readlink "/proc/$pid/ns/net" 2>/dev/null || true)
				[[ "$ns" == "$self_ns" ]] && alive=1
			done
		done
		((alive)) || return 0
		sleep 0.1
	done
	echo "deps: warning: a package daemon is still running in the root namespace" >&2
}

if ((${#missing[@]} == 0)); then
	echo "deps: all ${#build[@]}+${#test[@]} packages present"
	exit 0
fi
echo "deps: installing ${missing[*]}"
if [[ $(id -u) -ne 0 ]]; then
	echo "deps: not root; run: sudo apt-get update && sudo apt-get install -y ${missing[*]}" >&2
	exit 1
fi

POLICY=/usr/sbin/policy-rc.d
our_policy=0
cleanup() {
	if ((our_policy)); then
		rm -f -- "$POLICY"
	fi
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
if [[ ! -e "$POLICY" ]]; then
	printf '#!/bin/sh\n# hostbeat tests/deps.sh: no service starts during this install\nexit 101\n' \
		>"$POLICY"
	chmod 0755 "$POLICY"
	our_policy=1
fi

running_before=$(host_daemon_pids | tr '\n' ' ')
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
stop_host_daemons "$running_before"
echo "deps: installed ${#missing[@]} packages"
