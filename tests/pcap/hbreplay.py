"""hbreplay — run hostbeat over a pcap (-I file -t) and read back its NDJSON output.

Shared by the golden tests and the integration tests. Pure stdlib.
"""
import glob
import json
import os
import subprocess
import tempfile

import pytest

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
SHARED = os.path.abspath(os.path.join(ROOT, "..", "shared", "pcaps", "beats"))
HOSTBEAT = os.path.abspath(os.path.join(ROOT, os.environ.get("HOSTBEAT", "hostbeat")))
GOLDEN_CFG = os.path.join(ROOT, "tests", "pcap", "golden.yml")
EXPECTED = os.path.join(ROOT, "tests", "pcap", "expected")
RECORDED = os.path.join(ROOT, "tests", "pcap", "recorded")
UPDATE = os.environ.get("GOLDEN_UPDATE") == "1"

# Keys that depend on the machine or the build, not on the capture.
VOLATILE = ("agent.", "host.", "ecs.version")


def run_replay(pcap, overrides=(), config=GOLDEN_CFG, timeout=120):
    """Replay pcap; return (events in output order, stderr text)."""
    with tempfile.TemporaryDirectory(prefix="hb-golden-") as out:
        cmd = [HOSTBEAT, "-c", config, "-e", "-t", "-I", pcap,
               "-E", "output.file.path=" + out]
        for o in overrides:
            cmd += ["-E", o]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
        if proc.returncode != 0:
            raise AssertionError("hostbeat exited %d\n%s" % (proc.returncode, proc.stderr))
        events = []
        for path in sorted(glob.glob(os.path.join(out, "*.ndjson"))):
            with open(path, encoding="utf-8") as f:
                for line in f:
                    events.append(json.loads(line))
        return events, proc.stderr


def flatten(doc, prefix=""):
    """{"a": {"b": 1}} -> {"a.b": 1}; arrays stay values."""
    flat = {}
    for k, v in doc.items():
        key = prefix + k
        if isinstance(v, dict):
            flat.update(flatten(v, key + "."))
        else:
            flat[key] = v
    return flat


def stable(doc):
    """The event contract: the flattened document minus machine-dependent keys."""
    return {k: v for k, v in flatten(doc).items() if not k.startswith(VOLATILE)}


def of_type(events, t):
    return [e for e in events if e.get("type") == t]


def shared(name):
    """A capture from Packetbeat's test suite (../shared/pcaps/beats)."""
    return os.path.join(SHARED, name)


def one(events, t):
    """The single event of type t, flattened (fails unless there is exactly one)."""
    got = of_type(events, t)
    assert len(got) == 1, "expected exactly 1 %s event, got %d: %s" % (t, len(got), got)
    return flatten(got[0])


def run_case(name, pcap, overrides, check):
    """Replay pcap, run Packetbeat's assertions (check), then diff the whole event
    contract against tests/pcap/expected/NAME.ndjson (GOLDEN_UPDATE=1 rewrites it)."""
    if not os.path.exists(HOSTBEAT):
        pytest.fail("binary %s not built" % HOSTBEAT)
    if not os.path.exists(pcap):
        pytest.skip("capture absent: %s" % pcap)
    events, _ = run_replay(pcap, overrides)
    if check:
        check(events)
    got = [json.dumps(stable(e), sort_keys=True, ensure_ascii=False) for e in events]
    path = os.path.join(EXPECTED, name + ".ndjson")
    if UPDATE:
        with open(path, "w", encoding="utf-8") as f:
            f.write("".join(line + "\n" for line in got))
        return
    if not os.path.exists(path):
        pytest.fail("no golden file %s: run `make golden-update NAME=%s` and review it"
                    % (path, name))
    with open(path, encoding="utf-8") as f:
        want = [line.rstrip("\n") for line in f]
    assert len(got) == len(want), "%d events, golden has %d" % (len(got), len(want))
    for i, (g, w) in enumerate(zip(got, want)):
        if g != w:
            gd, wd = json.loads(g), json.loads(w)
            diff = {k: (gd.get(k), wd.get(k)) for k in set(gd) | set(wd) if gd.get(k) != wd.get(k)}
            pytest.fail("event %d differs from golden (ours, golden): %s" % (i, diff))
