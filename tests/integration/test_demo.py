"""The README's main command, end to end on the real broker (a small synthetic world)."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys

import pytest

pytestmark = pytest.mark.slow


def test_demo_runs_the_pipeline_and_reports_it(bootstrap, unique_prefix):
    env = {**os.environ, "REFOLD_BOOTSTRAP_SERVERS": bootstrap,
           "REFOLD_TOPIC_PREFIX": unique_prefix}
    out = subprocess.run(
        [sys.executable, "-m", "refold", "demo", "--synth-events", "6000", "--workers", "2",
         "--refit-every", "2000", "--rate", "3000", "--exit"],
        env=env, capture_output=True, text=True, timeout=300,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    text = out.stdout
    m = re.search(r"processed ([\d,]+) events \((\d+) dead letters\)", text)
    assert m and int(m[1].replace(",", "")) == 6000 and m[2] == "0", text
    lists = int(re.search(r"lists published: ([\d,]+)", text)[1].replace(",", ""))
    assert lists > 0
    versions = re.search(r"serve model version\(s\) \[([\d, ]+)\]", text)
    assert versions and max(int(v) for v in versions[1].split(",")) >= 1, text
    assert re.search(r"latency: p50 [\d,]+ ms, p99 [\d,]+ ms", text), text
    assert float(re.search(r"online hit-rate@K .*: ([\d.]+)", text)[1]) > 0
    assert "refitter exit 0, worker-0 exit 0, worker-1 exit 0" in text


def test_sigterm_stops_the_demo_and_its_processes(bootstrap, unique_prefix):
    """A supervisor's SIGTERM ends the demo as Ctrl-C does: no child is left running."""
    env = {**os.environ, "REFOLD_BOOTSTRAP_SERVERS": bootstrap,
           "REFOLD_TOPIC_PREFIX": unique_prefix, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "refold", "demo", "--synth-events", "2000", "--workers", "1",
         "--refit-every", "1000", "--rate", "0"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines, pids = [], []
    try:
        for line in proc.stdout:
            lines.append(line)
            if "Ctrl-C stops them" in line:
                break
        pids = [int(p) for p in re.findall(r" pid (\d+) ", "".join(lines))]
        assert len(pids) == 2, "".join(lines)
        proc.send_signal(signal.SIGTERM)
        rest = proc.stdout.read()
        assert proc.wait(60) == 0, "".join(lines) + rest
    finally:
        if proc.poll() is None:
            proc.kill()
        left = [pid for pid in pids if _alive(pid)]
        for pid in left:  # a failed run leaves nothing behind either
            os.kill(pid, signal.SIGKILL)
    assert "stopping (SIGTERM)" in rest, rest
    assert "refitter exit 0, worker-0 exit 0" in rest, rest
    assert left == [], "children left running"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True
