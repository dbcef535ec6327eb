"""CPU and wall-clock time of the code inside `with` blocks: the evaluation's compute measure."""

from __future__ import annotations

import time


class Clock:
    """CPU and wall-clock seconds spent inside its `with` blocks.

    >>> clock = Clock()
    >>> with clock:
    ...     _ = sum(range(1000))
    >>> clock.cpu >= 0 and clock.wall > 0
    True
    """

    __slots__ = ("_cpu0", "_wall0", "cpu", "wall")

    def __init__(self) -> None:
        self.cpu = self.wall = self._cpu0 = self._wall0 = 0.0

    def __enter__(self) -> None:
        self._cpu0, self._wall0 = time.process_time(), time.perf_counter()

    def __exit__(self, *exc: object) -> None:
        self.cpu += time.process_time() - self._cpu0
        self.wall += time.perf_counter() - self._wall0
