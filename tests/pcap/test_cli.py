"""Command-line contract: exit codes, config errors with file:line:col, subcommands,
and hostile input files (truncated or garbage pcaps never crash)."""
import os
import re
import subprocess
import tempfile

import pytest

from hbreplay import ROOT, SHARED, HOSTBEAT, GOLDEN_CFG, run_replay


def hb(*args, **kw):
    return subprocess.run([HOSTBEAT, *args], capture_output=True, text=True, timeout=60,
                          cwd=kw.get("cwd", ROOT))


def write(tmp, name, text):
    path = os.path.join(tmp, name)
    with open(path, "w") as f:
        f.write(text)
    return path


def test_version():
    r = hb("version")
    assert r.returncode == 0
    assert re.match(r"hostbeat version \d+\.\d+\.\d+", r.stdout)


def test_help_and_bad_flag():
    assert hb("-h").returncode == 0
    r = hb("--no-such-flag")
    assert r.returncode == 2


def test_unknown_command():
    r = hb("frobnicate")
    assert r.returncode == 2
    assert "unknown command" in r.stderr


def test_test_config_ok_repo_file():
    r = hb("test", "config", "-c", "beats.yml")
    assert r.returncode == 0, r.stderr
    assert "Config OK" in r.stdout


def test_config_unknown_key_has_line_and_col():
    with tempfile.TemporaryDirectory() as tmp:
        cfg = write(tmp, "beats.yml", "packetbeat.protocols:\n- type: http\n  portz: [80]\n")
        r = hb("test", "config", "-c", cfg)
        assert r.returncode == 2
        assert re.search(re.escape(cfg) + r":3:3: .*portz", r.stderr), r.stderr


def test_processors_are_accepted_with_a_warning():
    """A Packetbeat config with processors loads, and the user is told they do not run."""
    with tempfile.TemporaryDirectory() as tmp:
        cfg = write(tmp, "beats.yml",
                    "packetbeat.protocols:\n- type: http\n  ports: [80]\n"
                    "  processors:\n  - drop_fields: {fields: [url.query]}\n"
                    "processors:\n- add_docker_metadata: ~\n")
        r = hb("test", "config", "-c", cfg, "-e")
        assert r.returncode == 0, r.stderr
        warns = [l for l in r.stderr.splitlines() if "processors are not run" in l]
        assert len(warns) == 1 and f"{cfg}:5:" in warns[0], r.stderr
        cfg = write(tmp, "plain.yml", "packetbeat.protocols:\n- type: http\n  ports: [80]\n")
        r = hb("test", "config", "-c", cfg, "-e")
        assert r.returncode == 0 and "processors" not in r.stderr, r.stderr


def test_config_bad_value_has_line_and_col():
    with tempfile.TemporaryDirectory() as tmp:
        cfg = write(tmp, "beats.yml",
                    "packetbeat.protocols:\n- type: http\n  ports: [80]\n"
                    "  transaction_timeout: soon\n")
        r = hb("test", "config", "-c", cfg)
        assert r.returncode == 2
        assert re.search(re.escape(cfg) + r":4:\d+: .*transaction_timeout", r.stderr), r.stderr


def test_config_yaml_syntax_error():
    with tempfile.TemporaryDirectory() as tmp:
        cfg = write(tmp, "beats.yml", "packetbeat.protocols: [\n- type: http\n")
        r = hb("test", "config", "-c", cfg)
        assert r.returncode == 2
        assert re.search(re.escape(cfg) + r":\d+:\d+: ", r.stderr), r.stderr


def test_config_missing_file():
    r = hb("test", "config", "-c", "/nonexistent/beats.yml")
    assert r.returncode == 2
    assert "/nonexistent/beats.yml" in r.stderr


def test_override_bad_value():
    r = hb("test", "config", "-c", "beats.yml", "-E", "metrics.period=never")
    assert r.returncode == 2
    assert "metrics.period" in r.stderr


def test_override_without_equals():
    r = hb("test", "config", "-E", "metrics.period")
    assert r.returncode == 2


def test_dump_config_round_trips():
    r = hb("--dump-config", "-c", "beats.yml")
    assert r.returncode == 0, r.stderr
    with tempfile.TemporaryDirectory() as tmp:
        cfg = write(tmp, "dump.yml", r.stdout)
        r2 = hb("test", "config", "-c", cfg)
        assert r2.returncode == 0, r2.stderr


def test_devices_lists_something():
    r = hb("devices")
    assert r.returncode == 0
    assert re.search(r"^0: \S+", r.stdout, re.M)


def test_missing_pcap_is_runtime_error():
    r = hb("-c", GOLDEN_CFG, "-t", "-I", "/nonexistent.pcap", "-E", "output.console.enabled=true",
           "-E", "output.file.enabled=false")
    assert r.returncode == 1
    assert "nonexistent.pcap" in r.stderr


def test_garbage_pcap_is_runtime_error():
    with tempfile.TemporaryDirectory() as tmp:
        p = os.path.join(tmp, "garbage.pcap")
        with open(p, "wb") as f:
            f.write(os.urandom(4096))
        r = hb("-c", GOLDEN_CFG, "-t", "-I", p, "-E", "output.file.path=" + tmp)
        assert r.returncode == 1
        assert r.stderr


def test_truncated_pcap_keeps_what_was_read():
    src = os.path.join(SHARED, "http_basicauth.pcap")
    if not os.path.exists(src):
        pytest.skip("capture absent: %s" % src)
    data = open(src, "rb").read()
    full, _ = run_replay(src)
    with tempfile.TemporaryDirectory() as tmp:
        # cut in the middle of the last packet record
        p = os.path.join(tmp, "cut.pcap")
        with open(p, "wb") as f:
            f.write(data[:-7])
        events, err = run_replay(p)
        assert "truncated" in err.lower() or "read error" in err.lower(), err
        # the DNS transaction came before the cut; nothing crashes, nothing is invented
        assert any(e["type"] == "dns" for e in events)
        assert len(events) <= len(full)


def test_console_output_writes_ndjson_to_stdout():
    src = os.path.join(SHARED, "dns_google_com.pcap")
    if not os.path.exists(src):
        pytest.skip("capture absent: %s" % src)
    r = hb("-c", GOLDEN_CFG, "-t", "-I", src, "-E", "output.file.enabled=false",
           "-E", "output.console.enabled=true")
    assert r.returncode == 0, r.stderr
    lines = [l for l in r.stdout.splitlines() if l.strip()]
    assert len(lines) == 1
    assert '"type":"dns"' in lines[0]


def test_no_publish_flag_counts_events():
    src = os.path.join(SHARED, "dns_google_com.pcap")
    if not os.path.exists(src):
        pytest.skip("capture absent: %s" % src)
    with tempfile.TemporaryDirectory() as tmp:
        r = hb("-c", GOLDEN_CFG, "-t", "-N", "-I", src, "-E", "output.file.path=" + tmp,
               "-E", "logging.level=info")
        assert r.returncode == 0, r.stderr
        assert os.listdir(tmp) == []
        assert re.search(r"transactions=1\b", r.stderr), r.stderr
