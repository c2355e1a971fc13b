#!/usr/bin/env bash
# tests/integration/topology.sh -- a throw-away "Docker host" built from network
# namespaces, for hostbeat integration tests.
#
#   topology.sh up PREFIX [--with-db]
#                             build everything, print the temp dir path on stdout;
#                             --with-db also starts the database/cache/RPC servers of
#                             servers.sh (mariadb, postgres, redis, memcached, thrift,
#                             mongo) in namespaces of their own (slower: ~10 s)
#   topology.sh down PREFIX   kill the servers, delete the namespaces, remove temp dir
#   topology.sh env PREFIX    print the path of ${TMP}/topology.env (if up)
#
# It can also be sourced (functions topo_up / topo_down / topo_tmpdir).
#
# Layout (everything lives in namespaces created here; the machine's own
# interfaces, routes and firewall are never touched):
#
#   ${PREFIX}host  bridge "docker0" 172.17.0.1/16, lo
#     veth<short>1 ──── eth0 ${PREFIX}web  172.17.0.2  nginx   :80
#     veth<short>2 ──── eth0 ${PREFIX}dns  172.17.0.3  dnsmasq :53 udp+tcp
#     veth<short>3 ──── eth0 ${PREFIX}cli  172.17.0.4  (client container)
#
# The veth pairs are created directly inside ${PREFIX}host (ip -n), with the
# peer moved straight into the container namespace, so nothing ever appears
# in the root namespace.
#
# Temp dir: ${TMPDIR:-/tmp}/hostbeat-topo.${PREFIX}  (deterministic so that
# `down` finds it).  Set HB_TOPO_KEEP=1 to keep it after `down`.
#
# `up` is safe to interrupt: `down` copes with any partial state, and `up`
# itself runs `down` when one of its steps fails.  Callers should still do
#     trap 'topology.sh down "$PREFIX"' EXIT
# before calling `up`.

# --- constants (shared with traffic.sh / record.sh / conftest.py via topology.env)
TOPO_SUBNET=172.17.0.0/16
TOPO_BRIDGE=docker0
TOPO_HOST_IP=172.17.0.1
TOPO_WEB_IP=172.17.0.2
TOPO_DNS_IP=172.17.0.3
TOPO_CLI_IP=172.17.0.4
TOPO_ZONE=hb.test
TOPO_WEB_AAAA=fd00:17::2
TOPO_INDEX_SIZE=4321
TOPO_BIG_SIZE=204800

_topo_log() { echo "topology: $*" >&2; }

_topo_check_prefix() {
    local p=$1
    if [[ -z "$p" || ! "$p" =~ ^[A-Za-z0-9_-]{1,40}$ ]]; then
        _topo_log "invalid PREFIX '${p}' (want [A-Za-z0-9_-]{1,40})"
        return 2
    fi
}

topo_tmpdir() { echo "${TMPDIR:-/tmp}/hostbeat-topo.$1"; }

# veth<short><n>: at most 15 chars.  short = PREFIX if it fits, else an 8-hex hash.
_topo_veth() {
    local p=$1 n=$2 short
    if (( ${#p} <= 10 )); then
        short=$p
    else
        short=$(printf '%s' "$p" | md5sum | cut -c1-8)
    fi
    echo "veth${short}${n}"
}

_topo_ns_exists() { ip netns list 2>/dev/null | awk '{print $1}' | grep -qx -- "$1"; }

# is pid $2 a process inside namespace $1 ?
_topo_pid_in_ns() {
    local ns=$1 pid=$2
    [[ "$pid" =~ ^[0-9]+$ ]] || return 1
    ip netns pids "$ns" 2>/dev/null | grep -qx -- "$pid"
}

# is pid $1 still running?  A zombie is not: it has exited, and our PID 1 may take a
# while to reap orphans (kill -0 succeeds on zombies).
_topo_alive() {
    local st
    kill -0 "$1" 2>/dev/null || return 1
    st=$(sed 's/.*) //' "/proc/$1/stat" 2>/dev/null | cut -d' ' -f1) || return 1
    [[ -n "$st" && "$st" != Z && "$st" != X ]]
}

_topo_wait_gone() {  # pids... ; up to ~5 s
    local i pid alive
    for ((i = 0; i < 50; i++)); do
        alive=0
        for pid in "$@"; do
            _topo_alive "$pid" && alive=1
        done
        ((alive)) || return 0
        sleep 0.1
    done
    return 1
}

topo_down() {
    local prefix=$1
    _topo_check_prefix "$prefix" || return 2
    local tmp ns role pidf pid pids
    tmp=$(topo_tmpdir "$prefix")

    # 0. the servers.sh "containers" (database / cache / RPC servers), if any
    local r any_srv=0
    for r in mysql pg redis mc thrift mongo; do
        _topo_ns_exists "${prefix}$r" && any_srv=1
    done
    if ((any_srv)); then
        (. "$(dirname "${BASH_SOURCE[0]}")/servers.sh" && servers_down "$prefix")
    fi

    # 1. servers, by pid file (only if that pid really lives in our namespace,
    #    so a stale pid file can never make us kill somebody else's process).
    for role in web:nginx/nginx.pid dns:dnsmasq/dnsmasq.pid; do
        ns=${prefix}${role%%:*}
        pidf=$tmp/${role#*:}
        [[ -f "$pidf" ]] || continue
        pid=$(tr -dc 0-9 <"$pidf")
        if _topo_ns_exists "$ns" && _topo_pid_in_ns "$ns" "$pid"; then
            kill -TERM "$pid" 2>/dev/null
            _topo_wait_gone "$pid" || kill -KILL "$pid" 2>/dev/null
        fi
    done

    # 2. anything still running inside one of *our* namespaces (nginx workers,
    #    dnsmasq TCP children, a tcpdump or agent left behind by a caller...).
    for role in web dns cli host; do
        ns=${prefix}${role}
        _topo_ns_exists "$ns" || continue
        pids=$(ip netns pids "$ns" 2>/dev/null | tr '\n' ' ')
        if [[ -n "${pids// /}" ]]; then
            # shellcheck disable=SC2086
            kill -TERM $pids 2>/dev/null
            # shellcheck disable=SC2086
            _topo_wait_gone $pids || kill -KILL $pids 2>/dev/null
            # shellcheck disable=SC2086
            _topo_wait_gone $pids
        fi
    done

    # 3. namespaces (takes the veths and the bridge with them)
    for role in web dns cli host; do
        ns=${prefix}${role}
        if _topo_ns_exists "$ns"; then
            ip netns del "$ns" 2>/dev/null || _topo_log "warning: could not delete netns $ns"
        fi
    done

    # 4. temp dir
    if [[ -d "$tmp" && "${HB_TOPO_KEEP:-0}" != 1 ]]; then
        rm -rf -- "$tmp"
    fi
    return 0
}

# deterministic 4321-byte index.html
_topo_make_index() {
    local out=$1 size=$2 head foot i
    head='<!DOCTYPE html>
<html><head><title>hostbeat test page</title></head>
<body>
<h1>hostbeat integration test</h1>
<pre>
'
    foot='</pre>
</body></html>
'
    {
        printf '%s' "$head"
        for ((i = 0; i < 200; i++)); do
            printf 'line %04d: the quick brown fox jumps over the lazy dog\n' "$i"
        done
    } | head -c $((size - ${#foot})) >"$out"
    printf '%s' "$foot" >>"$out"
}

_topo_write_nginx_conf() {
    local tmp=$1
    cat >"$tmp/nginx/nginx.conf" <<EOF
# private nginx config for hostbeat integration tests (generated)
user root root;
worker_processes 1;
pid $tmp/nginx/nginx.pid;
error_log $tmp/nginx/error.log info;

events {
    worker_connections 64;
}

http {
    access_log $tmp/nginx/access.log;
    client_body_temp_path $tmp/nginx/tmp/body;
    proxy_temp_path       $tmp/nginx/tmp/proxy;
    fastcgi_temp_path     $tmp/nginx/tmp/fastcgi;
    uwsgi_temp_path       $tmp/nginx/tmp/uwsgi;
    scgi_temp_path        $tmp/nginx/tmp/scgi;

    types {
        text/html                html;
        text/plain               txt;
        application/octet-stream bin;
    }
    default_type application/octet-stream;

    server_tokens off;
    sendfile on;
    keepalive_timeout 65;
    keepalive_requests 100;

    server {
        listen $TOPO_WEB_IP:80;
        server_name web.$TOPO_ZONE;
        root $tmp/www;
        index index.html;

        location = /nocontent { return 204; }
        location = /submit {
            default_type text/plain;
            return 200 "ok\n";
        }
        location / { try_files \$uri \$uri/ =404; }
    }
}
EOF
}

_topo_wait_listen() {  # ns proto(t|u) ip:port  ; up to ~5 s
    local ns=$1 proto=$2 addr=$3 i
    for ((i = 0; i < 50; i++)); do
        if ip netns exec "$ns" ss -Hn"${proto}"l 2>/dev/null | awk '{print $4}' | grep -qx -- "$addr"; then
            return 0
        fi
        sleep 0.1
    done
    _topo_log "$ns: nothing listening on $addr/$proto"
    return 1
}

_topo_up_steps() {
    local prefix=$1 tmp=$2
    local hostns=${prefix}host webns=${prefix}web dnsns=${prefix}dns clins=${prefix}cli
    local ns role ip n veth

    # --- namespaces, loopback, no IPv6 (keeps ND/MLD/RS noise off docker0)
    for ns in "$hostns" "$webns" "$dnsns" "$clins"; do
        ip netns add "$ns" || return 1
        ip -n "$ns" link set lo up || return 1
        ip netns exec "$ns" sysctl -qw net.ipv6.conf.all.disable_ipv6=1 >/dev/null || true
        ip netns exec "$ns" sysctl -qw net.ipv6.conf.default.disable_ipv6=1 >/dev/null || true
    done

    # --- the bridge, exactly like Docker's
    ip -n "$hostns" link add name "$TOPO_BRIDGE" type bridge stp_state 0 forward_delay 0 || return 1
    ip -n "$hostns" addr add "$TOPO_HOST_IP/16" dev "$TOPO_BRIDGE" || return 1
    ip -n "$hostns" link set "$TOPO_BRIDGE" up || return 1

    # --- containers
    n=0
    for role in web:$TOPO_WEB_IP dns:$TOPO_DNS_IP cli:$TOPO_CLI_IP; do
        n=$((n + 1))
        ns=${prefix}${role%%:*}
        ip=${role#*:}
        veth=$(_topo_veth "$prefix" "$n")
        ip -n "$hostns" link add "$veth" type veth peer name eth0 netns "$ns" || return 1
        ip -n "$hostns" link set "$veth" master "$TOPO_BRIDGE" || return 1
        ip -n "$hostns" link set "$veth" up || return 1
        ip -n "$ns" addr add "$ip/16" dev eth0 || return 1
        ip -n "$ns" link set eth0 up || return 1
        ip -n "$ns" route add default via "$TOPO_HOST_IP" dev eth0 || return 1
    done

    # --- web content
    mkdir -p "$tmp/www" "$tmp/nginx/tmp" "$tmp/dnsmasq" || return 1
    _topo_make_index "$tmp/www/index.html" "$TOPO_INDEX_SIZE" || return 1
    yes 'hostbeat big.bin deterministic payload 0123456789abcdefghijklmnopqrstuvwxyz' |
        head -c "$TOPO_BIG_SIZE" >"$tmp/www/big.bin" || return 1
    for n in 1 2 3; do
        printf 'keep-alive response %d\n' "$n" >"$tmp/www/ka$n.txt"
    done
    if [[ $(stat -c %s "$tmp/www/index.html") != "$TOPO_INDEX_SIZE" ||
          $(stat -c %s "$tmp/www/big.bin") != "$TOPO_BIG_SIZE" ]]; then
        _topo_log "generated content has the wrong size"
        return 1
    fi
    # fixed mtimes -> stable Last-Modified / ETag headers between runs
    touch -d '2024-01-01 00:00:00 UTC' "$tmp"/www/*
    chmod -R a+rX "$tmp/www"

    # --- nginx in web
    _topo_write_nginx_conf "$tmp"
    ip netns exec "$webns" nginx -q -t -p "$tmp/nginx/" -c "$tmp/nginx/nginx.conf" -e "$tmp/nginx/error.log" ||
        return 1
    ip netns exec "$webns" nginx -p "$tmp/nginx/" -c "$tmp/nginx/nginx.conf" -e "$tmp/nginx/error.log" ||
        return 1

    # --- dnsmasq in dns (authoritative-only local data, never forwards)
    local z=$TOPO_ZONE
    ip netns exec "$dnsns" dnsmasq \
        --conf-file=/dev/null \
        --pid-file="$tmp/dnsmasq/dnsmasq.pid" \
        --log-facility="$tmp/dnsmasq/dnsmasq.log" \
        --log-queries \
        --user=root --group=root \
        --no-resolv --no-hosts --no-poll \
        --bind-interfaces --listen-address="$TOPO_DNS_IP" --port=53 \
        --local="/$z/" \
        --host-record="www.$z,$TOPO_WEB_IP,$TOPO_WEB_AAAA" \
        --host-record="tcp.$z,$TOPO_WEB_IP" \
        --host-record="mail.$z,$TOPO_WEB_IP" \
        --host-record="ns.$z,$TOPO_DNS_IP" \
        --mx-host="$z,mail.$z,10" \
        --txt-record="$z,v=hostbeat-test" \
        --cname="alias.$z,www.$z" ||
        return 1

    _topo_wait_listen "$webns" t "$TOPO_WEB_IP:80" || return 1
    _topo_wait_listen "$dnsns" u "$TOPO_DNS_IP:53" || return 1
    _topo_wait_listen "$dnsns" t "$TOPO_DNS_IP:53" || return 1
    [[ -s "$tmp/nginx/nginx.pid" && -s "$tmp/dnsmasq/dnsmasq.pid" ]] || {
        _topo_log "missing pid file"
        return 1
    }

    # --- env file
    cat >"$tmp/topology.env" <<EOF
TOPO_PREFIX=$prefix
TOPO_TMP=$tmp
TOPO_NS_HOST=$hostns
TOPO_NS_WEB=$webns
TOPO_NS_DNS=$dnsns
TOPO_NS_CLI=$clins
TOPO_BRIDGE=$TOPO_BRIDGE
TOPO_SUBNET=$TOPO_SUBNET
TOPO_HOST_IP=$TOPO_HOST_IP
TOPO_WEB_IP=$TOPO_WEB_IP
TOPO_DNS_IP=$TOPO_DNS_IP
TOPO_CLI_IP=$TOPO_CLI_IP
TOPO_ZONE=$TOPO_ZONE
TOPO_WEB_AAAA=$TOPO_WEB_AAAA
TOPO_INDEX_SIZE=$TOPO_INDEX_SIZE
TOPO_BIG_SIZE=$TOPO_BIG_SIZE
TOPO_VETH_WEB=$(_topo_veth "$prefix" 1)
TOPO_VETH_DNS=$(_topo_veth "$prefix" 2)
TOPO_VETH_CLI=$(_topo_veth "$prefix" 3)
EOF
    return 0
}

topo_up() {
    local prefix=$1 with_db=0
    [[ "${2:-}" == --with-db ]] && with_db=1
    _topo_check_prefix "$prefix" || return 2
    if [[ $EUID -ne 0 ]]; then
        _topo_log "must run as root"
        return 1
    fi
    local tmp
    tmp=$(topo_tmpdir "$prefix")

    # stale state from an earlier run with the same prefix -> clean it first
    if [[ -e "$tmp" ]] || _topo_ns_exists "${prefix}host" || _topo_ns_exists "${prefix}web" ||
        _topo_ns_exists "${prefix}dns" || _topo_ns_exists "${prefix}cli"; then
        _topo_log "stale state for prefix $prefix found, tearing it down first"
        topo_down "$prefix"
    fi
    mkdir -m 0755 -- "$tmp" || return 1

    if ! _topo_up_steps "$prefix" "$tmp"; then
        _topo_log "up failed; logs follow, then tearing down"
        local f
        for f in "$tmp/nginx/error.log" "$tmp/dnsmasq/dnsmasq.log"; do
            [[ -f "$f" ]] && { echo "--- $f" >&2; tail -n 20 "$f" >&2; }
        done
        topo_down "$prefix"
        return 1
    fi
    if ((with_db)); then
        local rc=0
        (. "$(dirname "${BASH_SOURCE[0]}")/servers.sh" && servers_up "$prefix") || rc=$?
        if ((rc)); then
            topo_down "$prefix"
            return "$rc"
        fi
    fi
    echo "$tmp"
}

# --- CLI -------------------------------------------------------------------
if [[ "${BASH_SOURCE[0]}" == "$0" ]]; then
    set -u
    case "${1:-}" in
    up)   topo_up "${2:-}" "${3:-}" ;;
    down) topo_down "${2:-}" ;;
    env)
        f=$(topo_tmpdir "${2:-}")/topology.env
        if [[ -f "$f" ]]; then echo "$f"; else _topo_log "not up: $f missing"; exit 1; fi
        ;;
    *)
        echo "usage: $0 up PREFIX [--with-db] | down PREFIX | env PREFIX" >&2
        exit 2
        ;;
    esac
fi
