"""The README's main command, end to end on the real broker (a small synthetic world)."""

from __future__ import annotations

import os
import re
import subprocess
import sys


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
