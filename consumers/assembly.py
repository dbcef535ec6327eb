"""The one place each process is put together: a fold-in worker, and a refitter.

`refold consume` and `refold refit` (and, through them, `refold demo`), the benchmarks and the
tests build their processes here, so what a test or a benchmark runs is what production runs.

A worker (`assemble_worker`), in the order its parts are made:

1. the recommender (`models.recommender.OnlineRecommender`) with the fold-in settings of
   `settings` (and `WorkerOptions.fold_in`), serving `factors` (none: popularity until a
   snapshot arrives), unless a recommender is given;
2. a `consumers.monitor.Monitor` of drift and online quality (`monitor`), the /metrics endpoint
   (`serve_metrics`), and refit requests to the refitter on drift alarms (`refit_on_drift`);
3. the `consumers.foldin_worker.FoldInWorker`, following the catalog, and the
   `consumers.loop.TransactionalLoop` that drives it with `guarantee`;
4. on `start()`: the catalog read to its end, then (`follow_snapshots`) the newest snapshot
   loaded and a follower thread that swaps in each new one between batches.

>>> options = WorkerOptions.bare(max_messages=10)
>>> options.monitor, options.follow_snapshots, options.max_messages
(False, False, 10)
"""

from __future__ import annotations

import dataclasses
import logging
import os
import signal
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Self

from threadpoolctl import threadpool_limits

from consumers.batch import LoopStats, SideInput
from consumers.catalog_reader import CatalogReader
from consumers.control import RefitRequester
from consumers.foldin_worker import FoldInWorker, transactional_id
from consumers.heap import freeze_startup_heap
from consumers.instrument import Monitored
from consumers.loop import TransactionalLoop
from consumers.model_source import foldin_config
from consumers.monitor import Monitor
from consumers.profiles_reader import ProfilesReader
from consumers.refitter import DEFAULT_SIMILAR, Refitter, Triggers
from consumers.similar_publisher import SimilarParams
from consumers.snapshots import SnapshotFollower, follow
from models.foldin import ItemFactors
from models.recommender import OnlineRecommender
from models.refit import RefitParams
from models.store import StoreConfig
from refold.core import metrics
from refold.core.config import Settings
from refold.core.probes import Probes

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class WorkerOptions:
    """How a worker is assembled; the defaults are those of `refold consume`."""

    guarantee: str = "exactly-once"
    fold_in: Mapping[str, Any] = field(default_factory=dict)
    """`FoldInConfig` settings on top of those of `Settings` (e.g. `{"full_events": 1}`)."""
    monitor: bool = True
    """Feed a `Monitor` (drift, online quality, the worker's metrics) from every batch."""
    serve_metrics: bool = True
    """Serve /metrics on `settings.metrics_host:metrics_port`."""
    follow_snapshots: bool = True
    snapshot_wait: float = 30.0
    """At start, look this long at most for the newest snapshot."""
    refit_on_drift: bool = True
    """A drift alarm of the monitor asks the refitter for a refit (control topic)."""
    refit_request_interval: float = 600.0
    max_messages: int | None = None
    idle_exit: float | None = None
    consumer_extra: Mapping[str, Any] = field(default_factory=dict)
    producer_extra: Mapping[str, Any] = field(default_factory=dict)
    prepare_swaps: bool = True
    """Lay out a new model version on the follower's thread (False: between batches, on the
    processing thread, the swap as it was: `refold bench swap --inline` compares them)."""
    check_instance: bool = True
    """Before joining, refuse to run next to a live member with this instance id
    (`consumers.instances`); False leaves it to fencing (a test of fencing itself)."""
    side_inputs: Sequence[SideInput] = ()
    """Readers caught up at start and polled between batches, besides the catalog."""
    impressions: bool = True
    """Read the impressions topic with the events (exposure feedback, attribution, metrics)."""

    @classmethod
    def bare(cls, **changes: Any) -> WorkerOptions:
        """The worker and its loop alone: no monitor, /metrics, snapshots or refit requests."""
        plain = {"monitor": False, "serve_metrics": False, "follow_snapshots": False,
                 "refit_on_drift": False}
        return cls(**{**plain, **changes})


class Worker:
    """A fold-in worker, assembled: `start()`, `run()` until `stop()` (or a limit), `close()`.

    Its parts are public: `recommender`, `worker` (the `FoldInWorker`), `processor` (what the
    loop drives: the worker, or the worker watched by its monitor), `loop`, `monitor`,
    `follower` (after `start`), `requester`, `metrics_port`.
    """

    def __init__(self, settings: Settings, recommender: OnlineRecommender,
                 options: WorkerOptions) -> None:
        self.settings = settings
        self.options = options
        self.recommender = recommender
        self.metrics_port: int | None = None
        self.probes = Probes(starting="reading the catalog and the newest snapshot")
        """/ready: the catalog read, a model (or popularity) to serve, partitions restored."""
        if options.serve_metrics:
            self.metrics_port = metrics.serve(settings, role="consumer", probes=self.probes)
            log.info("metrics: http://%s:%d/metrics", settings.metrics_host, self.metrics_port)
        self.requester = RefitRequester(settings) if options.refit_on_drift else None
        self.monitor = self._monitor() if options.monitor else None
        self.worker = FoldInWorker(
            settings, recommender, side_inputs=list(options.side_inputs),
            exact_restore=options.guarantee == "exactly-once",
            prepare_swaps=options.prepare_swaps)
        self.worker.side_inputs.insert(0, CatalogReader(
            settings, apply_many=self._apply_items, on_delete=self.worker.forget_item,
            on_read=None if self.worker.inputless is None else self.worker.inputless.catalog_read))
        self.worker.side_inputs.insert(1, ProfilesReader(
            settings, recommender.set_profiles, recommender.drop_profile))
        self.processor: FoldInWorker | Monitored = self.worker
        if self.monitor is not None:
            self.processor = Monitored(self.worker, self.monitor, settings.consumer_group)
        self.loop = TransactionalLoop(
            settings, self.processor, topics=[settings.topic("events")],
            group_id=settings.consumer_group, transactional_id=transactional_id(settings),
            guarantee=options.guarantee, max_messages=options.max_messages,
            idle_exit=options.idle_exit, consumer_extra=dict(options.consumer_extra),
            producer_extra=dict(options.producer_extra), client_role="worker",
            probes=self.probes, check_instance=options.check_instance,
            companions=[settings.topic("impressions")] if options.impressions else ())
        if isinstance(self.processor, Monitored):
            self.processor.attach(self.loop)
        self.follower: SnapshotFollower | None = None
        self._started = self._closed = False

    def _apply_items(self, items: list[Any]) -> None:
        self.recommender.apply_items(items)
        for item in items:
            if item.active:  # back in the catalog
                self.worker.deleted_items.discard(item.item_id)

    def _monitor(self) -> Monitor:
        """Drift and online quality, with the recommender's catalog for categories and size."""
        catalog = self.recommender.catalog

        def categories(item_id: str) -> tuple[str, ...]:
            i = catalog.get(item_id)
            return catalog.categories_of(i) if i >= 0 else ()

        return Monitor(self.settings.k, weights=self.recommender.config.weights,
                       categories=categories, catalog_size=lambda: int(catalog.active.sum()),
                       request_refit=self.requester,
                       refit_cooldown=self.options.refit_request_interval,
                       max_users=self.settings.state_cache_users,
                       summary_interval=self.settings.metrics_summary_seconds)

    def start(self) -> Self:
        """Read the side inputs (the catalog) to their end, then load and follow snapshots."""
        if self._started:
            return self
        self._started = True
        self.worker.start()
        if self.options.follow_snapshots:
            monitor = self.monitor
            self.follower = follow(
                self.settings, self.processor.swap_snapshot, self.recommender.model_version,
                self.options.snapshot_wait,
                on_refused=None if monitor is None else (
                    lambda _reason: monitor.on_snapshot_rejected()))
        self.probes.clear("starting")
        return self

    def run(self, freeze_heap: bool = False) -> LoopStats:
        """`start()` if not done, then consume until stopped; what the loop did.
        `freeze_heap`: for a process whose life is this worker (`settle_process`)."""
        self.start()
        if freeze_heap:
            settle_process(self.settings)
        try:
            return self.loop.run()
        finally:
            if self.monitor is not None:  # the gauges end on every batch, not a second before
                self.monitor.summarise()

    def stop(self) -> None:
        """Finish the current batch, commit it and return from `run` (any thread, signals)."""
        self.loop.stop()

    def stop_on_signals(self) -> None:
        """SIGTERM and SIGINT call `stop()`."""
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: self.stop())

    def close(self) -> None:
        """Close every client (idempotent)."""
        if self._closed:
            return
        self._closed = True
        self.worker.close()
        if self.follower is not None:
            self.follower.close()
        if self.requester is not None:
            self.requester.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def assemble_worker(settings: Settings, factors: ItemFactors | None = None,
                    options: WorkerOptions | None = None, *,
                    recommender: OnlineRecommender | None = None) -> Worker:
    """A fold-in worker as `refold consume` runs it (see the module docstring); `recommender`
    replaces the one built from `settings`, `options.fold_in` and `factors`."""
    options = options or WorkerOptions()
    if isinstance(factors, OnlineRecommender):
        raise TypeError("pass a ready recommender as recommender=..., not as the factors")
    if recommender is None:
        recommender = OnlineRecommender(foldin_config(settings, **options.fold_in), factors)
    elif factors is not None or options.fold_in:
        raise ValueError("give a recommender, or factors and fold-in settings, not both")
    return Worker(settings, recommender, options)


# -- the refitter ---------------------------------------------------------------------------


@dataclass(frozen=True)
class RefitterOptions:
    """How a refitter is assembled; the defaults are those of `refold refit`. Its ALS settings
    (factors, regularization, alpha, iterations, k) are those of `Settings`."""

    model: str = "als"
    holdout: float = 0.02
    max_recall_drop: float = 0.02
    triggers: Triggers = field(default_factory=Triggers)
    store: StoreConfig = field(default_factory=StoreConfig)
    keep_versions: int = 3
    chunk_bytes: int = 900_000
    flush_every: int = 64
    publish_pause: float = 0.0
    similar: SimilarParams | None = DEFAULT_SIMILAR
    """Each version's similar items to the similar-items topic (None: off)."""
    serve_metrics: bool = True

    def replace(self, **changes: Any) -> RefitterOptions:
        return dataclasses.replace(self, **changes)


def refit_params(settings: Settings, options: RefitterOptions | None = None) -> RefitParams:
    """The refit's hyper-parameters: ALS settings from `settings`, the gate's from `options`."""
    options = options or RefitterOptions()
    return RefitParams(model=options.model, factors=settings.factors,  # type: ignore[arg-type]
                       regularization=settings.regularization, alpha=settings.alpha,
                       iterations=settings.iterations, k=settings.k,
                       holdout_fraction=options.holdout,
                       max_recall_drop=options.max_recall_drop,
                       backend=settings.refit_backend,  # type: ignore[arg-type]
                       device=settings.refit_device,  # type: ignore[arg-type]
                       spark_master=settings.spark_master)


def assemble_refitter(settings: Settings, options: RefitterOptions | None = None) -> Refitter:
    """A refitter as `refold refit` runs it: `.run(once=...)`, `.stop()` (signals: see
    `Refitter.stop_on_signals`)."""
    options = options or RefitterOptions()
    refitter = Refitter(settings, refit_params(settings, options), options.store,
                        options.triggers, keep_versions=options.keep_versions,
                        chunk_bytes=options.chunk_bytes, flush_every=options.flush_every,
                        publish_pause=options.publish_pause, similar=options.similar)
    if options.serve_metrics:
        port = metrics.serve(settings, role="refitter", probes=refitter.probes)
        log.info("metrics: http://%s:%d/metrics", settings.metrics_host, port)
    return refitter


def settle_process(settings: Settings) -> None:
    """What a process whose life is one worker does once it is built: one BLAS thread
    (`one_blas_thread`), and its startup heap frozen (`consumers.heap`) unless the settings'
    `worker_gc` is "default"."""
    one_blas_thread()
    if settings.worker_gc == "freeze":
        freeze_startup_heap()


BLAS_THREADS_ENV = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")


def one_blas_thread() -> bool:
    """Hold the process's BLAS to one thread, unless the environment sets a thread count
    (`BLAS_THREADS_ENV`); returns whether it did. A worker's products and solves are one
    batch's users against the factors: a second BLAS thread did not shorten the batches, and
    its waiting cost 17-25% more CPU per event (the worker's batch without the broker, 100,000
    ml-100k events, alternated at load 3-8), CPU the broker and the other workers on the
    machine could use; through the broker (`refold bench pipeline`, quiet 2-core machine) one
    thread did 1.16x the events/s with the local stores and 1.28x with every user in memory.
    Where whole-catalog products dominate (a million items scored exactly per batch), set
    OPENBLAS_NUM_THREADS to give them more threads."""
    if any(os.environ.get(name) for name in BLAS_THREADS_ENV):
        return False
    threadpool_limits(1, user_api="blas")
    return True
