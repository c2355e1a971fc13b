"""Filesystem metricset, live: the real agent's system.filesystem events against
`df -B1 --output=source,fstype,size,used,avail,target` taken during the same run,
and the topbeat.hostfs join end to end on a hand-made hostfs tree.

test_vs_df        every mount point both report: same source and type, same size
                  (f_blocks x f_frsize, does not move); used and avail within
                  the tolerance below (files are written while we look); used.bytes
                  = total - free; no ignored type; no mount point twice.
test_hostfs_tree  topbeat.hostfs = a temp dir whose proc/1/mountinfo lists "/",
                  "/with space" (written \\040), "/gone" (no such directory) and a
                  proc mount. "/" and "/with space" are statvfs'd at <tree>/...,
                  so their size is df's for the filesystem holding the tree;
                  "/gone" vanished and is not reported, proc is ignored; the
                  device name is unescaped; legacy fs.* names are present.

df and the agent choose differently among several mounts of one device (df keeps
one per device), so only the mount points both list are compared. The agent runs
with packetbeat.enabled: false and only the filesystem metricset, topbeat.period
1s, file output into a temp dir, and is stopped with SIGTERM. stdlib only.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from sysagent import Agent as SysAgent
from sysagent import agent_or_skip, by_timestamp, get

# Tolerance, stated once: 16 MiB or 1 % of the larger value, for used and avail
# (the size is compared exactly).
FS_TOL_BYTES = 16 << 20
FS_TOL_FRAC = 0.01
IGNORED = {"proc", "sysfs", "cgroup", "cgroup2", "devpts", "mqueue", "overlay", "nsfs",
           "tracefs", "debugfs", "securityfs", "autofs", "binfmt_misc", "bpf"}


def close(a, b):
    return abs(a - b) <= max(FS_TOL_BYTES, FS_TOL_FRAC * max(a, b))


class Agent(SysAgent):
    """hostbeat with only the filesystem metricset, sampling every second."""

    def __init__(self, extra_cfg=""):
        super().__init__("topbeat.stats.system: false\n"
                         "topbeat.stats.process: false\n"
                         "topbeat.stats.container: false\n"
                         "topbeat.stats.filesystem: true\n" + extra_cfg, prefix="hb-fs.")

    def last_sample(self):
        """The events of the newest system.filesystem sample."""
        samples = by_timestamp(self.events(), "system.filesystem")
        if not samples:
            log = self.log_text()
            if "sampling" not in log:
                pytest.skip("this agent binary does not run the topbeat sampler yet")
            raise AssertionError("no system.filesystem event; log:\n" + log[-2000:])
        return samples[-1]


@pytest.fixture(scope="module")
def agent_bin():
    return agent_or_skip()


def run_agent(extra_cfg=""):
    agent = Agent(extra_cfg)
    try:
        time.sleep(1.5)
        ref = df_b1()
        time.sleep(0.3)
        agent.stop()
        return agent.last_sample(), ref
    finally:
        agent.close()


def df_b1(*paths):
    """{target: {source, type, size, used, avail}} from df -B1."""
    out = subprocess.run(["df", "-B1", "--output=source,fstype,size,used,avail,target",
                          *paths], capture_output=True, text=True, check=True).stdout
    rows = {}
    for line in out.splitlines()[1:]:
        f = line.split(None, 5)
        if len(f) == 6 and f[2].isdigit():
            rows[f[5]] = {"source": f[0], "type": f[1], "size": int(f[2]),
                          "used": int(f[3]), "avail": int(f[4])}
    return rows


def test_vs_df(agent_bin):
    fss, ref = run_agent()
    ours = {get(e, "system.filesystem.mount_point"): e for e in fss}
    assert len(ours) == len(fss), "a mount point reported twice"
    common = sorted(m for m in ours if m in ref)
    assert "/" in common, f"no '/': ours {sorted(ours)} df {sorted(ref)}"
    for m in common:
        e, r = ours[m], ref[m]
        assert get(e, "type") == "filesystem"
        assert get(e, "system.filesystem.device_name") == r["source"], m
        assert get(e, "system.filesystem.type") == r["type"], m
        assert get(e, "system.filesystem.total") == r["size"], m
        assert close(get(e, "system.filesystem.used.bytes"), r["used"]), (m, e, r)
        assert close(get(e, "system.filesystem.available"), r["avail"]), (m, e, r)
        total, free = get(e, "system.filesystem.total"), get(e, "system.filesystem.free")
        assert get(e, "system.filesystem.used.bytes") == total - free, m
        pct = get(e, "system.filesystem.used.pct")
        used, avail = total - free, get(e, "system.filesystem.available")
        assert abs(pct - (used / (used + avail) if used + avail else 0)) <= 0.00005 + 1e-9, m
    assert not [m for m, e in ours.items() if get(e, "system.filesystem.type") in IGNORED]


def write_tree(root):
    (root / "proc" / "1").mkdir(parents=True)
    (root / "with space").mkdir()
    (root / "proc" / "1" / "mountinfo").write_text(
        "27 1 8:1 / / rw,relatime shared:1 - ext4 /dev/fake\\040root rw\n"
        "28 27 8:2 / /with\\040space rw,relatime - xfs /dev/fake2 rw\n"
        "29 27 8:3 / /gone rw,relatime - ext4 /dev/fake3 rw\n"
        "22 27 0:21 / /proc rw,nosuid - proc proc rw\n")


def test_hostfs_tree(agent_bin):
    root = Path(tempfile.mkdtemp(prefix="hb-fs-hostfs."))
    try:
        write_tree(root)
        fss, _ = run_agent(f"topbeat.hostfs: {root}\nlegacy_fields: true\n")
        ref = df_b1(str(root))
        assert len(ref) == 1, ref
        r = next(iter(ref.values()))
    finally:
        shutil.rmtree(root, ignore_errors=True)
    ours = {get(e, "system.filesystem.mount_point"): e for e in fss}
    assert sorted(ours) == ["/", "/with space"], sorted(ours)
    assert get(ours["/"], "system.filesystem.device_name") == "/dev/fake root"
    assert get(ours["/with space"], "system.filesystem.type") == "xfs"
    for e in ours.values():
        assert get(e, "system.filesystem.total") == r["size"]
        assert close(get(e, "system.filesystem.available"), r["avail"])
        assert get(e, "fs.total") == get(e, "system.filesystem.total")
        assert get(e, "fs.mount_point") == get(e, "system.filesystem.mount_point")
        assert get(e, "fs.used") == get(e, "system.filesystem.used.bytes")
        assert get(e, "fs.avail") == get(e, "system.filesystem.available")
