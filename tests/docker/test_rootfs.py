"""The container image's contents, run without Docker: check_rootfs.sh stages a minimal
Debian bookworm root (debootstrap minbase + exactly the Dockerfile's runtime packages +
the files the image gets) and runs commands in it with chroot in a fresh mount and PID
namespace. Skips (with the reason) when not root, without debootstrap, or when the
Debian mirror cannot be reached. The first run builds the cached root
(/var/cache/hostbeat-rootfs, ~1.5 min); later runs take seconds.
"""
import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request

import pytest

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
CHECK = os.path.join(ROOT, "tests", "docker", "check_rootfs.sh")
HOSTBEAT = os.path.join(ROOT, os.environ.get("HOSTBEAT", "hostbeat"))
PCAP = os.path.join(ROOT, "tests", "pcap", "recorded", "docker0_redis.pcap")
ESDOUBLE = os.path.join(ROOT, "tests", "esdouble", "esdouble.py")
ENV = ["ELASTICSEARCH_HOSTS=http://localhost:9200", "KIBANA_HOST=http://localhost:5601"]


def stage():
    if os.geteuid() != 0:
        pytest.skip("needs root (debootstrap, chroot, namespaces)")
    if not os.access(HOSTBEAT, os.X_OK):
        pytest.skip(f"{HOSTBEAT} not built")
    t0 = time.monotonic()
    out = subprocess.run([CHECK, "prepare"], capture_output=True, text=True, timeout=1800,
                         env=dict(os.environ, HOSTBEAT=HOSTBEAT))
    if out.returncode == 77:
        pytest.skip(out.stderr.strip().splitlines()[-1])
    assert out.returncode == 0, out.stderr
    sys.stderr.write(f"rootfs staged in {time.monotonic() - t0:.1f}s\n")
    return out.stdout.strip()


@pytest.fixture(scope="module")
def rootfs():
    root = stage()
    yield root
    subprocess.run([CHECK, "clean", root], check=True)


@pytest.fixture
def scratch_root():
    """A root of its own, for tests that break it."""
    root = stage()
    yield root
    subprocess.run([CHECK, "clean", root], check=True)


def run_in(root, cmd, env=(), timeout=60, **kw):
    return subprocess.run([CHECK, "exec", root, *env, "--", *cmd], capture_output=True,
                          text=True, timeout=timeout, **kw)


def needed_sonames():
    dyn = subprocess.run(["readelf", "-d", HOSTBEAT], capture_output=True, text=True, check=True)
    return re.findall(r"\(NEEDED\)\s+Shared library: \[([^\]]+)\]", dyn.stdout)


def test_root_is_minimal_bookworm(rootfs):
    with open(os.path.join(rootfs, "etc", "debian_version")) as f:
        assert f.read().startswith("12.")
    # no compiler, no -dev package: only what the runtime stage installs
    out = run_in(rootfs, ["dpkg-query", "-W", "-f", "${Package}\\n"])
    assert out.returncode == 0, out.stderr
    pkgs = set(out.stdout.split())
    assert not any(p.endswith("-dev") for p in pkgs)
    assert "gcc" not in pkgs and "gcc-12" not in pkgs
    listed = subprocess.run([CHECK, "runtime-packages"], capture_output=True, text=True,
                            check=True).stdout.split()
    assert set(listed) <= pkgs


def test_ldd_finds_every_library(rootfs):
    out = run_in(rootfs, ["ldd", "/usr/local/bin/hostbeat"])
    assert out.returncode == 0, out.stderr
    assert "not found" not in out.stdout, out.stdout
    for soname in needed_sonames():
        assert re.search(rf"^\s*{re.escape(soname)} => /\S+", out.stdout, re.M), soname


def test_ldd_reports_a_missing_library(scratch_root):
    """The check above can fail: without libproc2's files (removed from this staged copy
    only, not from the cache) ldd says `not found` and the binary does not start."""
    lib = None
    for d in ("usr/lib/x86_64-linux-gnu", "lib/x86_64-linux-gnu", "usr/lib", "lib"):
        p = os.path.join(scratch_root, d, "libproc2.so.0")
        if os.path.lexists(p):
            lib = p
            break
    assert lib, "libproc2.so.0 not in the root"
    for name in os.listdir(os.path.dirname(lib)):
        if name.startswith("libproc2.so"):
            os.unlink(os.path.join(os.path.dirname(lib), name))
    out = run_in(scratch_root, ["ldd", "/usr/local/bin/hostbeat"])
    assert re.search(r"libproc2\.so\.0 => not found", out.stdout), out.stdout
    out = run_in(scratch_root, ["hostbeat", "version"])
    assert out.returncode == 127
    assert "libproc2.so.0" in out.stderr


def test_version(rootfs):
    out = run_in(rootfs, ["hostbeat", "version"])
    assert out.returncode == 0, out.stderr
    assert re.match(r"hostbeat version \S+ \(linux\), libpcap version 1\.10\.3", out.stdout), out.stdout


def test_entrypoint_test_config(rootfs):
    out = run_in(rootfs, ["hostbeat-entrypoint", "test", "config"], env=ENV)
    assert out.returncode == 0, out.stdout + out.stderr
    assert out.stdout.strip() == "Config OK"
    # the environment reached the configuration, through bookworm's /bin/sh (dash)
    out = run_in(rootfs, ["hostbeat-entrypoint", "--dump-config"],
                 env=["ELASTICSEARCH_HOSTS=http://a:9200,http://b:9200", "KIBANA_HOST=http://k:5601"])
    assert out.returncode == 0, out.stderr
    assert 'output.elasticsearch.hosts: ["http://a:9200", "http://b:9200"]' in out.stdout
    assert 'setup.kibana.host: "http://k:5601"' in out.stdout
    assert 'topbeat.hostfs: "/hostfs"' in out.stdout
    # and a bad value is the config loader's error, exit 2
    out = run_in(rootfs, ["hostbeat-entrypoint", "test", "config", "-E", "topbeat.period=soon"], env=ENV)
    assert out.returncode == 2
    assert "topbeat.period" in out.stderr


def replay_events(root, extra=()):
    pcap_dir = os.path.join(root, "pcap")
    os.makedirs(pcap_dir, exist_ok=True)
    with open(PCAP, "rb") as src, open(os.path.join(pcap_dir, "in.pcap"), "wb") as dst:
        dst.write(src.read())
    return ["hostbeat-entrypoint", "-I", "/pcap/in.pcap", "-t",
            "-E", "setup.dashboards.enabled=false", *extra]


def test_replay_to_console(rootfs):
    cmd = replay_events(rootfs, ["-E", "output.elasticsearch.enabled=false",
                                 "-E", "output.console.enabled=true"])
    out = run_in(rootfs, cmd, env=ENV)
    assert out.returncode == 0, out.stderr
    events = [json.loads(l) for l in out.stdout.splitlines() if l.startswith("{")]
    redis = [e for e in events if e.get("type") == "redis"]
    assert redis, out.stderr[-2000:]
    # the same binary on this host reads the same file to the same transactions
    host = subprocess.run([HOSTBEAT, "-c", os.path.join(ROOT, "beats.docker.yml"), "-I", PCAP, "-t",
                           "-E", "setup.dashboards.enabled=false",
                           "-E", "output.elasticsearch.enabled=false",
                           "-E", "output.console.enabled=true"],
                          capture_output=True, text=True, timeout=60, cwd="/tmp")
    assert host.returncode == 0, host.stderr
    host_redis = [json.loads(l) for l in host.stdout.splitlines()
                  if l.startswith("{") and '"type":"redis"' in l]
    assert sorted(e["redis"]["return_value"] if "redis" in e and "return_value" in e["redis"] else ""
                  for e in redis) == \
        sorted(e["redis"]["return_value"] if "redis" in e and "return_value" in e["redis"] else ""
               for e in host_redis)
    assert len(redis) == len(host_redis)


@pytest.fixture
def esdouble():
    if not os.path.exists(ESDOUBLE):
        pytest.skip("tests/esdouble/esdouble.py missing")
    p = subprocess.Popen([sys.executable, ESDOUBLE, "--port", "0", "--realtime",
                          "--user", "hb_writer:s3cr#t: [x]"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    line = p.stdout.readline()
    m = re.search(r"listening on (\d+)", line)
    if not m:
        p.kill()
        pytest.fail(f"esdouble did not start: {line} {p.stderr.read()}")
    yield int(m.group(1))
    p.send_signal(signal.SIGTERM)
    try:
        p.wait(timeout=10)
    except subprocess.TimeoutExpired:
        p.kill()


def test_replay_to_elasticsearch_double(rootfs, esdouble):
    """Through the entrypoint's environment (hosts, username, a password with YAML
    specials) and libcurl of the minimal root to an Elasticsearch double on loopback
    (the chroot shares the host's network namespace, as --net=host does)."""
    env = [f"ELASTICSEARCH_HOSTS=http://127.0.0.1:{esdouble}",
           "ELASTICSEARCH_USERNAME=hb_writer", "ELASTICSEARCH_PASSWORD=s3cr#t: [x]",
           "KIBANA_HOST=http://127.0.0.1:1"]
    out = run_in(rootfs, replay_events(rootfs), env=env, timeout=120)
    assert out.returncode == 0, out.stderr[-3000:]
    ctl = f"http://127.0.0.1:{esdouble}/_double"
    with urllib.request.urlopen(f"{ctl}/stats", timeout=10) as r:
        stats = json.load(r)
    assert not stats["violations"] and not stats["doc_errors"], stats
    # every request was authenticated (a 401 would mean the password got mangled; the
    # 404s are the template existence checks of setup)
    assert not {"401", "403"} & set(map(str, stats["by_status"])), stats["by_status"]
    assert stats["by_status"].get("200", 0) > 0, stats["by_status"]
    pb = [n for n in stats["indices"] if n.startswith("packetbeat-")]
    assert pb and sum(stats["indices"][n]["docs"] for n in pb) > 0, stats
    docs = []
    for n in pb:
        with urllib.request.urlopen(f"{ctl}/docs/{n}", timeout=10) as r:
            docs += [d["_source"] for d in json.load(r)["docs"]]
    assert any(d.get("type") == "redis" for d in docs), docs[:3]


def test_topbeat_reads_the_host_under_hostfs(rootfs):
    """Live run with packetbeat off: the sampler reads the host's /proc mounted at
    /hostfs/proc (the compose volume) from the root's own PID namespace, and the
    process metricset sees host processes (this test's PID 1 view is the chroot's)."""
    hostfs_proc = os.path.join(rootfs, "hostfs", "proc")
    os.makedirs(hostfs_proc, exist_ok=True)
    run = [CHECK, "exec", rootfs, *ENV, "--", "hostbeat-entrypoint",
           "-E", "packetbeat.enabled=false", "-E", "topbeat.period=1s",
           "-E", "topbeat.stats.filesystem=false", "-E", "topbeat.stats.container=false",
           "-E", "output.elasticsearch.enabled=false", "-E", "output.console.enabled=true",
           "-E", "setup.dashboards.enabled=false"]
    # the compose volume /proc:/hostfs/proc, in a mount namespace of its own
    script = 'mount --make-rprivate / && mount --rbind /proc "$0" || exit 90; exec "$@"'
    p = subprocess.Popen(["unshare", "--mount", "--fork", "sh", "-c", script, hostfs_proc, *run],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                         start_new_session=True)
    time.sleep(3.5)
    os.killpg(p.pid, signal.SIGTERM)
    try:
        stdout, stderr = p.communicate(timeout=20)
    except subprocess.TimeoutExpired:
        os.killpg(p.pid, signal.SIGKILL)
        stdout, stderr = p.communicate()
    if p.returncode == 90:
        pytest.skip("cannot bind-mount /proc in a mount namespace here")
    events = [json.loads(l) for l in stdout.splitlines() if l.startswith("{")]
    datasets = {e.get("event", {}).get("dataset") for e in events}
    assert "system.cpu" in datasets and "system.memory" in datasets, stderr[-3000:]
    procs = [e for e in events if e.get("event", {}).get("dataset") == "system.process"]
    assert procs, stderr[-3000:]
    # this pytest's own python process is a host process the chroot cannot see in its
    # own /proc: it must come from /hostfs/proc
    pids = {e.get("process", {}).get("pid") for e in procs}
    assert os.getpid() in pids, sorted(p for p in pids if p)[:20]
