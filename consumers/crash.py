"""The fault tests' hook: kill the process at a chosen point of its work.

`REFOLD_TEST_CRASH_AT=<point>:<n>` makes the process kill itself with SIGKILL at `point` of its
n-th batch (or chunk, or swap):

- `after_produce`: (`consumers.loop`) the outputs are flushed into the open transaction, the
  offsets are not sent;
- `after_offsets`: the offsets are sent too, nothing is committed;
- `after_commit`: the transaction is committed, the staged state is not promoted;
- `restore_chunk`: (`consumers.state.restore`) a restore has applied its n-th chunk to a store;
- `swap`: (`consumers.foldin_worker`) the n-th model version is being swapped in;
- `inputless`: (`consumers.inputless`) the n-th transaction with no input has produced its
  outputs, nothing is committed.

Only the fault tests set it; unset, nothing happens.

>>> CrashPoint.parse("after_offsets:2")
CrashPoint(point='after_offsets', batch=2)
>>> CrashPoint.parse("after_offsets:2").due("after_offsets", batch=2)
True
>>> CrashPoint.parse("") is None
True
"""

from __future__ import annotations

import logging
import os
import signal
from dataclasses import dataclass

log = logging.getLogger(__name__)

CRASH_ENV = "REFOLD_TEST_CRASH_AT"
CRASH_POINTS = ("after_produce", "after_offsets", "after_commit", "restore_chunk", "swap",
                "inputless")


@dataclass(frozen=True)
class CrashPoint:
    """Where to die: `point` (one of `CRASH_POINTS`) of the `batch`-th batch (from 1)."""

    point: str
    batch: int

    @classmethod
    def parse(cls, spec: str | None) -> CrashPoint | None:
        """`after_produce:3` -> CrashPoint('after_produce', 3); None or "" -> None."""
        if not spec:
            return None
        point, _, n = spec.partition(":")
        if point not in CRASH_POINTS or not n.isdigit() or int(n) < 1:
            raise ValueError(
                f"{CRASH_ENV}={spec!r}: expected <{'|'.join(CRASH_POINTS)}>:<n >= 1>")
        return cls(point, int(n))

    @classmethod
    def from_env(cls) -> CrashPoint | None:
        return cls.parse(os.environ.get(CRASH_ENV))

    def due(self, point: str, batch: int) -> bool:
        return (point, batch) == (self.point, self.batch)

    def kill(self) -> None:
        """SIGKILL this process: no handler, no flush, no clean-up runs."""
        log.warning("%s=%s:%d: killing this process", CRASH_ENV, self.point, self.batch)
        os.kill(os.getpid(), signal.SIGKILL)
