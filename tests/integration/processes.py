"""Launching refold processes from tests: the one way, `python -m refold ...`, with the test's
settings passed as `REFOLD_*` variables (`refold.core.config.environment`).

Tests get `RefoldProcess`es from the `refold_process` fixture (`tests/integration/conftest.py`),
which kills whatever is still running when the test ends.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from refold.core.config import Settings, environment

CRASH_ENV = "REFOLD_TEST_CRASH_AT"


class RefoldProcess:
    """`refold ARGS` in a child process, its stderr (logs) in `log`, stdout discarded unless
    `capture` (then read it with `communicate`)."""

    def __init__(self, settings: Settings, *args: str, log: Path, env: dict[str, str] | None = None,
                 capture: bool = False) -> None:
        self.log = log
        child_env = {**os.environ, **environment(settings), **(env or {})}
        if CRASH_ENV not in (env or {}):
            child_env.pop(CRASH_ENV, None)  # only a test that asks for a crash gets one
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "refold", *args], env=child_env, stderr=log.open("a"),
            stdout=subprocess.PIPE if capture else subprocess.DEVNULL, text=capture)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def poll(self) -> int | None:
        return self.proc.poll()

    def wait(self, timeout: float) -> int:
        return self.proc.wait(timeout)

    def log_text(self) -> str:
        return self.log.read_text() if self.log.exists() else ""

    def wait_for_line(self, text: str, timeout: float = 60.0) -> str:
        """The first line of the log containing `text`; fails with the log's tail after
        `timeout` seconds or if the process ends first."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for line in self.log_text().splitlines():
                if text in line:
                    return line
            if self.proc.poll() is not None:
                break
            time.sleep(0.1)
        raise AssertionError(f"no line with {text!r} in:\n{self.log_text()[-3000:]}")

    def kill(self) -> None:
        """SIGKILL (no handler runs) and reap."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(30)

    def finish(self, timeout: float = 30.0) -> tuple[int, str]:
        """SIGTERM, then the exit code and what the process printed (launched with
        `capture`)."""
        self.proc.terminate()
        out, _ = self.proc.communicate(timeout=timeout)
        return self.proc.returncode, out or ""

    def stop(self, timeout: float = 30.0) -> int:
        """SIGTERM (the process commits its batch and leaves), SIGKILL after `timeout`."""
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                return self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        return self.proc.wait(30)
