"""pytest fixtures for hostbeat integration tests (stdlib only).

Run with:  /usr/bin/python3 -m pytest -q tests/integration

`topology` (session): builds the namespace "Docker host" with
tests/integration/topology.sh under a prefix unique to this run, and always
tears it down (finalizer + atexit + SIGTERM handler).  Skips with a clear
message when not root, when a needed tool is missing, or when `ip netns`
does not work here.

`hostbeat_bin` (session): path of the agent binary, from $HOSTBEAT (relative
paths are taken relative to the current directory), default <repo>/hostbeat.
Skips when it does not exist / is not executable.
"""

from __future__ import annotations

import atexit
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
TOPOLOGY_SH = HERE / "topology.sh"
TRAFFIC_SH = HERE / "traffic.sh"

if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

# make sure sbin tools are found even with a minimal PATH
_PATH = os.environ.get("PATH", "")
for _d in ("/usr/local/sbin", "/usr/sbin", "/sbin"):
    if _d not in _PATH.split(":"):
        _PATH += ":" + _d
ENV = dict(os.environ, PATH=_PATH)
for _k in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
    ENV.pop(_k, None)

REQUIRED_TOOLS = ("ip", "ss", "sysctl", "nginx", "dnsmasq", "curl", "dig", "md5sum")


def run(argv, timeout=60, check=False, **kw):
    return subprocess.run([str(a) for a in argv], env=ENV, capture_output=True, text=True,
                          timeout=timeout, check=check, **kw)


def topology_skip_reason():
    """None if the namespace topology can be built here, else why not."""
    if os.geteuid() != 0:
        return "integration topology needs root (network namespaces, veth, bridge)"
    missing = [t for t in REQUIRED_TOOLS if shutil.which(t, path=_PATH) is None]
    if missing:
        return "integration topology needs missing tool(s): " + ", ".join(missing)
    probe = f"hbprobe{os.getpid()}"
    try:
        r = run(["ip", "netns", "add", probe], timeout=20)
        if r.returncode != 0:
            return f"`ip netns` does not work here: {r.stderr.strip() or r.returncode}"
        r = run(["ip", "netns", "exec", probe, "ip", "link", "add", "hbprobebr",
                 "type", "bridge"], timeout=20)
        if r.returncode != 0:
            return f"cannot create a bridge inside a netns: {r.stderr.strip()}"
    except (OSError, subprocess.TimeoutExpired) as e:
        return f"`ip netns` does not work here: {e}"
    finally:
        try:
            run(["ip", "netns", "del", probe], timeout=20)
        except Exception:  # noqa: BLE001 - best effort
            pass
    return None


class Topology:
    def __init__(self, prefix: str, tmp: Path, env: dict):
        self.prefix = prefix
        self.tmp = tmp
        self.env = env
        self.proc_env = ENV  # environment for child processes (sbin on PATH, no proxies)
        self.subnet = env["TOPO_SUBNET"]
        self.bridge = env["TOPO_BRIDGE"]
        self.host_ip = env["TOPO_HOST_IP"]
        self.web_ip = env["TOPO_WEB_IP"]
        self.dns_ip = env["TOPO_DNS_IP"]
        self.cli_ip = env["TOPO_CLI_IP"]
        self.zone = env["TOPO_ZONE"]
        self.index_size = int(env["TOPO_INDEX_SIZE"])
        self.big_size = int(env["TOPO_BIG_SIZE"])

    def ns(self, role: str) -> str:
        """role: host | web | dns | cli"""
        return self.prefix + role

    def run(self, role: str, argv, timeout=30):
        return run(["ip", "netns", "exec", self.ns(role), *argv], timeout=timeout)

    def traffic(self, timeout=180):
        """Run traffic.sh; returns the CompletedProcess (stdout = ledger)."""
        return run([TRAFFIC_SH, self.prefix], timeout=timeout)


def _read_env(path: Path) -> dict:
    env = {}
    for line in path.read_text().splitlines():
        if "=" in line:
            k, v = line.split("=", 1)
            env[k.strip()] = v.strip()
    return env


@pytest.fixture(scope="session")
def topology(request):
    reason = topology_skip_reason()
    if reason:
        pytest.skip(reason)

    prefix = f"hbt{os.getpid()}"
    state = {"down": False}

    def down():
        if state["down"]:
            return
        state["down"] = True
        try:
            r = run([TOPOLOGY_SH, "down", prefix], timeout=60)
            if r.returncode != 0:
                sys.stderr.write(f"topology down {prefix} failed:\n{r.stderr}\n")
        except Exception as e:  # noqa: BLE001
            sys.stderr.write(f"topology down {prefix} failed: {e}\n")

    # SIGTERM would otherwise kill pytest without running finalizers
    prev_term = signal.getsignal(signal.SIGTERM)

    def on_term(signum, frame):
        raise KeyboardInterrupt("SIGTERM")

    signal.signal(signal.SIGTERM, on_term)
    atexit.register(down)

    def finalize():
        down()
        signal.signal(signal.SIGTERM, prev_term)

    request.addfinalizer(finalize)  # registered before `up`: partial state is cleaned too

    r = run([TOPOLOGY_SH, "up", prefix], timeout=120)
    if r.returncode != 0:
        pytest.fail(f"topology.sh up {prefix} failed (rc={r.returncode}):\n{r.stderr}",
                    pytrace=False)
    tmp = Path(r.stdout.strip().splitlines()[-1])
    return Topology(prefix, tmp, _read_env(tmp / "topology.env"))


@pytest.fixture(scope="session")
def hostbeat_bin():
    p = os.environ.get("HOSTBEAT")
    path = Path(p) if p else REPO / "hostbeat"
    if not path.is_absolute():
        path = Path.cwd() / path
    path = path.resolve()
    if not path.is_file() or not os.access(path, os.X_OK):
        pytest.skip(f"hostbeat agent binary not found or not executable: {path} "
                    f"(build it, or set HOSTBEAT=/path/to/hostbeat)")
    return path
