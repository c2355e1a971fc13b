"""System metrics, live: the real agent samples this machine's /proc and its figures
are checked against the standard tools for the same moment.

test_processes_and_cpu  - 200 `sleep` processes with a recognisable cmdline and a
                          CPU burner are reported with the right state, cmdline,
                          parent, user; the burner's cpu pct is close to what
                          `top -b -n 2` says for the same interval.
test_memory_vs_free     - system.memory.* against `free -b` (tolerance below).
test_metric_envelope    - event.module/dataset, metricset.*, service.type, index
                          name topbeat-YYYY.MM.DD, cpu/load/memory present.

The agent runs with packetbeat.enabled: false (no capture), topbeat.period 1s,
file output into a temp dir, and is stopped with SIGTERM. stdlib only.
"""

from __future__ import annotations

import datetime
import os
import pwd
import re
import subprocess
import time

import pytest

from sysagent import Agent as SysAgent
from sysagent import agent_or_skip, by_timestamp, get

TOPBEAT_NAME = re.compile(r"^topbeat-\d{4}\.\d{2}\.\d{2}\.ndjson$")
N_SLEEPERS = 200
MARK = "0.004217"  # sleep sums its arguments: a recognisable, harmless extra one

# Tolerances, stated once: memory moves while we read it (other processes), so
# 64 MiB or 5 %; a burner's CPU share over the same ~2 s window is within 0.15 of
# a core of what top says. (Filesystems against df: test_sys_filesystem.py.)
MEM_TOL_BYTES = 64 << 20
MEM_TOL_FRAC = 0.05
CPU_TOL = 0.15


@pytest.fixture(scope="module")
def agent_bin():
    return agent_or_skip()


class Agent(SysAgent):
    def events(self):
        for f in self.files():
            assert TOPBEAT_NAME.match(os.path.basename(f)) or "hostbeat-metrics" in f, f
        return super().events()


samples = by_timestamp


@pytest.fixture(scope="module")
def workload(agent_bin):
    """200 sleepers + one burner, then the agent runs ~4.5 s over them."""
    sleepers = [subprocess.Popen(["sleep", "600", MARK]) for _ in range(N_SLEEPERS)]
    burner = subprocess.Popen(["sh", "-c", f"while :; do :; done # hbsys {MARK}"])
    agent = Agent()
    try:
        time.sleep(1.0)
        # top's own two-frame sample of the burner, inside the agent's run window; its
        # second frame covers [top_start, top_end] (give or take its start-up)
        top_start = time.time()
        top = subprocess.run(["top", "-b", "-n", "2", "-d", "2", "-p", str(burner.pid)],
                             capture_output=True, text=True, timeout=30)
        top_end = time.time()
        time.sleep(1.5)
        agent.stop()
        yield {"agent": agent, "events": agent.events(), "sleepers": sleepers,
               "burner": burner, "top": top.stdout, "top_window": (top_start, top_end)}
    finally:
        for p in sleepers + [burner]:
            p.kill()
        for p in sleepers + [burner]:
            p.wait()
        agent.close()


def iso_ts(text):
    """@timestamp ("2026-12-02T19:31:40.057Z") → seconds since the epoch."""
    return datetime.datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(
        tzinfo=datetime.timezone.utc).timestamp()


def top_cpu(top_out, pid):
    """%CPU of pid in the last frame of `top -b -n 2` output, as a fraction of a core."""
    frames = top_out.split("top - ")
    last = frames[-1].splitlines()
    header = next(i for i, l in enumerate(last) if l.strip().startswith("PID"))
    cols = last[header].split()
    for line in last[header + 1:]:
        f = line.split()
        if f and f[0] == str(pid):
            return float(f[cols.index("%CPU")].replace(",", ".")) / 100.0
    raise AssertionError(f"pid {pid} not in top output:\n{top_out}")


def test_metric_envelope(workload):
    evs = workload["events"]
    assert evs, "no system.* events written: " + workload["agent"].log_text()[-2000:]
    for ds in ("system.cpu", "system.load", "system.memory", "system.process",
               "system.filesystem"):
        assert any(get(e, "event.dataset") == ds for e in evs), ds
    for e in evs:
        ds = get(e, "event.dataset")
        assert get(e, "event.module") == "system"
        assert get(e, "metricset.name") == ds.split(".", 1)[1]
        assert get(e, "metricset.period") == 1000
        assert get(e, "service.type") == "system"
        assert isinstance(get(e, "event.duration"), int)
    cpu = samples(evs, "system.cpu")
    assert len(cpu) >= 3, "expected ≥ 3 one-second samples"
    assert get(cpu[0][0], "system.cpu.total.pct") is None, "first sample must emit no rates"
    cores = os.cpu_count()
    for s in cpu[1:]:
        e = s[0]
        assert get(e, "system.cpu.cores") == cores
        total = get(e, "system.cpu.total.pct")
        assert 0 <= total <= cores + 0.01
        assert abs(get(e, "system.cpu.total.norm.pct") - total / cores) < 0.001
        parts = sum(get(e, f"system.cpu.{k}.pct") or 0 for k in
                    ("user", "system", "nice", "idle", "iowait", "irq", "softirq", "steal"))
        assert abs(parts - cores) < 0.02 * cores, parts
    load = samples(evs, "system.load")[-1][0]
    with open("/proc/loadavg") as fh:
        l1 = float(fh.read().split()[0])
    assert abs(get(load, "system.load.1") - l1) < 1.0
    assert get(load, "system.load.cores") == cores


def test_processes_and_cpu(workload):
    evs = workload["events"]
    procs = samples(evs, "system.process")
    assert len(procs) >= 3
    last = {get(e, "process.pid"): e for e in procs[-1]}
    me = os.getpid()
    for p in workload["sleepers"]:
        e = last.get(p.pid)
        assert e is not None, f"sleeper {p.pid} not reported"
        assert get(e, "process.name") == "sleep"
        assert get(e, "system.process.state") == "sleeping"
        assert get(e, "process.state") == "sleeping"
        assert get(e, "process.args") == ["sleep", "600", MARK]
        assert get(e, "system.process.cmdline") == f"sleep 600 {MARK}"
        assert get(e, "process.parent.pid") == me
        assert get(e, "user.name") == pwd.getpwuid(os.geteuid()).pw_name
        assert get(e, "system.process.memory.rss.bytes") > 0
    burner = last.get(workload["burner"].pid)
    assert burner is not None
    assert get(burner, "system.process.state") == "running"
    # Same interval as top's: the agent's one-second samples whose interval lies inside
    # top's window, averaged (a loaded machine gives the burner less than a core, and
    # both must see the same share).
    t0, t1 = workload["top_window"]
    inside = [get(e, "system.process.cpu.total.pct") for s in procs for e in s
              if get(e, "process.pid") == workload["burner"].pid
              and t0 + 1.0 <= iso_ts(e["@timestamp"]) <= t1 + 0.1
              and get(e, "system.process.cpu.total.pct") is not None]
    assert inside, "no agent sample inside top's window"
    ours = sum(inside) / len(inside)
    theirs = top_cpu(workload["top"], workload["burner"].pid)
    assert theirs > 0.5, "the burner should use most of a core"
    assert abs(ours - theirs) <= CPU_TOL, (ours, theirs)
    assert abs(get(burner, "system.process.cpu.total.norm.pct") -
               get(burner, "system.process.cpu.total.pct") / os.cpu_count()) < 0.001
    # first sight of every process has no rate; later samples do
    first = {get(e, "process.pid"): e for e in procs[0]}
    assert get(first[workload["burner"].pid], "system.process.cpu.total.pct") is None


def free_b():
    out = subprocess.run(["free", "-b"], capture_output=True, text=True, check=True).stdout
    rows = {}
    lines = out.splitlines()
    head = lines[0].split()
    for l in lines[1:]:
        f = l.split()
        rows[f[0].rstrip(":")] = dict(zip(head, map(int, f[1:])))
    return rows


def close(a, b, tol_bytes, tol_frac):
    return abs(a - b) <= max(tol_bytes, tol_frac * max(a, b))


def test_memory_vs_free(agent_bin):
    agent = Agent()
    try:
        time.sleep(1.5)
        ref = free_b()
        agent.stop()
        mem = samples(agent.events(), "system.memory")[-1][0]
    finally:
        agent.close()
    assert get(mem, "system.memory.total") == ref["Mem"]["total"]
    assert close(get(mem, "system.memory.free"), ref["Mem"]["free"], MEM_TOL_BYTES, MEM_TOL_FRAC)
    assert close(get(mem, "system.memory.actual.free"), ref["Mem"]["available"],
                 MEM_TOL_BYTES, MEM_TOL_FRAC)
    assert get(mem, "system.memory.swap.total") == ref["Swap"]["total"]
    assert close(get(mem, "system.memory.swap.free"), ref["Swap"]["free"], MEM_TOL_BYTES,
                 MEM_TOL_FRAC)
    used = get(mem, "system.memory.used.bytes")
    assert used == get(mem, "system.memory.total") - get(mem, "system.memory.free")
    assert abs(get(mem, "system.memory.used.pct") - used / get(mem, "system.memory.total")) < 1e-3
