#!/usr/bin/env bash
# tests/integration/servers.sh -- real database / cache / RPC servers as extra
# "containers" on the docker0 bridge of a topology built by topology.sh.
#
#   servers.sh up PREFIX     (topology must be up) start them all, wait until each
#                            accepts connections, write ${TMP}/servers.env
#   servers.sh down PREFIX   kill them by pid/namespace, delete their namespaces
#
# Also available as `topology.sh up PREFIX --with-db`; `topology.sh down PREFIX`
# takes these namespaces down too.  Can be sourced (servers_up / servers_down).
#
#   ${PREFIX}mysql   172.17.0.5   mariadbd 10.11   :3306  user hb / hbpass, db hbtest
#   ${PREFIX}pg      172.17.0.6   postgres 15      :5432  user hb / hbpass (scram), db hbtest
#   ${PREFIX}redis   172.17.0.7   redis-server 7   :6379
#   ${PREFIX}mc      172.17.0.8   memcached        :11211 tcp + udp
#   ${PREFIX}thrift  172.17.0.9   thrift_server.py :9090 binary/buffered  :9091 binary/framed
#                                                  :9092 compact/buffered :9093 compact/framed
#   ${PREFIX}mongo   172.17.0.10  mongo_wire.py    :27017 (OP_MSG; only if the file exists)
#
# Every server listens only on its namespace address; data, sockets, pid files and
# logs live under ${TMP}/db (removed by topology.sh down).

HERE_SRV=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=topology.sh
declare -F topo_down >/dev/null || . "$HERE_SRV/topology.sh"

SRV_MYSQL_IP=172.17.0.5
SRV_PG_IP=172.17.0.6
SRV_REDIS_IP=172.17.0.7
SRV_MC_IP=172.17.0.8
SRV_THRIFT_IP=172.17.0.9
SRV_MONGO_IP=172.17.0.10
SRV_DB_USER=hb
SRV_DB_PASS=hbpass
SRV_DB_NAME=hbtest
SRV_THRIFT_PORTS="9090:binary:buffered 9091:binary:framed 9092:compact:buffered 9093:compact:framed"
# role:ip:veth-number
SRV_ROLES="mysql:$SRV_MYSQL_IP:4 pg:$SRV_PG_IP:5 redis:$SRV_REDIS_IP:6 mc:$SRV_MC_IP:7 thrift:$SRV_THRIFT_IP:8 mongo:$SRV_MONGO_IP:9"
SRV_PY=/usr/bin/python3
SRV_PG_BIN=/usr/lib/postgresql/15/bin
SRV_MONGO_PY=$HERE_SRV/mongo_wire.py

_srv_log() { echo "servers: $*" >&2; }

# wait until something listens on ip:port (tcp|udp), up to $4 tenths of a second
_srv_wait_listen() {
    local ns=$1 proto=$2 addr=$3 tries=${4:-100} i
    for ((i = 0; i < tries; i++)); do
        if ip netns exec "$ns" ss -Hn"${proto}"l 2>/dev/null | awk '{print $4}' | grep -qx -- "$addr"; then
            return 0
        fi
        sleep 0.1
    done
    _srv_log "$ns: nothing listening on $addr/$proto"
    return 1
}

servers_down() {
    local prefix=$1 entry ns pids
    _topo_check_prefix "$prefix" || return 2
    for entry in $SRV_ROLES; do
        ns=${prefix}${entry%%:*}
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
        ip netns del "$ns" 2>/dev/null || _srv_log "warning: could not delete netns $ns"
    done
    return 0
}

_srv_ns_up() {  # prefix role ip n
    local prefix=$1 role=$2 ip=$3 n=$4 ns veth
    ns=${prefix}${role}
    veth=$(_topo_veth "$prefix" "$n")
    ip netns add "$ns" || return 1
    ip -n "$ns" link set lo up || return 1
    ip netns exec "$ns" sysctl -qw net.ipv6.conf.all.disable_ipv6=1 >/dev/null || true
    ip netns exec "$ns" sysctl -qw net.ipv6.conf.default.disable_ipv6=1 >/dev/null || true
    ip -n "${prefix}host" link add "$veth" type veth peer name eth0 netns "$ns" || return 1
    ip -n "${prefix}host" link set "$veth" master "$TOPO_BRIDGE" || return 1
    ip -n "${prefix}host" link set "$veth" up || return 1
    ip -n "$ns" addr add "$ip/16" dev eth0 || return 1
    ip -n "$ns" link set eth0 up || return 1
    ip -n "$ns" route add default via "$TOPO_HOST_IP" dev eth0 || return 1
}

# --- mariadb: install a datadir, start, create a password user over the socket
_srv_mysql_init() {  # dir  (runs in the background while the others start)
    local d=$1
    mkdir -p "$d/data" || return 1
    mariadb-install-db --no-defaults --datadir="$d/data" --user=root \
        --auth-root-authentication-method=socket --skip-test-db \
        --innodb-log-file-size=8M >"$d/install.log" 2>&1
}

_srv_mysql_start() {  # prefix dir
    local prefix=$1 d=$2 ns=${1}mysql i
    ip netns exec "$ns" mariadbd --no-defaults --datadir="$d/data" --socket="$d/mysqld.sock" \
        --pid-file="$d/mysqld.pid" --bind-address="$SRV_MYSQL_IP" --port=3306 --user=root \
        --log-error="$d/error.log" --skip-name-resolve --skip-log-bin \
        --innodb-log-file-size=8M --innodb-buffer-pool-size=16M --performance-schema=OFF \
        </dev/null >/dev/null 2>&1 &
    echo $! >"$d/mysqld.launcher.pid"
}

_srv_mysql_ready() {  # prefix dir
    local prefix=$1 d=$2 i
    _srv_wait_listen "${prefix}mysql" t "$SRV_MYSQL_IP:3306" 300 || return 1
    for ((i = 0; i < 50; i++)); do
        [[ -S "$d/mysqld.sock" ]] && break
        sleep 0.1
    done
    mariadb --no-defaults -S "$d/mysqld.sock" -u root --batch -e "
        CREATE DATABASE $SRV_DB_NAME;
        CREATE USER '$SRV_DB_USER'@'172.17.%' IDENTIFIED BY '$SRV_DB_PASS';
        GRANT ALL PRIVILEGES ON $SRV_DB_NAME.* TO '$SRV_DB_USER'@'172.17.%';" \
        >>"$d/setup.log" 2>&1 || { _srv_log "mariadb: user setup failed"; return 1; }
}

# --- postgres: initdb as postgres, scram for 172.17/16, user hb over the socket
_srv_pg_init() {  # dir
    local d=$1
    mkdir -p "$d/data" "$d/sock" || return 1
    printf '%s\n' "$SRV_DB_PASS" >"$d/pwfile"
    chown -R postgres:postgres "$d" || return 1
    chmod 0700 "$d/data"
    runuser -u postgres -- "$SRV_PG_BIN/initdb" -D "$d/data" -U postgres --pwfile="$d/pwfile" \
        --auth-local=trust --auth-host=scram-sha-256 -E UTF8 --locale=C.UTF-8 -N \
        >"$d/initdb.log" 2>&1 || return 1
    echo "host all all $TOPO_SUBNET scram-sha-256" >>"$d/data/pg_hba.conf"
}

_srv_pg_start() {  # prefix dir
    local prefix=$1 d=$2
    ip netns exec "${prefix}pg" runuser -u postgres -- "$SRV_PG_BIN/postgres" -D "$d/data" \
        -k "$d/sock" -h "$SRV_PG_IP" -p 5432 -c fsync=off -c shared_buffers=16MB \
        -c max_connections=20 -c logging_collector=off \
        </dev/null >"$d/postgres.log" 2>&1 &
}

_srv_pg_ready() {  # prefix dir
    local prefix=$1 d=$2
    _srv_wait_listen "${prefix}pg" t "$SRV_PG_IP:5432" 300 || return 1
    runuser -u postgres -- "$SRV_PG_BIN/psql" -h "$d/sock" -p 5432 -U postgres -d postgres \
        -v ON_ERROR_STOP=1 -qX \
        -c "CREATE ROLE $SRV_DB_USER LOGIN PASSWORD '$SRV_DB_PASS'" \
        -c "CREATE DATABASE $SRV_DB_NAME OWNER $SRV_DB_USER" \
        >>"$d/setup.log" 2>&1 || { _srv_log "postgres: user setup failed"; return 1; }
}

_srv_up_steps() {
    local prefix=$1 tmp=$2 entry d
    local db=$tmp/db
    rm -rf -- "$db"  # a fresh datadir every time (servers_down ran before)
    mkdir -p "$db"/{mysql,pg,redis,mc,thrift,mongo} || return 1
    chmod 0755 "$tmp" "$db"

    for entry in $SRV_ROLES; do
        IFS=: read -r role ip n <<<"$entry"
        [[ $role == mongo && ! -f "$SRV_MONGO_PY" ]] && continue
        _srv_ns_up "$prefix" "$role" "$ip" "$n" || return 1
    done

    # the two slow initialisations run in parallel (killed by servers_up on failure)
    _srv_mysql_init "$db/mysql" &
    local mysql_init=$!
    _srv_pg_init "$db/pg" &
    local pg_init=$!
    _SRV_INIT_PIDS="$mysql_init $pg_init"

    ip netns exec "${prefix}redis" redis-server --bind "$SRV_REDIS_IP" --port 6379 --save '' \
        --appendonly no --protected-mode no --daemonize no --dir "$db/redis" \
        --pidfile "$db/redis/redis.pid" --logfile "$db/redis/redis.log" \
        </dev/null >/dev/null 2>&1 &
    ip netns exec "${prefix}mc" memcached -u nobody -l "$SRV_MC_IP" -p 11211 -U 11211 -m 16 -c 64 \
        </dev/null >"$db/mc/memcached.log" 2>&1 &
    echo $! >"$db/mc/memcached.pid"
    ip netns exec "${prefix}thrift" "$SRV_PY" "$HERE_SRV/thrift_server.py" --host "$SRV_THRIFT_IP" \
        --ports "$SRV_THRIFT_PORTS" </dev/null >"$db/thrift/thrift.log" 2>&1 &
    echo $! >"$db/thrift/thrift.pid"
    if [[ -f "$SRV_MONGO_PY" ]]; then
        ip netns exec "${prefix}mongo" "$SRV_PY" "$SRV_MONGO_PY" server --host "$SRV_MONGO_IP" \
            --port 27017 </dev/null >"$db/mongo/mongo.log" 2>&1 &
        echo $! >"$db/mongo/mongo.pid"
    fi

    wait "$mysql_init" || { _srv_log "mariadb-install-db failed"; tail -n 20 "$db/mysql/install.log" >&2; return 1; }
    _srv_mysql_start "$prefix" "$db/mysql"
    wait "$pg_init" || { _srv_log "initdb failed"; tail -n 20 "$db/pg/initdb.log" >&2; return 1; }
    _srv_pg_start "$prefix" "$db/pg"

    _srv_wait_listen "${prefix}redis" t "$SRV_REDIS_IP:6379" || return 1
    _srv_wait_listen "${prefix}mc" t "$SRV_MC_IP:11211" || return 1
    _srv_wait_listen "${prefix}mc" u "$SRV_MC_IP:11211" || return 1
    local spec
    for spec in $SRV_THRIFT_PORTS; do
        _srv_wait_listen "${prefix}thrift" t "$SRV_THRIFT_IP:${spec%%:*}" || return 1
    done
    if [[ -f "$SRV_MONGO_PY" ]]; then
        _srv_wait_listen "${prefix}mongo" t "$SRV_MONGO_IP:27017" || return 1
    fi
    _srv_mysql_ready "$prefix" "$db/mysql" || return 1
    _srv_pg_ready "$prefix" "$db/pg" || return 1

    cat >"$tmp/servers.env" <<EOF
SRV_NS_MYSQL=${prefix}mysql
SRV_NS_PG=${prefix}pg
SRV_NS_REDIS=${prefix}redis
SRV_NS_MC=${prefix}mc
SRV_NS_THRIFT=${prefix}thrift
SRV_NS_MONGO=${prefix}mongo
SRV_MYSQL_IP=$SRV_MYSQL_IP
SRV_PG_IP=$SRV_PG_IP
SRV_REDIS_IP=$SRV_REDIS_IP
SRV_MC_IP=$SRV_MC_IP
SRV_THRIFT_IP=$SRV_THRIFT_IP
SRV_MONGO_IP=$SRV_MONGO_IP
SRV_MONGO=$([[ -f "$SRV_MONGO_PY" ]] && echo 1 || echo 0)
SRV_DB_USER=$SRV_DB_USER
SRV_DB_PASS=$SRV_DB_PASS
SRV_DB_NAME=$SRV_DB_NAME
SRV_THRIFT_PORTS="$SRV_THRIFT_PORTS"
EOF
}

# the packages the servers need (prints the missing ones)
servers_missing() {
    local b missing=()
    for b in mariadbd mariadb mariadb-install-db redis-server redis-cli memcached runuser \
        "$SRV_PG_BIN/postgres" "$SRV_PG_BIN/initdb" psql pgbench; do
        command -v "$b" >/dev/null 2>&1 || missing+=("${b##*/}")
    done
    "$SRV_PY" -c 'import thrift.protocol.TCompactProtocol' 2>/dev/null || missing+=(python3-thrift)
    id postgres >/dev/null 2>&1 || missing+=("user postgres")
    echo "${missing[*]}"
}

servers_up() {
    local prefix=$1 tmp
    _topo_check_prefix "$prefix" || return 2
    tmp=$(topo_tmpdir "$prefix")
    if [[ ! -f "$tmp/topology.env" ]] || ! _topo_ns_exists "${prefix}host"; then
        _srv_log "topology $prefix is not up"
        return 1
    fi
    local missing
    missing=$(servers_missing)
    if [[ -n "$missing" ]]; then
        _srv_log "missing: $missing (run tests/deps.sh)"
        return 3
    fi
    servers_down "$prefix"
    if ! _srv_up_steps "$prefix" "$tmp"; then
        _srv_log "up failed; logs follow, then tearing the servers down"
        local f
        for f in "$tmp"/db/*/*.log; do
            [[ -s "$f" ]] && { echo "--- $f" >&2; tail -n 15 "$f" >&2; }
        done
        # shellcheck disable=SC2086
        kill -TERM ${_SRV_INIT_PIDS:-} 2>/dev/null
        servers_down "$prefix"
        return 1
    fi
    return 0
}

if [[ "${BASH_SOURCE[0]}" == "$0" ]]; then
    set -u
    case "${1:-}" in
    up)   servers_up "${2:-}" ;;
    down) servers_down "${2:-}" ;;
    missing) servers_missing ;;
    *)
        echo "usage: $0 up|down|missing PREFIX" >&2
        exit 2
        ;;
    esac
fi
