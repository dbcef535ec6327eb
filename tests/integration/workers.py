"""A fold-in worker on a thread of the test process, for tests that look inside a running worker.

`WorkerThread(settings, recommender, **options)` builds the worker and its transactional loop with
`consumers.foldin_worker.build_worker` (`options` go to it and on to the loop); `start` runs them on
a daemon thread, `stop` ends the loop, joins the thread and re-raises whatever the thread raised.
The worker is closed on the thread when its loop ends, failed or not.
"""

from __future__ import annotations

import threading
from typing import Any, Self

from consumers.foldin_worker import build_worker
from models.recommender import OnlineRecommender
from refold.core.config import Settings


class WorkerThread:
    """A worker and its loop on a daemon thread (`start`, then `stop`)."""

    def __init__(self, settings: Settings, recommender: OnlineRecommender,
                 join_timeout: float = 30.0, **options: Any) -> None:
        self.settings = settings
        self.join_timeout = join_timeout
        """Seconds `stop` waits for the thread to end."""
        self.worker, self.loop = build_worker(settings, recommender, **options)
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        try:
            self.worker.start()
            self.loop.run()
        except BaseException as exc:
            self.error = exc
        finally:
            self.worker.close()

    def start(self) -> Self:
        """Run the worker's loop on the thread; returns the worker thread itself."""
        self.thread.start()
        return self

    def stop(self) -> None:
        """Stop the loop and wait for the thread; raise what the worker raised, if anything."""
        self.loop.stop()
        self.thread.join(self.join_timeout)
        assert not self.thread.is_alive()
        if self.error is not None:
            raise self.error
