"""Assembly of the serve process: settings -> state, view and HTTP app -> uvicorn.

`build` is the one place a serve process is put together (the CLI, the benchmark and the tests
use it); `run` serves it until SIGINT/SIGTERM. The HTTP app runs on the main thread's event loop
(uvloop, httptools), the view follows the topics on a thread of its own; the interpreter's switch
interval is lowered so that the view's thread holds the GIL for at most a millisecond at a time
(the default 5 ms would show up in the request latency's tail). Once the topics were read to
their end, what the process holds is frozen out of the garbage collector's walks
(`refold.serve.tuning`: a full collection, rare under steady traffic, would otherwise stop
every request for tens of ms).
"""

from __future__ import annotations

import logging
import sys
from dataclasses import dataclass

from litestar.types import ASGIApp

from consumers.model_source import foldin_config
from consumers.serve_state import ServeState
from consumers.serve_view import ServeView
from refold.core.config import Settings
from refold.core.kafka import KafkaFatalError, make_consumer
from refold.serve import metrics
from refold.serve.app import create_app
from refold.serve.tuning import PAUSES, GcMode, settle

log = logging.getLogger(__name__)
SWITCH_INTERVAL = 0.001


@dataclass
class Served:
    """One serve process's parts."""

    state: ServeState
    view: ServeView
    app: ASGIApp


def recommendation_partitions(settings: Settings) -> int:
    """How many partitions the recommendations topic has (users hash over all of them)."""
    topic = settings.topic("recommendations")
    consumer = make_consumer(settings, f"{topic}.serve-metadata")
    try:
        md = consumer.list_topics(topic, timeout=10).topics[topic]
        if md.error is not None:
            raise KafkaFatalError(f"topic {topic}: {md.error.str()} "
                                  "(`refold topics create` makes the topics)")
        return len(md.partitions)
    finally:
        consumer.close()


def build(settings: Settings, held: set[int] | None = None, max_users: int = 10_000_000,
          events_lookback: float = 86400.0, gc_mode: GcMode = "freeze") -> Served:
    """State, view and app for `settings`; `held` recommendation partitions (None: all);
    `gc_mode` freeze: `settle()` the collector once the topics were read."""
    state = ServeState(
        partitions=recommendation_partitions(settings), held=held, max_users=max_users,
        weights=foldin_config(settings).weights,
        trending_half_life=settings.trending_half_life_seconds)
    PAUSES.install()
    view = ServeView(settings, state, held, events_lookback,
                     on_caught_up=settle if gc_mode == "freeze" else None)
    app = create_app(state, view, default_k=settings.k,
                     on_scrape=lambda: metrics.record_view(view))
    return Served(state, view, app)


def run(served: Served, host: str = "127.0.0.1", port: int = 8000,
        log_level: str = "info") -> int:
    """Follow the topics and serve HTTP until SIGINT or SIGTERM; returns the exit code."""
    import uvicorn

    sys.setswitchinterval(SWITCH_INTERVAL)
    served.view.start()
    config = uvicorn.Config(served.app, host=host, port=port, loop="uvloop", http="httptools",
                            access_log=False, log_level=log_level.lower(), lifespan="off")
    try:
        uvicorn.Server(config).run()
    finally:
        served.view.close()
    return 0 if served.view.error is None else 1
