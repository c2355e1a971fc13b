"""Static checks of the container files (no Docker engine, no root needed):
docker-compose.yml structure, the Dockerfile's package lists against the built binary and
tests/deps.sh, and beats.docker.yml against hostbeat's own config loader.

docker-compose.yml is read with PyYAML from Debian's python3-yaml package (the tests skip
when it is missing).
"""
import os
import re
import subprocess

import pytest

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
HOSTBEAT = os.path.join(ROOT, os.environ.get("HOSTBEAT", "hostbeat"))
CHECK = os.path.join(ROOT, "tests", "docker", "check_rootfs.sh")

# Compose specification keys (compose-spec.io, services section) — anything else is a typo.
TOP_KEYS = {"version", "name", "services", "networks", "volumes", "configs", "secrets", "include"}
SERVICE_KEYS = {
    "build", "image", "command", "entrypoint", "environment", "env_file", "ports", "expose",
    "volumes", "depends_on", "healthcheck", "network_mode", "networks", "pid", "ipc", "cgroup",
    "cgroup_parent", "cap_add", "cap_drop", "privileged", "security_opt", "read_only", "user",
    "restart", "ulimits", "labels", "logging", "container_name", "hostname", "tmpfs",
    "working_dir", "stop_signal", "stop_grace_period", "init", "mem_limit", "cpus", "deploy",
    "devices", "extra_hosts", "dns", "sysctls", "userns_mode", "platform", "profiles",
}


def compose():
    yaml = pytest.importorskip("yaml", reason="PyYAML missing: apt-get install python3-yaml")
    with open(os.path.join(ROOT, "docker-compose.yml")) as f:
        return yaml.safe_load(f)


def env_map(service):
    env = service.get("environment", {})
    if isinstance(env, dict):
        return {k: str(v) for k, v in env.items()}
    return dict(item.split("=", 1) for item in env)


def test_compose_top_level_and_service_keys():
    doc = compose()
    assert isinstance(doc, dict)
    unknown = {k for k in doc if not k.startswith("x-")} - TOP_KEYS
    assert not unknown, f"unknown top-level keys {unknown}"
    assert set(doc["services"]) == {"elasticsearch", "kibana", "hostbeat"}
    for name, svc in doc["services"].items():
        bad = {k for k in svc if not k.startswith("x-")} - SERVICE_KEYS
        assert not bad, f"{name}: unknown keys {bad}"
        assert "image" in svc or "build" in svc, name


def test_compose_elastic_stack():
    svc = compose()["services"]
    es, kb = svc["elasticsearch"], svc["kibana"]
    m_es = re.fullmatch(r"docker\.elastic\.co/elasticsearch/elasticsearch:(8\.15\.\d+)", es["image"])
    m_kb = re.fullmatch(r"docker\.elastic\.co/kibana/kibana:(8\.15\.\d+)", kb["image"])
    assert m_es and m_kb, (es["image"], kb["image"])
    assert m_es.group(1) == m_kb.group(1), "Kibana must be the same version as Elasticsearch"
    env = env_map(es)
    assert env["discovery.type"] == "single-node"
    assert env["xpack.security.enabled"] == "false"
    hc = " ".join(es["healthcheck"]["test"])
    assert "curl" in hc and "localhost:9200/_cluster/health" in hc
    hc = " ".join(kb["healthcheck"]["test"])
    assert "curl" in hc and "localhost:5601/api/status" in hc
    assert env_map(kb)["ELASTICSEARCH_HOSTS"] == "http://elasticsearch:9200"
    assert kb["depends_on"]["elasticsearch"]["condition"] == "service_healthy"


def test_compose_hostbeat_service():
    doc = compose()
    hb = doc["services"]["hostbeat"]
    assert hb["build"] in (".", {"context": "."})
    assert hb["network_mode"] == "host"
    assert hb["pid"] == "host"
    assert hb["cgroup"] == "host"
    assert not hb.get("privileged", False)
    assert hb["cap_drop"] == ["ALL"]
    assert set(hb["cap_add"]) == {"NET_RAW", "NET_ADMIN", "SYS_PTRACE", "DAC_READ_SEARCH"}
    assert "no-new-privileges:true" in hb.get("security_opt", [])
    # host networking: published ports and networks do not apply
    assert "ports" not in hb and "networks" not in hb
    vols = hb["volumes"]
    for mount in ("/proc:/hostfs/proc:ro", "/sys/fs/cgroup:/hostfs/sys/fs/cgroup:ro", "/:/hostfs:ro"):
        assert mount in vols, mount
    env = env_map(hb)
    assert env["ELASTICSEARCH_HOSTS"] == "http://localhost:9200"
    assert env["KIBANA_HOST"] == "http://localhost:5601"
    for dep, cond in hb["depends_on"].items():
        assert cond["condition"] == "service_healthy"
        assert "healthcheck" in doc["services"][dep], dep
    # named volumes are declared; the data volume is the image's spool directory
    named = [v.split(":")[0] for v in vols if not v.startswith("/")]
    for v in named:
        assert v in (doc.get("volumes") or {}), v
    data = [v for v in vols if not v.startswith("/")]
    assert any(v.split(":")[1] == "/usr/share/hostbeat/data" for v in data)


def test_compose_env_is_what_the_entrypoint_reads():
    with open(os.path.join(ROOT, "tests", "docker", "entrypoint.sh")) as f:
        script = f.read()
    for var in env_map(compose()["services"]["hostbeat"]):
        assert "${" + var + ":-}" in script, f"entrypoint ignores {var}"


def dockerfile():
    with open(os.path.join(ROOT, "Dockerfile")) as f:
        return f.read()


def packages(stage):
    out = subprocess.run([CHECK, stage + "-packages"], capture_output=True, text=True)
    if out.returncode == 77:
        pytest.skip(out.stderr.strip())
    assert out.returncode == 0, out.stderr
    return out.stdout.split()


def test_dockerfile_layout():
    text = dockerfile()
    froms = re.findall(r"^FROM\s+(\S+)", text, re.M)
    assert froms == ["debian:bookworm-slim", "debian:bookworm-slim"]
    assert re.search(r"^FROM debian:bookworm-slim AS build$", text, re.M)
    assert re.search(r"make\b[^\n]*\bhostbeat\b", text)
    runtime = text[text.rindex("\nFROM "):]
    assert "COPY --from=build /out/ /" in runtime
    assert re.search(r"^WORKDIR /usr/share/hostbeat$", runtime, re.M)
    assert 'ENTRYPOINT ["/usr/local/bin/hostbeat-entrypoint"]' in runtime
    # what the build stage stages under /out is what check_rootfs.sh installs
    for path in ("/out/usr/local/bin/hostbeat", "/out/usr/local/bin/hostbeat-entrypoint",
                 "/out/etc/hostbeat/beats.yml", "/out/usr/share/hostbeat/dashboards",
                 "/out/usr/share/hostbeat/data"):
        assert path in text, path
    with open(CHECK) as f:
        check = f.read()
    for path in ("/usr/local/bin/hostbeat\"", "/usr/local/bin/hostbeat-entrypoint\"",
                 "/etc/hostbeat/beats.yml\"", "/usr/share/hostbeat/dashboards\"",
                 "/usr/share/hostbeat/data\""):
        assert path in check, path
    for src in ("tests/docker/entrypoint.sh", "beats.docker.yml"):
        assert src in text and os.path.exists(os.path.join(ROOT, src)), src


def test_dockerignore_keeps_the_sources():
    with open(os.path.join(ROOT, ".dockerignore")) as f:
        pats = [l.strip() for l in f if l.strip() and not l.startswith("#")]
    for needed in ("Makefile", "core", "net", "shipper", "sys", "include", "tests", "beats.docker.yml"):
        assert needed not in pats
    for junk in ("hostbeat", "build", "build-*", ".git", "data"):
        assert junk in pats


def test_build_stage_packages_are_deps_build_list():
    with open(os.path.join(ROOT, "tests", "deps.sh")) as f:
        m = re.search(r"^build=\(([^)]*)\)", f.read(), re.M)
    assert m
    assert sorted(packages("build")) == sorted(m.group(1).split())


def test_runtime_packages_cover_the_binary():
    """Every library the built binary needs (NEEDED) belongs to a runtime package of the
    Dockerfile (libc6 comes with the base image), and every listed library package is
    needed (ca-certificates is data, for https outputs)."""
    if not os.access(HOSTBEAT, os.X_OK):
        pytest.skip(f"{HOSTBEAT} not built")
    if os.environ.get("ASAN") == "1":
        pytest.skip("sanitizer build: it links the sanitizer's runtime, the image's binary does not")
    dyn = subprocess.run(["readelf", "-d", HOSTBEAT], capture_output=True, text=True, check=True)
    needed = re.findall(r"\(NEEDED\)\s+Shared library: \[([^\]]+)\]", dyn.stdout)
    assert needed
    owners = set()
    for soname in needed:
        out = subprocess.run(["dpkg", "-S", "*/" + soname], capture_output=True, text=True)
        if out.returncode != 0:
            pytest.skip(f"dpkg cannot tell who ships {soname}")
        pkgs = {l.split(":")[0] for l in out.stdout.splitlines() if "-i386" not in l and "lib32" not in l}
        owners |= pkgs
    runtime = set(packages("runtime"))
    missing = owners - runtime - {"libc6"}
    assert not missing, f"runtime stage lacks {missing}"
    unneeded = runtime - owners - {"ca-certificates"}
    assert not unneeded, f"runtime stage installs {unneeded} the binary does not need"


def test_beats_docker_yml_loads():
    if not os.access(HOSTBEAT, os.X_OK):
        pytest.skip(f"{HOSTBEAT} not built")
    cfg = os.path.join(ROOT, "beats.docker.yml")
    out = subprocess.run([HOSTBEAT, "test", "config", "-c", cfg], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    dump = subprocess.run([HOSTBEAT, "--dump-config", "-c", cfg], capture_output=True, text=True,
                          check=True).stdout
    assert 'topbeat.hostfs: "/hostfs"' in dump
    assert 'packetbeat.interfaces.device: ["docker0", "br-*"]' in dump
    assert "setup.dashboards.enabled: true" in dump
    assert 'setup.dashboards.directory: "/usr/share/hostbeat/dashboards"' in dump
    assert "output.elasticsearch.enabled: true" in dump


def test_entrypoint_turns_env_into_overrides(tmp_path):
    """The entrypoint on this host's sh (the image's is bookworm's dash, see
    test_rootfs.py): values with YAML specials survive, lists split on commas."""
    if not os.access(HOSTBEAT, os.X_OK):
        pytest.skip(f"{HOSTBEAT} not built")
    env = {
        "PATH": "/usr/bin:/bin",
        "HOSTBEAT_BIN": HOSTBEAT,
        "HOSTBEAT_CONFIG": os.path.join(ROOT, "beats.docker.yml"),
        "ELASTICSEARCH_HOSTS": "http://es1:9200, https://es2:9243/prefix,",
        "ELASTICSEARCH_USERNAME": "beats_writer",
        "ELASTICSEARCH_PASSWORD": 'p"a\\ss: [x] #y &z',
        "KIBANA_HOST": "http://kb:5601",
    }
    out = subprocess.run(["sh", os.path.join(ROOT, "tests", "docker", "entrypoint.sh"),
                          "--dump-config"], env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert 'output.elasticsearch.hosts: ["http://es1:9200", "https://es2:9243/prefix"]' in out.stdout
    assert 'output.elasticsearch.username: "beats_writer"' in out.stdout
    assert 'output.elasticsearch.password: "p\\"a\\\\ss: [x] #y &z"' in out.stdout
    assert 'setup.kibana.host: "http://kb:5601"' in out.stdout
    # unset variables leave the file's values
    out = subprocess.run(["sh", os.path.join(ROOT, "tests", "docker", "entrypoint.sh"),
                          "--dump-config"], env={k: env[k] for k in ("PATH", "HOSTBEAT_BIN", "HOSTBEAT_CONFIG")},
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert 'output.elasticsearch.hosts: ["http://localhost:9200"]' in out.stdout
    assert 'setup.kibana.host: "http://localhost:5601"' in out.stdout
