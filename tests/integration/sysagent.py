"""What the live system-metrics tests share: the agent binary, dotted lookups, and
the agent sampling this host into a temp dir (packetbeat.enabled: false,
topbeat.period 1s, file output, stopped with SIGTERM). stdlib + pytest only.
"""

from __future__ import annotations

import glob
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def hostbeat_path() -> Path:
    """$HOSTBEAT (relative to the current directory), else <repo>/hostbeat."""
    p = Path(os.environ.get("HOSTBEAT", REPO / "hostbeat"))
    if not p.is_absolute():
        p = (Path.cwd() / p).resolve()
    return p


def agent_or_skip() -> Path:
    p = hostbeat_path()
    if not os.access(p, os.X_OK):
        pytest.skip(f"no agent binary at {p} (make all)")
    if sys.platform != "linux":
        pytest.skip("Linux /proc only")
    return p


def get(ev, dotted: str):
    """ev["a"]["b"]["c"] for "a.b.c"; None when any part is missing."""
    cur = ev
    for part in dotted.split("."):
        if not isinstance(cur, dict) or part not in cur:
            return None
        cur = cur[part]
    return cur


def by_timestamp(events, dataset):
    """Events of one dataset grouped by @timestamp, in time order."""
    by = {}
    for e in events:
        if get(e, "event.dataset") == dataset:
            by.setdefault(e["@timestamp"], []).append(e)
    return [by[k] for k in sorted(by)]


class Agent:
    """hostbeat sampling this host every second into a temp dir; extra_cfg is
    appended to the config, extra_args to the command line."""

    def __init__(self, extra_cfg: str = "", extra_args=(), prefix: str = "hb-sys."):
        self.dir = tempfile.mkdtemp(prefix=prefix)
        cfg = Path(self.dir, "beats.yml")
        cfg.write_text("packetbeat.enabled: false\n"
                       "topbeat.period: 1s\n"
                       f"output.file.path: {self.dir}/out\n"
                       "logging.level: info\n" + extra_cfg)
        argv = [str(hostbeat_path()), "-c", str(cfg), "-e", *extra_args]
        self.log = open(Path(self.dir, "hb.log"), "w+")
        self.proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=self.log)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.flush()

    def files(self):
        return sorted(glob.glob(f"{self.dir}/out/*"))

    def events(self):
        """Every system.* event written so far."""
        out = []
        for f in self.files():
            with open(f) as fh:
                out += [json.loads(line) for line in fh if line.strip()]
        return [e for e in out if str(get(e, "event.dataset") or "").startswith("system.")]

    def log_text(self):
        self.log.seek(0)
        return self.log.read()

    def close(self):
        self.stop()
        self.log.close()
        shutil.rmtree(self.dir, ignore_errors=True)
