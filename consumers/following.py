"""A view's background thread: one step after another until stopped (`Following`).

A view that keeps up with its topics (`RecommendationsView`, `ServeView`) runs its reads in a
daemon thread. A step that raises is logged and the next one waits a second: one bad poll must
not stop a view. A step returns False to end the thread (an error no retry fixes).

>>> import time
>>> steps = []
>>> f = Following("demo", lambda stop: steps.append(stop.wait(0.001)))
>>> f.start() is f and f.running
True
>>> time.sleep(0.05)
>>> f.stop()
>>> len(steps) > 0, f.running
(True, False)
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

log = logging.getLogger(__name__)


class Following:
    """Calls `step(stop)` in a daemon thread named `name` until `stop()` (`stop`: the event a
    step may wait on, set when the thread is to end)."""

    def __init__(self, name: str, step: Callable[[threading.Event], bool | None]) -> None:
        self.name, self.step = name, step
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def running(self) -> bool:
        """Whether the thread was started and not stopped (it may have ended on its own)."""
        return self._thread is not None

    def start(self) -> Following:
        if self._thread is None:
            self._stop.clear()
            self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
            self._thread.start()
        return self

    def stop(self) -> None:
        if self._thread is not None:
            self._stop.set()
            self._thread.join()
            self._thread = None

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                if self.step(self._stop) is False:
                    return
            except Exception:  # keep following: one bad poll must not stop the view
                log.exception("%s: a step failed", self.name)
                self._stop.wait(1.0)
