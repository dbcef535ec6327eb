"""A fold-in worker on a thread of the test process, for tests that look inside a running worker.

`WorkerThread(settings, factors, recommender=..., **options)` assembles the worker as every
process does (`consumers.assembly.assemble_worker`, with `WorkerOptions.bare(**options)`: no
monitor, /metrics, snapshots or refit requests unless asked); `start` runs it on a daemon
thread, `stop` ends its loop, joins the thread and re-raises whatever the thread raised. The
worker is closed on the thread when its loop ends, failed or not.
"""

from __future__ import annotations

import threading
from typing import Any, Self

from consumers.assembly import WorkerOptions, assemble_worker
from models.foldin import ItemFactors
from models.recommender import OnlineRecommender
from refold.core.config import Settings


class WorkerThread:
    """An assembled worker on a daemon thread (`start`, then `stop`); `worker` is its
    `FoldInWorker`, `loop` its `TransactionalLoop`."""

    def __init__(self, settings: Settings, factors: ItemFactors | None = None, *,
                 recommender: OnlineRecommender | None = None, join_timeout: float = 30.0,
                 **options: Any) -> None:
        self.settings = settings
        self.join_timeout = join_timeout
        """Seconds `stop` waits for the thread to end."""
        self.assembled = assemble_worker(settings, factors, WorkerOptions.bare(**options),
                                         recommender=recommender)
        self.worker, self.loop = self.assembled.worker, self.assembled.loop
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        try:
            self.assembled.run()
        except BaseException as exc:
            self.error = exc
        finally:
            self.assembled.close()

    def start(self) -> Self:
        """Run the worker's loop on the thread; returns the worker thread itself."""
        self.thread.start()
        return self

    def stop(self) -> None:
        """Stop the loop and wait for the thread; raise what the worker raised, if anything."""
        self.assembled.stop()
        self.thread.join(self.join_timeout)
        assert not self.thread.is_alive()
        if self.error is not None:
            raise self.error
