#!/usr/bin/python3
"""Database / cache / RPC workload with real clients, for hostbeat's live tests.

    traffic_db.py PREFIX [mysql pgsql redis memcache thrift mongodb ...]   (default: all)

Runs inside ${PREFIX}cli (re-executes itself there with `ip netns exec`) against the
servers of `servers.sh up PREFIX` and prints the ledger on stdout, one line per
operation the client put on the wire, in the format of hbledger.py:

    mysql    VERB    DB.TABLE|-   OK|Error  CLIENT SERVER tcp [stmt=prepare|execute]
    pgsql    VERB    -            OK|Error  ...                [ext=1]
    redis    COMMAND KEY|-        OK|Error  ...
    memcache command KEY[,KEY..]  OK|Error  ... tcp|udp        [binary=1] [noreply=1]
    thrift   METHOD  -            OK|Error  ... tcp port=P proto=binary|compact transport=...
    mongodb  ...                                                (lines of mongo_wire.py)

The status column is what the client actually saw (an SQL error, a Redis -ERR, ...),
spelled as Packetbeat's `status` field.  When that differs from what the workload
expects, a diagnostic goes to stderr and the exit status is 1 (the ledger still tells
the truth).  Clients: mariadb(1), perl DBD::MariaDB (binary prepared statements),
psql(1), pgbench -M extended, redis-cli, python sockets (Redis pipelining, memcache
text/binary/UDP), thrift_client.py, mongo_wire.py.  stdlib only.
"""

from __future__ import annotations

import os
import re
import socket
import struct
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
PY = "/usr/bin/python3"
ALL = ("mysql", "pgsql", "redis", "memcache", "thrift", "mongodb")
GAP = float(os.environ.get("TRAFFIC_GAP", "0.05"))
CLI_IP = "172.17.0.4"

FAIL = []


def env_file(prefix):
    tmp = os.path.join(os.environ.get("TMPDIR", "/tmp"), "hostbeat-topo." + prefix)
    env = {}
    for name in ("topology.env", "servers.env"):
        path = os.path.join(tmp, name)
        if not os.path.exists(path):
            sys.exit("traffic_db: %s missing (topology.sh up %s --with-db ?)" % (path, prefix))
        for line in open(path, encoding="utf-8"):
            if "=" in line:
                k, v = line.strip().split("=", 1)
                env[k] = v.strip('"')
    return env


def emit(proto, verb, target, status, server, transport="tcp", **ann):
    extra = "".join(" %s=%s" % (k, v) for k, v in ann.items())
    print("%s %s %s %s %s %s %s%s" % (proto, verb, target or "-", status.replace(" ", "_"),
                                      CLI_IP, server, transport, extra), flush=True)


def check(what, want, got):
    if want != got:
        msg = "traffic_db: %s: expected %r, got %r" % (what, want, got)
        print(msg, file=sys.stderr)
        FAIL.append(msg)


def run(argv, stdin=None, env=None, timeout=60):
    e = dict(os.environ)
    e.update(env or {})
    return subprocess.run(argv, input=stdin, capture_output=True, text=True, env=e,
                          timeout=timeout)


# ------------------------------------------------------------------------------ MySQL

MYSQL_SCRIPT = [
    # (statement, path reported (Packetbeat: the tables of the result set; hostbeat also
    # names the table of INSERT/UPDATE/DELETE/REPLACE from the SQL text) or None, expected)
    ("CREATE TABLE items (id INT PRIMARY KEY, name VARCHAR(32), qty INT)", None, "OK"),
    ("INSERT INTO items VALUES (1,'apple',3),(2,'pear',5),(3,'plum',7)", "hbtest.items", "OK"),
    ("SELECT id, name, qty FROM items ORDER BY id", "hbtest.items", "OK"),
    ("UPDATE items SET qty = qty + 1 WHERE id <= 2", "hbtest.items", "OK"),
    ("SELEC name FROM items", None, "Error"),            # syntax error (1064)
    ("SELECT * FROM no_such_table", None, "Error"),       # 1146
    ("PREPARE s1 FROM 'SELECT name, qty FROM items WHERE id = ?'", None, "OK"),
    ("SET @id = 2", None, "OK"),
    ("EXECUTE s1 USING @id", "hbtest.items", "OK"),
    ("DEALLOCATE PREPARE s1", None, "OK"),
    ("DELETE FROM items WHERE id = 3", "hbtest.items", "OK"),
]

# DBD::MariaDB with mariadb_server_prepare=1: COM_STMT_PREPARE, 2 x COM_STMT_EXECUTE,
# COM_STMT_CLOSE (no response, not a transaction).  The driver itself sends 4 SETs
# (character set / collation) right after connecting.
MYSQL_PERL = r'''
use strict; use warnings; use DBI;
my ($host, $user, $pass, $db) = @ARGV;
my $dbh = DBI->connect("DBI:MariaDB:database=$db;host=$host;port=3306;mariadb_server_prepare=1",
                       $user, $pass, {RaiseError => 1, PrintError => 0, AutoCommit => 1});
my $sth = $dbh->prepare("SELECT name, qty FROM items WHERE id = ?");
for my $id (1, 2) {
    $sth->execute($id);
    while (my @r = $sth->fetchrow_array) { print "row $id @r\n"; }
}
$sth->finish; undef $sth;
$dbh->disconnect;
'''
MYSQL_PERL_SETS = 4


def traffic_mysql(env):
    ip, user, pw, db = env["SRV_MYSQL_IP"], env["SRV_DB_USER"], env["SRV_DB_PASS"], env["SRV_DB_NAME"]
    base = ["mariadb", "--no-defaults", "--skip-ssl", "-h", ip, "-P", "3306", "-u", user,
            "-p" + pw, "--batch", "--force", db]
    # 1. the scripted session: one statement per line on stdin, one connection
    script = "".join(s + ";\n" for s, _, _ in MYSQL_SCRIPT)
    r = run(base, stdin=script)
    err_lines = {int(m) for m in re.findall(r"^ERROR \d+ \(\w+\) at line (\d+)", r.stderr, re.M)}
    if r.returncode not in (0, 1):
        FAIL.append("mariadb client rc=%d: %s" % (r.returncode, r.stderr.strip()))
    for n, (stmt, path, want) in enumerate(MYSQL_SCRIPT, 1):
        got = "Error" if n in err_lines else "OK"
        emit("mysql", stmt.split()[0].upper(), path if got == "OK" else None, got, ip)
        check("mysql %r" % stmt, want, got)
    time.sleep(GAP)
    # 2. a second connection with one query on the command line (-e), several rows
    r = run(base + ["-e", "SELECT name FROM items WHERE qty > 1 ORDER BY name"])
    emit("mysql", "SELECT", "hbtest.items" if r.returncode == 0 else None,
         "OK" if r.returncode == 0 else "Error", ip)
    check("mysql -e SELECT rows", "name\napple\npear\n", r.stdout)
    time.sleep(GAP)
    # 3. binary-protocol prepared statement (perl DBD::MariaDB, server-side prepare)
    with tempfile.NamedTemporaryFile("w", suffix=".pl", delete=False) as f:
        f.write(MYSQL_PERL)
    try:
        r = run(["perl", f.name, ip, user, pw, db])
    finally:
        os.unlink(f.name)
    ok = "OK" if r.returncode == 0 else "Error"
    for _ in range(MYSQL_PERL_SETS):
        emit("mysql", "SET", None, ok, ip)
    emit("mysql", "SELECT", None, ok, ip, stmt="prepare")
    emit("mysql", "SELECT", "hbtest.items", ok, ip, stmt="execute")
    emit("mysql", "SELECT", "hbtest.items", ok, ip, stmt="execute")
    check("perl DBD::MariaDB prepared statement rows", "row 1 apple 4\nrow 2 pear 6\n",
          r.stdout if r.returncode == 0 else r.stderr)


# ------------------------------------------------------------------------------ PgSQL

PGBENCH_TX = 3
PGBENCH_SCRIPT = "\\set aid random(1, 2)\nSELECT owner, balance FROM accounts WHERE id = :aid;\n"


def traffic_pgsql(env):
    ip, user, pw, db = env["SRV_PG_IP"], env["SRV_DB_USER"], env["SRV_DB_PASS"], env["SRV_DB_NAME"]
    penv = {"PGPASSWORD": pw, "PGCONNECT_TIMEOUT": "5"}
    psql = ["psql", "-X", "-q", "-h", ip, "-p", "5432", "-U", user, "-d", db]

    def one(sql, want_rc=0):
        r = run(psql + ["-c", sql], env=penv)
        check("psql -c %r rc" % sql, want_rc, r.returncode)
        time.sleep(GAP)
        return r

    one("CREATE TABLE accounts (id int PRIMARY KEY, owner text NOT NULL, balance int)")
    emit("pgsql", "CREATE", None, "OK", ip)
    one("INSERT INTO accounts VALUES (1, 'ann', 100), (2, 'bob', 50), (3, 'cy', 75)")
    emit("pgsql", "INSERT", None, "OK", ip)
    r = one("SELECT id, owner, balance FROM accounts ORDER BY id")
    emit("pgsql", "SELECT", None, "OK", ip)
    check("psql SELECT rows", 3, len(re.findall(r"^\s+\d+ \|", r.stdout, re.M)))
    r = one("INSERT INTO accounts VALUES (1, 'dup', 0)", want_rc=1)
    emit("pgsql", "INSERT", None, "Error" if "23505" in r.stderr or "duplicate key" in r.stderr
         else "OK", ip)
    # several statements in one simple Query message: Packetbeat reports each one
    one("UPDATE accounts SET balance = balance + 1 WHERE id = 2; "
        "SELECT count(*) FROM accounts; DELETE FROM accounts WHERE id = 3")
    emit("pgsql", "UPDATE", None, "OK", ip)
    emit("pgsql", "SELECT", None, "OK", ip)
    emit("pgsql", "DELETE", None, "OK", ip)
    # extended query protocol: pgbench -M extended = Parse/Bind/Describe/Execute/Sync
    with tempfile.NamedTemporaryFile("w", suffix=".sql", delete=False) as f:
        f.write(PGBENCH_SCRIPT)
    try:
        r = run(["pgbench", "-h", ip, "-p", "5432", "-U", user, "-n", "-M", "extended",
                 "-c", "1", "-t", str(PGBENCH_TX), "-f", f.name, db], env=penv)
    finally:
        os.unlink(f.name)
    m = re.search(r"number of transactions actually processed: (\d+)/(\d+)", r.stdout)
    done = int(m.group(1)) if m else 0
    check("pgbench -M extended transactions", PGBENCH_TX, done)
    for _ in range(done):
        emit("pgsql", "SELECT", None, "OK", ip, ext=1)


# ------------------------------------------------------------------------------ Redis

def resp_cmd(*args):
    out = b"*%d\r\n" % len(args)
    for a in args:
        a = a.encode() if isinstance(a, str) else a
        out += b"$%d\r\n%s\r\n" % (len(a), a)
    return out


def resp_read(f):
    """One RESP2 reply from a file object -> (is_error, value)."""
    line = f.readline()
    if not line:
        raise EOFError("connection closed")
    t, rest = line[:1], line[1:-2]
    if t == b"+":
        return False, rest.decode()
    if t == b"-":
        return True, rest.decode()
    if t == b":":
        return False, int(rest)
    if t == b"$":
        n = int(rest)
        if n < 0:
            return False, None
        data = f.read(n + 2)[:-2]
        return False, data.decode()
    if t == b"*":
        n = int(rest)
        return False, [resp_read(f)[1] for _ in range(max(n, 0))]
    raise ValueError("bad RESP reply %r" % line)


def traffic_redis(env):
    ip = env["SRV_REDIS_IP"]
    cli = ["redis-cli", "-h", ip, "-p", "6379"]

    def one(args, key, want, expect=None, resp3=False):
        r = run(cli + (["-3"] if resp3 else []) + list(args))
        out = r.stdout.strip()
        # redis-cli prints errors on stdout ("(error) ..." on a tty, "ERR ..." / "WRONGTYPE
        # ..." otherwise) and exits 0: classify by the text
        status = "Error" if re.match(r"^(\(error\) )?(ERR|WRONGTYPE)\b", out) else "OK"
        if r.returncode != 0:
            status = "Error"
        if resp3:
            emit("redis", "HELLO", "3", "OK", ip)
        emit("redis", args[0].upper(), key, status, ip)
        check("redis-cli %s" % " ".join(args), want, status)
        if expect is not None:
            check("redis-cli %s output" % " ".join(args), expect, out)
        time.sleep(GAP)

    one(["SET", "key1", "hello"], "key1", "OK", "OK")
    one(["GET", "key1"], "key1", "OK", "hello")
    one(["INCR", "counter1"], "counter1", "OK", "1")
    one(["LPUSH", "list1", "a", "b", "c"], "list1", "OK", "3")
    one(["LRANGE", "list1", "0", "-1"], "list1", "OK", "c\nb\na")
    one(["GET", "list1"], "list1", "Error")                       # WRONGTYPE
    one(["HSET", "hash1", "f1", "v1", "f2", "v2"], "hash1", "OK", "2")
    one(["HGETALL", "hash1"], "hash1", "OK", resp3=True)          # HELLO 3 + RESP3 map
    one(["PING"], None, "OK", "PONG")
    # a pipelined batch: all commands in one write, then all replies
    batch = [("SET", "p1", "10"), ("SET", "p2", "20"), ("INCR", "p1"), ("MGET", "p1", "p2"),
             ("INCR", "key1"), ("DEL", "p2"), ("EXISTS", "p2")]
    with socket.create_connection((ip, 6379), timeout=5) as s:
        s.sendall(b"".join(resp_cmd(*c) for c in batch))
        f = s.makefile("rb")
        replies = [resp_read(f) for _ in batch]
    for cmd, (is_err, val) in zip(batch, replies):
        emit("redis", cmd[0], cmd[1], "Error" if is_err else "OK", ip)
    check("redis pipeline replies", [(False, "OK"), (False, "OK"), (False, 11),
                                     (False, ["11", "20"]), (True, "ERR value is not an "
                                                             "integer or out of range"),
                                     (False, 1), (False, 0)], replies)


# --------------------------------------------------------------------------- Memcache

def mc_text_session(ip):
    """Text protocol over TCP: one connection, request by request."""
    s = socket.create_connection((ip, 11211), timeout=5)
    f = s.makefile("rb")

    def read_until(*ends):
        lines = []
        while True:
            line = f.readline()
            if not line:
                raise EOFError("memcached closed the connection")
            lines.append(line.rstrip(b"\r\n").decode())
            if any(lines[-1].startswith(e) for e in ends):
                return lines

    def op(cmd, keys, raw, ends, want, status_of=None, **ann):
        s.sendall(raw)
        got = read_until(*ends)
        status = status_of(got) if status_of else ("OK" if got[-1] in ends[:1] else "Error")
        emit("memcache", cmd, ",".join(keys), status, ip, "tcp", **ann)
        check("memcache text %s %s" % (cmd, keys), want, status)
        time.sleep(GAP)
        return got

    op("set", ["k1"], b"set k1 0 0 5\r\nhello\r\n", ("STORED", "NOT_STORED"), "OK")
    op("set", ["k2"], b"set k2 5 0 3\r\nabc\r\n", ("STORED", "NOT_STORED"), "OK")
    got = op("get", ["k1", "k2", "k3"], b"get k1 k2 k3\r\n", ("END",), "OK")
    check("memcache text multi-get values", 2, sum(l.startswith("VALUE ") for l in got))
    op("delete", ["k1"], b"delete k1\r\n", ("DELETED", "NOT_FOUND"), "OK")
    op("delete", ["k1"], b"delete k1\r\n", ("DELETED", "NOT_FOUND"), "Error")  # NOT_FOUND
    op("set", ["ctr"], b"set ctr 0 0 2\r\n10\r\n", ("STORED",), "OK")
    got = op("incr", ["ctr"], b"incr ctr 5\r\n", ("15", "NOT_FOUND", "CLIENT_ERROR"), "OK")
    op("decr", ["ctr"], b"decr ctr 3\r\n", ("12", "NOT_FOUND"), "OK")
    # noreply: no response on the wire; the next get proves the server stored it
    s.sendall(b"set nr1 0 0 2 noreply\r\nnr\r\n")
    emit("memcache", "set", "nr1", "OK", ip, "tcp", noreply=1)
    time.sleep(GAP)
    got = op("get", ["nr1"], b"get nr1\r\n", ("END",), "OK")
    check("memcache noreply stored", ["VALUE nr1 0 2", "nr", "END"], got)
    s.close()


MC_MAGIC_REQ, MC_MAGIC_RES = 0x80, 0x81
MC_OPS = {"get": 0x00, "set": 0x01, "delete": 0x04, "incr": 0x05}


def mc_bin_request(op, key, value=b"", extras=b"", opaque=0):
    key = key.encode()
    body = extras + key + value
    return struct.pack(">BBHBBHIIQ", MC_MAGIC_REQ, MC_OPS[op], len(key), len(extras), 0, 0,
                       len(body), opaque, 0) + body


def mc_bin_response(s):
    hdr = b""
    while len(hdr) < 24:
        chunk = s.recv(24 - len(hdr))
        if not chunk:
            raise EOFError("memcached closed the connection")
        hdr += chunk
    magic, opcode, klen, elen, _, status, blen, opaque, cas = struct.unpack(">BBHBBHIIQ", hdr)
    body = b""
    while len(body) < blen:
        body += s.recv(blen - len(body))
    return status, opaque, body[elen + klen:]


def mc_binary_session(ip):
    s = socket.create_connection((ip, 11211), timeout=5)
    ops = [
        ("set", "bk1", b"binary-value", struct.pack(">II", 0, 0), 0, "OK"),
        ("get", "bk1", b"", b"", 0, "OK"),
        ("get", "bk2", b"", b"", 1, "Error"),          # Key not found (status 1)
        ("incr", "bctr", b"", struct.pack(">QQI", 2, 7, 0), 0, "OK"),   # creates with 7
        ("incr", "bctr", b"", struct.pack(">QQI", 2, 7, 0), 0, "OK"),   # -> 9
        ("delete", "bk1", b"", b"", 0, "OK"),
    ]
    for i, (op, key, value, extras, want_status, want) in enumerate(ops, 1):
        s.sendall(mc_bin_request(op, key, value, extras, opaque=0x1000 + i))
        status, opaque, val = mc_bin_response(s)
        got = "OK" if status == 0 else ("Server Error" if status > 0x80 else "Error")
        emit("memcache", op, key, got, ip, "tcp", binary=1)
        check("memcache binary %s %s" % (op, key), (want_status, 0x1000 + i, want),
              (status, opaque, got))
        if op == "incr" and i == 5:
            check("memcache binary incr value", 9, struct.unpack(">Q", val)[0])
        time.sleep(GAP)
    s.close()


def mc_udp_session(ip):
    """Text protocol over UDP (8-byte frame header: request id, seq, count, reserved)."""
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(3)
    s.bind((CLI_IP, 0))
    reqs = [("set", ["uk1"], b"set uk1 0 0 3\r\nudp\r\n", b"STORED\r\n"),
            ("get", ["uk1"], b"get uk1\r\n", b"VALUE uk1 0 3\r\nudp\r\nEND\r\n"),
            ("get", ["uk2"], b"get uk2\r\n", b"END\r\n")]
    for rid, (cmd, keys, payload, want) in enumerate(reqs, 7):
        s.sendto(struct.pack(">HHHH", rid, 0, 1, 0) + payload, (ip, 11211))
        try:
            data, _ = s.recvfrom(65535)
            got_rid, payload_back = struct.unpack(">H", data[:2])[0], data[8:]
        except socket.timeout:
            got_rid, payload_back = None, b""
        status = "OK" if (got_rid == rid and payload_back == want) else "Error"
        emit("memcache", cmd, ",".join(keys), status, ip, "udp")
        check("memcache udp %s %s" % (cmd, keys), want, payload_back)
        time.sleep(GAP)
    s.close()


def traffic_memcache(env):
    ip = env["SRV_MC_IP"]
    mc_text_session(ip)
    mc_binary_session(ip)
    mc_udp_session(ip)


# ----------------------------------------------------------------------------- Thrift

def traffic_thrift(env):
    r = run([PY, os.path.join(HERE, "thrift_client.py"), "--host", env["SRV_THRIFT_IP"],
             "--client-ip", CLI_IP, "--ports", env["SRV_THRIFT_PORTS"]])
    sys.stdout.write(r.stdout)
    sys.stdout.flush()
    if r.returncode != 0:
        FAIL.append("thrift_client.py rc=%d: %s" % (r.returncode, r.stderr.strip()))
        print(r.stderr, file=sys.stderr, end="")


# ---------------------------------------------------------------------------- MongoDB

def traffic_mongodb(env):
    path = os.path.join(HERE, "mongo_wire.py")
    if env.get("SRV_MONGO") != "1" or not os.path.exists(path):
        print("traffic_db: mongodb: no mongo_wire.py server, skipped", file=sys.stderr)
        return
    r = run([PY, path, "client", "--host", env["SRV_MONGO_IP"], "--port", "27017",
             "--client-ip", CLI_IP])
    sys.stdout.write(r.stdout)
    sys.stdout.flush()
    if r.returncode != 0:
        FAIL.append("mongo_wire.py client rc=%d: %s" % (r.returncode, r.stderr.strip()))
        print(r.stderr, file=sys.stderr, end="")


def main(argv):
    if len(argv) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    prefix = argv[1]
    if not re.fullmatch(r"[A-Za-z0-9_-]{1,40}", prefix):
        print("traffic_db: bad PREFIX %r" % prefix, file=sys.stderr)
        return 2
    protos = argv[2:] or list(ALL)
    for p in protos:
        if p not in ALL:
            print("traffic_db: unknown protocol %r (known: %s)" % (p, " ".join(ALL)),
                  file=sys.stderr)
            return 2
    env = env_file(prefix)
    if os.environ.get("HB_TRAFFIC_IN_NS") != prefix:
        # re-run inside the client container
        e = dict(os.environ, HB_TRAFFIC_IN_NS=prefix)
        for k in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY", "all_proxy",
                  "ALL_PROXY"):
            e.pop(k, None)
        return subprocess.call(["ip", "netns", "exec", env["TOPO_NS_CLI"], PY,
                                os.path.abspath(__file__), prefix, *protos], env=e)
    global CLI_IP
    CLI_IP = env["TOPO_CLI_IP"]
    for p in protos:
        try:
            globals()["traffic_" + p](env)
        except Exception as e:  # noqa: BLE001 - report and go on with the next protocol
            FAIL.append("%s: %r" % (p, e))
            print("traffic_db: %s workload failed: %r" % (p, e), file=sys.stderr)
    return 1 if FAIL else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
