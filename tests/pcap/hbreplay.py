"""hbreplay — run hostbeat over a pcap (-I file -t) and read back its NDJSON output.

Shared by the golden tests and the integration tests. Pure stdlib.
"""
import glob
import json
import os
import subprocess
import tempfile

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
SHARED = os.path.abspath(os.path.join(ROOT, "..", "shared", "pcaps", "beats"))
HOSTBEAT = os.path.abspath(os.path.join(ROOT, os.environ.get("HOSTBEAT", "hostbeat")))
GOLDEN_CFG = os.path.join(ROOT, "tests", "pcap", "golden.yml")

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
