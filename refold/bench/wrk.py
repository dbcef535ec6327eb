"""wrk, the HTTP load generator of `refold bench serve`: install, drive, merge histograms.

`drive` runs wrk once (pinned to a core) with `serve_wrk.lua`, which spaces requests by the clock
to a fixed rate and prints wrk's whole latency histogram (µs -> count). Histograms of several
runs add up (`Latency.merge`), so a server measured in segments interleaved with another one
gets its percentiles from all of its requests, not an average of percentiles.

>>> a = Latency({100: 98, 200: 1, 5000: 1}, requests=100, seconds=0.05)
>>> b = Latency({100: 99, 9000: 1}, requests=100, seconds=0.05)
>>> ab = Latency.merge([a, b])
>>> ab.requests, ab.percentile(50), ab.percentile(99), ab.percentile(99.9), ab.rps
(200, 100, 200, 9000, 2000.0)
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from refold.core.errors import AppError

INSTALL_WRK = Path(__file__).resolve().parents[2] / "deploy" / "install-wrk.sh"
LUA = Path(__file__).with_name("serve_wrk.lua")


class BenchError(AppError):
    """The benchmark could not run (no wrk, a server that did not get ready ...)."""


@dataclass
class Latency:
    """One or more wrk runs: latency histogram in µs, requests, errors, seconds driven."""

    histogram: dict[int, int] = field(default_factory=dict)
    requests: int = 0
    seconds: float = 0.0
    errors: int = 0
    client_wait: float = 0.0
    """Seconds wrk was runnable but waiting for its core (its latencies include them)."""

    @classmethod
    def merge(cls, runs: list[Latency]) -> Latency:
        total: Counter[int] = Counter()
        for run in runs:
            total.update(run.histogram)
        return cls(dict(total), sum(r.requests for r in runs), sum(r.seconds for r in runs),
                   sum(r.errors for r in runs), sum(r.client_wait for r in runs))

    def percentile(self, p: float) -> int:
        """The smallest latency (µs) at or below which `p` percent of the requests finished."""
        n = sum(self.histogram.values())
        if n == 0:
            return 0
        need, seen = p / 100 * n, 0
        for value in sorted(self.histogram):
            seen += self.histogram[value]
            if seen >= need:
                return value
        return max(self.histogram)

    @property
    def rps(self) -> float:
        return round(self.requests / self.seconds, 1) if self.seconds else 0.0

    def figures(self) -> dict[str, Any]:
        return {"requests": self.requests, "rps": self.rps,
                "p50_ms": self.percentile(50) / 1000, "p99_ms": self.percentile(99) / 1000,
                "p999_ms": self.percentile(99.9) / 1000,
                "max_ms": max(self.histogram, default=0) / 1000, "errors": self.errors,
                "wrk_wait_ms_per_s": round(1000 * self.client_wait / max(self.seconds, 1e-9), 1)}


def ensure_wrk() -> str:
    """The path of wrk, installed from Debian's packages by the project script when missing."""
    if (path := shutil.which("wrk")) is None:
        print(f"wrk is missing: running {INSTALL_WRK}", file=sys.stderr)
        subprocess.run(["sh", str(INSTALL_WRK)], check=False)
        path = shutil.which("wrk")
    if path is None:
        raise BenchError(f"wrk is not installed and {INSTALL_WRK} could not install it")
    return path


def schedstat(pid: int, main_only: bool = False) -> tuple[float, float]:
    """(seconds on a CPU, seconds runnable but waiting for one) of every thread of `pid` so far,
    or of its main thread only (the kernel's schedstat; zeros once the process is gone)."""
    cpu = wait = 0
    tasks = [Path(f"/proc/{pid}/task/{pid}")] if main_only else \
        list(Path(f"/proc/{pid}/task").glob("*"))
    for task in tasks:
        try:
            fields = (task / "schedstat").read_text().split()
        except OSError:
            continue
        cpu, wait = cpu + int(fields[0]), wait + int(fields[1])
    return cpu / 1e9, wait / 1e9


def may_raise_priority() -> bool:
    """Whether this process may start children at a higher priority (a negative nice)."""
    probe = [sys.executable, "-c", "import os; os.setpriority(os.PRIO_PROCESS, 0, -10)"]
    return subprocess.run(probe, capture_output=True).returncode == 0


def pinned(core: int, nice: int = 0) -> Callable[[], None]:
    """A `preexec_fn`: run the child on `core`, at `nice`."""

    def setup() -> None:
        os.sched_setaffinity(0, {core})
        if nice:
            os.setpriority(os.PRIO_PROCESS, 0, nice)

    return setup


def drive(wrk: str, port: int, users: int, duration: float, connections: int,
          rate: float | None, seed: int, core: int = 1, nice: int = 0) -> Latency:
    """One wrk run on `core` at `nice`: random users' lists at `rate` requests/s (None: as fast
    as the connections go) for `duration` seconds."""
    cmd = [wrk, "-t1", f"-c{connections}", f"-d{max(duration, 1):.0f}s", "-s", str(LUA),
           f"http://127.0.0.1:{port}", "--", str(users), str(rate or 0), str(seed)]
    with tempfile.TemporaryFile("w+") as stdout, tempfile.TemporaryFile("w+") as stderr:
        # files, not pipes: the histogram is larger than a pipe's buffer
        proc = subprocess.Popen(cmd, stdout=stdout, stderr=stderr, text=True,
                                preexec_fn=pinned(core, nice))
        waited = 0.0
        deadline = time.monotonic() + duration + 60
        while proc.poll() is None and time.monotonic() < deadline:
            waited = schedstat(proc.pid)[1] or waited  # the last reading before it exits
            time.sleep(0.1)
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        stdout.seek(0)
        stderr.seek(0)
        out, err = stdout.read(), stderr.read()
    lines = [ln for ln in out.splitlines() if ln.startswith("refold-result ")]
    if proc.returncode != 0 or not lines:
        raise BenchError(f"wrk failed ({proc.returncode}): {err or out}")
    r = json.loads(lines[-1].removeprefix("refold-result "))
    return Latency({int(v): int(c) for v, c in r["histogram"]}, r["requests"],
                   r["duration_us"] / 1e6, r["errors"] + r["non2xx"], waited)
