"""The container metricset (sys/container.c) on this machine's real cgroups.

A cgroup with a Docker-like name (docker/<64 hex>) is created in every controller
hierarchy that can be written (cgroup v1 / hybrid: cpuacct, cpu, memory, pids, blkio;
v2: under the unified root with cpu, memory, pids, io enabled below it), a process
that touches 48 MiB and then spins is moved into it, and the sampler is run through
tests/tools/sys_sample.c (two samples 1 s apart, only the container metricset, hostfs
"/"). The container must be reported with its id, runtime docker, about one core of
CPU and its memory. The cgroups are removed in a finally block (the process is killed
first). Skips when not root or when no hierarchy is writable.

Binary: $SYS_SAMPLE, else <repo>/$BUILD/tools/sys_sample (BUILD default "build"),
built with make when missing.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
CG = Path("/sys/fs/cgroup")

# Waits for a line on stdin (sent once it is in the cgroups, so that its memory is
# charged there), touches 48 MiB, says "ready", then spins.
BURNER = r"""
import sys
sys.stdin.readline()
buf = bytearray(48 << 20)
for i in range(0, len(buf), 4096):
    buf[i] = 1
sys.stdout.write("ready\n")
sys.stdout.flush()
while True:
    pass
"""


def sys_sample_bin() -> Path:
    env = os.environ.get("SYS_SAMPLE")
    if env:
        p = Path(env) if os.path.isabs(env) else Path.cwd() / env
        if not os.access(p, os.X_OK):
            pytest.skip(f"SYS_SAMPLE={env} is not executable")
        return p
    build = os.environ.get("BUILD", "build")
    p = REPO / build / "tools" / "sys_sample"
    if not os.access(p, os.X_OK):
        r = subprocess.run(["make", f"BUILD={build}", f"{build}/tools/sys_sample"], cwd=REPO,
                           capture_output=True, text=True, timeout=600)
        if r.returncode != 0 or not os.access(p, os.X_OK):
            pytest.skip(f"cannot build {p}: {r.stderr.strip()[-500:]}")
    return p


def is_cgroup_dir(p: Path) -> bool:
    return p.is_dir() and (p / "cgroup.procs").exists()


class Cgroups:
    """The cgroups made for one test container; remove() undoes everything."""

    def __init__(self, cid: str):
        self.cid = cid
        self.version = 0
        self.leaves: list[Path] = []
        self.created: list[Path] = []  # in creation order (parents first)

    def _mkdir(self, p: Path) -> bool:
        if p.is_dir():
            return True
        try:
            p.mkdir()
        except OSError:
            return False
        self.created.append(p)
        return True

    def _leaf(self, root: Path) -> bool:
        parent = root / "docker"
        if not self._mkdir(parent) or not self._mkdir(parent / self.cid):
            return False
        self.leaves.append(parent / self.cid)
        return True

    def make(self) -> str | None:
        """Create the cgroups; None, or why it could not be done."""
        if (CG / "cgroup.controllers").exists():  # v2
            self.version = 2
            if not self._mkdir(CG / "docker"):
                return f"{CG} is not writable"
            for c in ("cpu", "memory", "pids", "io"):  # best effort, one by one
                for d in (CG, CG / "docker"):
                    try:
                        (d / "cgroup.subtree_control").write_text(f"+{c}\n")
                    except OSError:
                        pass
            if not self._leaf(CG):
                return f"cannot create {CG}/docker/<id>"
            return None
        self.version = 1
        seen = set()
        for name in ("cpuacct", "cpu,cpuacct", "cpu", "memory", "pids", "blkio"):
            d = CG / name
            if not is_cgroup_dir(d) or d.resolve() in seen:
                continue
            seen.add(d.resolve())
            self._leaf(d)
        if not any(("cpuacct" in str(p.resolve())) for p in self.leaves):
            return "no writable cpuacct hierarchy under " + str(CG)
        return None

    def enter(self, pid: int) -> None:
        for leaf in self.leaves:
            (leaf / "cgroup.procs").write_text(f"{pid}\n")

    def remove(self) -> None:
        for p in reversed(self.created):
            for _ in range(50):  # a killed process leaves its cgroup shortly after
                try:
                    p.rmdir()
                    break
                except FileNotFoundError:
                    break
                except OSError:
                    time.sleep(0.1)


def run_sampler(binary: Path) -> list[dict]:
    r = subprocess.run([str(binary), "-n", "2", "-i", "1000"], capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 0, r.stderr
    return [json.loads(line) for line in r.stdout.splitlines() if line.strip()]


def get(doc: dict, dotted: str):
    for k in dotted.split("."):
        if not isinstance(doc, dict) or k not in doc:
            return None
        doc = doc[k]
    return doc


def test_container_on_real_cgroups():
    if os.geteuid() != 0:
        pytest.skip("needs root to create cgroups")
    binary = sys_sample_bin()
    cid = secrets.token_hex(32)
    cg = Cgroups(cid)
    proc = None
    try:
        why = cg.make()
        if why:
            pytest.skip(why)
        proc = subprocess.Popen([sys.executable, "-c", BURNER], stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, text=True)
        cg.enter(proc.pid)
        proc.stdin.write("go\n")
        proc.stdin.flush()
        assert proc.stdout.readline().strip() == "ready"

        docs = run_sampler(binary)
        mine = [d for d in docs if get(d, "container.id") == cid]
        assert len(mine) == 2, f"container {cid} not reported twice in {len(docs)} events"
        first, second = mine
        for d in mine:
            assert d["type"] == "container"
            assert get(d, "event.dataset") == "system.container"
            assert get(d, "container.runtime") == "docker"
            assert get(d, "system.container.cgroup.path") == f"/docker/{cid}"
            assert get(d, "system.container.cgroup.version") == cg.version
        assert get(first, "system.container.cpu.pct") is None  # first sample: no rate
        cores = get(second, "system.container.cpu.pct")
        assert cores is not None and cores > 0.5, f"a busy loop used {cores} cores"
        assert 0 < get(second, "container.cpu.usage") <= 1.0
        assert get(second, "system.container.cpu.usage.ns") > get(
            first, "system.container.cpu.usage.ns")
        mem = get(second, "system.container.memory.usage.bytes")
        assert mem is not None and mem >= 32 << 20, f"memory usage {mem}"
        if get(second, "system.container.pids.current") is not None:
            assert get(second, "system.container.pids.current") >= 1
    finally:
        if proc is not None:
            proc.kill()
            proc.wait(timeout=10)
        cg.remove()
    for p in cg.created:
        assert not p.exists(), f"{p} was not removed"
