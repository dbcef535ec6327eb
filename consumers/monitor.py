"""The worker's eyes: feeds drift detectors and online quality from each batch, sets the metrics.

The fold-in worker calls `Monitor.on_batch` once per committed micro-batch with what it already
has (the decoded events in order, the lists it published, per-event latencies, the model
version) and the other `on_*` hooks on snapshots, rebalances and errors. Each positive event is
judged against its user's list from an earlier batch (test, then train), the hit feeds ADWIN, and
a drop in the hit rate (or another detector named in `refit_on`) calls `request_refit(reason)`,
at most once per `refit_cooldown` seconds.

>>> from refold.core.schemas import Event
>>> m = Monitor(k=2, clock=lambda: 0.0)
>>> ev = Event(event_id="e1", user_id="u1", item_id="a", event_type="purchase", event_time=1.0)
>>> m.on_batch([ev], [Published("u1", ["b", "c"], "collaborative", 1)]).judged
0
>>> ev2 = Event(event_id="e2", user_id="u1", item_id="b", event_type="click", event_time=2.0)
>>> r = m.on_batch([ev2], [Published("u1", ["c", "d"], "collaborative", 1)])
>>> r.judged, r.hits, m.quality.recall
(1, 1, 1.0)
"""

from __future__ import annotations

import bisect
import contextlib
import logging
import math
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from confluent_kafka import TopicPartition
from prometheus_client import Histogram

from consumers import feedback
from models.drift import DistributionDrift, HitRateDrift, MeanShiftDrift, SnapshotChurn
from models.online_quality import CategoriesOf, OnlineQuality
from models.weights import EventWeights
from refold.core import metrics as M
from refold.core.errors import ModelError

log = logging.getLogger(__name__)

DEFAULT_REFIT_ON = frozenset({"hit_rate", "foldin_residual", "item_popularity"})
SMALL = 64
"""Up to this many values `observe_many` bins in Python: numpy's fixed cost (tens of µs) is
more than a few bisections."""


@dataclass(frozen=True, slots=True)
class Published:
    """A recommendation list as the monitor needs it (`models.recommender.Recs` also fits)."""

    user_id: str
    items: Sequence[Any]
    source: str = "collaborative"
    model_version: int | None = None


@dataclass
class BatchReport:
    """What one batch changed: judged events, hits, and detections by detector name."""

    judged: int = 0
    hits: int = 0
    detections: list[str] = field(default_factory=list)
    refit_requested: str | None = None


def observe_many(histogram: Histogram, values: Sequence[float]) -> None:
    """`histogram.observe(v)` for each of `values` (a histogram without labels), one update per
    bucket: a batch's events share their latency, and an observation per event (a lock, a bucket
    scan) cost more than the rest of the monitor.

    >>> h = Histogram("demo_seconds", "demo", buckets=(0.1, 1.0), registry=None)
    >>> observe_many(h, [0.05, 0.5, 0.5, 7.0])
    >>> {s.labels.get("le"): s.value for s in h.collect()[0].samples if "le" in s.labels}
    {'0.1': 1.0, '1.0': 3.0, '+Inf': 4.0}
    >>> observe_many(h, [0.1, 1.0, 2.0] * 100)  # a larger batch: binned by numpy, alike
    >>> {s.labels.get("le"): s.value for s in h.collect()[0].samples if "le" in s.labels}
    {'0.1': 101.0, '1.0': 203.0, '+Inf': 304.0}
    """
    if not len(values):
        return
    bounds = getattr(histogram, "_upper_bounds", None)
    buckets, total = getattr(histogram, "_buckets", None), getattr(histogram, "_sum", None)
    if bounds is None or buckets is None or total is None:  # another client version
        for v in values:
            histogram.observe(v)
        return
    # observe() counts v in the first bucket whose bound is >= v: bisect/searchsorted, left
    if len(values) <= SMALL:
        counts: Iterable[tuple[int, int]] = Counter(
            bisect.bisect_left(bounds, v) for v in values).items()
        added = sum(values)
    else:
        found, n = np.unique(np.searchsorted(bounds, np.asarray(values, dtype=np.float64)),
                             return_counts=True)
        counts, added = zip(found.tolist(), n.tolist(), strict=True), np.sum(values)
    for b, count in counts:
        buckets[b].inc(count)
    total.inc(float(added))


def item_ids(items: Iterable[Any]) -> list[str]:
    """Ids of a list's items, whether given as ids or as objects with `item_id`."""
    return [getattr(it, "item_id", it) for it in items]


class Monitor:
    """Drift detectors and online quality of one worker, mirrored into `refold.core.metrics`."""

    def __init__(
        self,
        k: int = 20,
        *,
        weights: EventWeights | None = None,
        categories: CategoriesOf | None = None,
        catalog_size: Callable[[], int] | int | None = None,
        request_refit: Callable[[str], Any] | None = None,
        refit_on: Iterable[str] = DEFAULT_REFIT_ON,
        refit_cooldown: float = 600.0,
        window: int = 5000,
        max_users: int = 200_000,
        adwin_delta: float = 0.002,
        input_window: int = 5000,
        psi_threshold: float = 0.25,
        ph_threshold: float = 50.0,
        summary_interval: float = 0.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.weights = weights or EventWeights()
        self.catalog_size = catalog_size
        self.request_refit = request_refit
        self.refit_on = frozenset(refit_on)
        self.refit_cooldown = refit_cooldown
        self.clock = clock
        self.quality = OnlineQuality(k=k, window=window, categories=categories,
                                     max_users=max_users)
        self.hit_rate = HitRateDrift(delta=adwin_delta)
        self.ph_threshold = ph_threshold
        self.shifts = self._new_shifts()
        self.inputs = {
            "item_popularity": DistributionDrift(input_window, bins=50, threshold=psi_threshold),
            "event_type": DistributionDrift(input_window, bins=8, threshold=psi_threshold),
        }
        self.churn = SnapshotChurn()
        self.model_version: int | None = None
        self.refit_requests = 0
        self._last_request: float | None = None
        self.summary_interval = summary_interval
        """Seconds between two `summarise` calls from `on_batch` (0: every batch)."""
        self._summarised = -math.inf

    # -- the batch hook ----------------------------------------------------------------------
    def on_batch(
        self,
        events: Sequence[Any],
        published: Sequence[Any],
        *,
        model_version: int | None = None,
        latencies: Sequence[float] = (),
        freshness: Sequence[float] = (),
        dead_letters: Sequence[str] = (),
        batch_seconds: float | None = None,
        foldin_residual: float | None = None,
        user_vector_norm: float | None = None,
        users_in_state: int | None = None,
        guard: Mapping[str, int] | None = None,
        guard_users: int | None = None,
    ) -> BatchReport:
        """Account for one committed batch.

        `events` are the batch's valid events in order (`refold.core.schemas.Event` or alike);
        `published` the lists produced (`Published`, `Recs` or
        `refold.core.schemas.Recommendation`);
        `latencies` per event, from its batch's start to the commit that made its list visible;
        `freshness` per event, from its Kafka timestamp to that commit; `dead_letters` the short
        error class of each rejected message.
        """
        report = BatchReport()
        if model_version is not None:
            self.on_model_version(model_version)
        self._events(events, report)
        self._lists(published, report)
        for reason in dead_letters:
            M.DEAD_LETTERS.labels(reason=M.reason_label(reason, "dead_letter")).inc()
        observe_many(M.FOLDIN_LATENCY, latencies)
        observe_many(M.FRESHNESS, [max(0.0, seconds) for seconds in freshness])
        for name, value in (("foldin_residual", foldin_residual),
                            ("user_vector_norm", user_vector_norm)):
            if value is not None:
                (M.FOLDIN_RESIDUAL if name == "foldin_residual" else M.USER_VECTOR_NORM).set(value)
                if self.shifts[name].update(value):
                    self._detected(name, "change", report)
        now = time.monotonic()
        if now - self._summarised >= self.summary_interval:
            self._summarised = now
            self.summarise(report)
        M.BATCHES.inc()
        M.BATCH_EVENTS.observe(len(events) + len(dead_letters))
        if batch_seconds is not None:
            M.BATCH_DURATION.observe(batch_seconds)
        if users_in_state is not None:
            M.USERS_IN_STATE.set(users_in_state)
        for outcome, n in (guard or {}).items():
            if n:
                M.GUARD_EVENTS.labels(outcome=outcome).inc(n)
        if guard_users is not None:
            M.GUARD_USERS.set(guard_users)
        self._maybe_request_refit(report)
        return report

    def on_commit(self, batch: Any) -> BatchReport:
        """`FoldInWorker`'s on_commit hook: account for a `CommittedBatch`."""
        feedback.record(batch.feedback)
        spent = max(0.0, batch.committed - batch.started)
        return self.on_batch(
            batch.events, batch.published, model_version=batch.model_version,
            latencies=[spent] * len(batch.events),
            freshness=[batch.committed - ts for ts in batch.timestamps if ts > 0],
            dead_letters=batch.dead_letters, batch_seconds=spent,
            user_vector_norm=batch.user_vector_norm, foldin_residual=batch.foldin_residual,
            users_in_state=batch.users_in_state, guard=batch.guard, guard_users=batch.guard_users)

    def summarise(self, report: BatchReport | None = None) -> BatchReport:
        """Test the input distributions for drift and set the gauges of the detectors and the
        online quality. `on_batch` calls it at most every `summary_interval` seconds: the work
        does not grow with the batch (the Gini coefficient sorts every exposed item's count),
        so at small batches it would cost more than the batch's own accounting."""
        report = BatchReport() if report is None else report
        for name, detector in self.inputs.items():
            if detector.evaluate():
                self._detected(name, "change", report)
        self._export()
        return report

    def _new_shifts(self) -> dict[str, MeanShiftDrift]:
        return {name: MeanShiftDrift(threshold=self.ph_threshold)
                for name in ("foldin_residual", "user_vector_norm")}

    def _events(self, events: Sequence[Any], report: BatchReport) -> None:
        """Count, feed the input distributions, judge positives against the lists in force
        (the counters move once per batch: a labelled increment per event cost more than the
        judging)."""
        types: Counter[str] = Counter(ev.event_type for ev in events)
        self.inputs["event_type"].add_many([ev.event_type for ev in events])
        self.inputs["item_popularity"].add_many([ev.item_id for ev in events])
        for ev in events:
            if not self._positive(ev):
                continue
            rank = self.quality.judge(ev.user_id, ev.item_id)
            if rank is None:
                continue
            hit = rank >= 0
            report.judged += 1
            report.hits += hit
            if self.hit_rate.update(hit):
                self._detected("hit_rate", "down" if self.hit_rate.direction < 0 else "up",
                               report)
        for event_type, n in types.items():
            M.EVENTS_CONSUMED.labels(event_type=event_type).inc(n)
        M.ONLINE_EVALUATED.inc(report.judged)
        M.ONLINE_HITS.inc(report.hits)

    def _positive(self, ev: Any) -> bool:
        try:
            w = self.weights.weight(ev.event_type, getattr(ev, "value", None),
                                    getattr(ev, "weight", None))
        except ModelError:
            return False
        return w > 0

    def _lists(self, published: Sequence[Any], report: BatchReport) -> None:
        for rec in published:
            items = item_ids(rec.items)
            self.quality.record(rec.user_id, items, rec.source)
            M.RECOMMENDATIONS.labels(source=rec.source).inc()
            version = rec.model_version
            if version is not None and self.churn.observe(rec.user_id, version, items):
                self._detected("snapshot_churn", "change", report)

    def _detected(self, detector: str, direction: str, report: BatchReport) -> None:
        M.DRIFT_DETECTIONS.labels(detector=detector, direction=direction).inc()
        report.detections.append(detector if direction != "up" else f"{detector}_up")
        log.info("drift detected by %s (%s)", detector, direction)

    def _maybe_request_refit(self, report: BatchReport) -> None:
        reasons = [d for d in report.detections if d in self.refit_on]
        if not reasons or self.request_refit is None:
            return
        now = self.clock()
        if self._last_request is not None and now - self._last_request < self.refit_cooldown:
            return
        self._last_request = now
        self.refit_requests += 1
        report.refit_requested = reasons[0]
        M.REFIT_REQUESTS.labels(reason=reasons[0]).inc()
        self.request_refit(reasons[0])

    def _export(self) -> None:
        """Copy the detectors' and the quality's current values into the gauges."""
        q = self.quality
        if self.catalog_size is not None:
            q.catalog_size = self.catalog_size() if callable(self.catalog_size) else \
                self.catalog_size
        for gauge, value in ((M.ONLINE_HIT_RATE, q.hit_rate), (M.ONLINE_RECALL, q.recall),
                             (M.ONLINE_NDCG, q.ndcg), (M.CATALOG_COVERAGE, q.coverage),
                             (M.DIVERSITY, q.diversity), (M.GINI, q.gini),
                             (M.COLD_START, q.cold_start_share)):
            gauge.set(value)
        stat = M.DRIFT_STATISTIC
        stat.labels(detector="hit_rate").set(self.hit_rate.statistic)
        M.ADWIN_WIDTH.set(self.hit_rate.width)
        for name, detector in self.shifts.items():
            stat.labels(detector=name).set(detector.statistic)
        for name, detector in self.inputs.items():
            stat.labels(detector=f"{name}_psi").set(detector.psi)
            stat.labels(detector=f"{name}_js").set(detector.js)
        stat.labels(detector="snapshot_churn").set(self.churn.statistic)

    # -- other hooks -------------------------------------------------------------------------
    def on_model_version(self, version: int) -> None:
        """A new model version serves from now on: input drift is measured against it afresh,
        and the series of the model's own space (user-vector norms, residuals) start anew."""
        if version == self.model_version:
            return
        if self.model_version is not None:
            self.shifts = self._new_shifts()
        self.model_version = version
        M.MODEL_VERSION.set(version)
        for detector in self.inputs.values():
            detector.rebase()

    def on_snapshot(self, version: int, created_at: float | None, items: int | None = None
                    ) -> None:
        """A snapshot was swapped in; `created_at` is when the refitter built it (if known)."""
        M.SNAPSHOT_LOADS.labels(outcome="loaded").inc()
        M.SNAPSHOT_LOADED.set(self.clock())
        if created_at is not None:
            M.SNAPSHOT_CREATED.set(created_at)
        if items is not None:
            M.MODEL_ITEMS.set(items)
        self.on_model_version(version)

    def on_snapshot_rejected(self, reason: str = "rejected") -> None:
        M.SNAPSHOT_LOADS.labels(outcome=M.reason_label(reason, "snapshot")).inc()

    def on_assigned(self, partitions: Sequence[TopicPartition]) -> None:
        M.REBALANCES.labels(kind="assign").inc()
        for tp in partitions:
            M.ASSIGNED_PARTITIONS.labels(topic=tp.topic).inc()

    def on_revoked(self, partitions: Sequence[TopicPartition], group: str = "",
                   lost: bool = False) -> None:
        """Partitions went away: count it, and drop their lag series (another worker has them)."""
        M.REBALANCES.labels(kind="lost" if lost else "revoke").inc()
        for tp in partitions:
            M.ASSIGNED_PARTITIONS.labels(topic=tp.topic).dec()
            with contextlib.suppress(KeyError):  # no lag was recorded for it yet
                M.CONSUMER_LAG.remove(group, tp.topic, str(tp.partition))

    def on_error(self, kind: str) -> None:
        M.ERRORS.labels(kind=M.reason_label(kind, "error")).inc()
