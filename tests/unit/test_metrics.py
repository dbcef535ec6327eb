"""Metric declarations, the /metrics endpoint, and the monitor that sets them.

Values are read through a fresh `CollectorRegistry` holding only refold's collectors; metrics are
process-wide, so counters are compared before and after.
"""

from __future__ import annotations

import re
import urllib.request

import pytest
from confluent_kafka import TopicPartition
from prometheus_client import CollectorRegistry, Histogram

from consumers.instrument import (
    Monitored,
    record_lag,
    record_published,
    record_refit,
    record_refitter_read,
)
from consumers.monitor import Monitor, Published
from refold.core import metrics as M
from refold.core.config import Settings
from refold.core.schemas import Event


@pytest.fixture
def reg() -> CollectorRegistry:
    return M.register(CollectorRegistry())


def value(reg: CollectorRegistry, name: str, **labels: str) -> float:
    return reg.get_sample_value(name, labels) or 0.0


def ev(i: int, user: str, item: str, kind: str = "click") -> Event:
    return Event(event_id=f"e{i}", user_id=user, item_id=item, event_type=kind,
                 event_time=1000.0 + i)


def test_every_metric_is_named_documented_and_free_of_id_labels(reg):
    M.init_labels()  # histograms with labels have buckets once a child exists
    names = set()
    for collector in M.ALL:
        for family in collector.describe():
            assert family.name.startswith("refold_"), family.name
            assert family.documentation, family.name
            names.add(family.name)
        labels = getattr(collector, "_labelnames", ())
        assert not {"user", "user_id", "item", "item_id"} & set(labels), collector
        if isinstance(collector, Histogram):
            bounds = [float(s.labels["le"]) for m in collector.collect() for s in m.samples
                      if s.name.endswith("_bucket")]
            assert sorted(set(bounds))[-2] > 1, "buckets should reach the workload's tail"
    assert len(names) == len(M.ALL)
    text = "\n".join(f"{m.name} {m.type}" for m in reg.collect())
    assert "refold_events_consumed counter" in text  # exposed as refold_events_consumed_total


def test_reason_labels_are_bounded():
    assert M.reason_label("Not JSON: at byte 3") == "not_json"
    values = {M.reason_label(f"reason {i}", family="test") for i in range(100)}
    assert "other" in values and len(values) <= 33


def test_serve_picks_a_free_port_and_exposes_refold_metrics():
    port = M.serve(Settings(metrics_port=0), role="test")
    body = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    assert port > 0
    assert 'refold_build_info{component="test"' in body
    assert "# HELP refold_consumer_lag_messages" in body


def test_each_role_exposes_its_own_metrics_with_known_labels_at_zero():
    registry = CollectorRegistry()
    port = M.serve(Settings(metrics_port=0), role="refitter", registry=registry)
    body = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    # the series exists from the start (its value is process-wide: other tests may have counted)
    assert re.search(r'^refold_refits_total\{outcome="refused"\} \d', body, re.M)
    assert "refold_online_hit_ratio" not in body and "refold_events_consumed" not in body
    assert registry.get_sample_value("refold_refit_requests_total", {"reason": "hit_rate"}) \
        is not None


def test_monitor_counts_judges_and_exports(reg):
    before = {n: value(reg, n) for n in ("refold_online_evaluated_events_total",
                                          "refold_online_hits_total", "refold_batches_total")}
    clicks = value(reg, "refold_events_consumed_total", event_type="click")
    dead = value(reg, "refold_dead_letters_total", reason="not_json")
    lat = value(reg, "refold_foldin_latency_seconds_count")
    m = Monitor(k=2, catalog_size=4, categories={"a": ["x"], "b": ["y"]}, clock=lambda: 0.0)
    m.on_batch([ev(0, "u1", "a"), ev(1, "u2", "b", "dismiss")],
               [Published("u1", ["a", "b"], "collaborative", 3),
                Published("u2", ["c"], "popular", 3)],
               model_version=3, latencies=[0.01, 0.02], dead_letters=["not_json"],
               batch_seconds=0.05, users_in_state=2)
    r = m.on_batch([ev(2, "u1", "b"), ev(3, "u1", "b", "add_to_cart"), ev(4, "u2", "z")], [])
    assert (r.judged, r.hits) == (2, 1)  # u1's second b is the same item against the same list
    assert value(reg, "refold_online_evaluated_events_total") - before[
        "refold_online_evaluated_events_total"] == 2
    assert value(reg, "refold_online_hits_total") - before["refold_online_hits_total"] == 1
    assert value(reg, "refold_batches_total") - before["refold_batches_total"] == 2
    assert value(reg, "refold_events_consumed_total", event_type="click") - clicks == 3
    assert value(reg, "refold_dead_letters_total", reason="not_json") - dead == 1
    assert value(reg, "refold_foldin_latency_seconds_count") - lat == 2
    assert value(reg, "refold_model_version") == 3
    assert value(reg, "refold_users_in_state") == 2
    assert value(reg, "refold_online_recall_ratio") == pytest.approx(0.5)
    assert value(reg, "refold_catalog_coverage_ratio") == pytest.approx(3 / 4)
    assert value(reg, "refold_cold_start_ratio") == pytest.approx(0.5)
    assert value(reg, "refold_recommendation_categories") == pytest.approx((2 + 0) / 2)
    assert value(reg, "refold_drift_statistic", detector="hit_rate") == pytest.approx(0.5)
    assert reg.get_sample_value("refold_drift_statistic", {"detector": "event_type_psi"}) == 0


def test_summaries_wait_for_their_interval_while_counters_move_every_batch(reg):
    m = Monitor(k=2, catalog_size=4, summary_interval=3600.0, clock=lambda: 0.0)
    batches = value(reg, "refold_batches_total")
    m.on_batch([ev(0, "u1", "a")], [Published("u1", ["a", "b"], "collaborative", 1)])
    assert value(reg, "refold_catalog_coverage_ratio") == pytest.approx(2 / 4)  # the first: now
    m.on_batch([ev(1, "u2", "a")], [Published("u2", ["c", "d"], "collaborative", 1)])
    assert value(reg, "refold_batches_total") - batches == 2
    assert value(reg, "refold_catalog_coverage_ratio") == pytest.approx(2 / 4)  # not yet
    m.summarise()
    assert value(reg, "refold_catalog_coverage_ratio") == pytest.approx(4 / 4)


def test_input_drift_found_by_a_later_summary_still_requests_a_refit(reg):
    asked: list[str] = []
    m = Monitor(request_refit=asked.append, refit_on={"event_type"}, input_window=50,
                summary_interval=0.0, clock=lambda: 0.0)
    m.on_batch([ev(i, f"u{i}", "a") for i in range(100)], [])
    m.summary_interval = 3600.0
    m.on_batch([ev(i, f"u{i}", "a", "dismiss") for i in range(100, 150)], [])
    assert asked == []  # the shift is in the window, not yet tested
    m.summary_interval = 0.0
    assert m.on_batch([], []).detections == ["event_type"] and asked == ["event_type"]


def test_a_hit_rate_drop_requests_one_refit_per_cooldown(reg):
    now = [0.0]
    asked: list[str] = []
    m = Monitor(k=1, request_refit=asked.append, refit_cooldown=60.0, clock=lambda: now[0])
    drops = value(reg, "refold_drift_detections_total", detector="hit_rate", direction="down")
    requests = value(reg, "refold_refit_requests_total", reason="hit_rate")
    i = 0
    for phase_hits in (True, False, True, False):
        for _ in range(40):
            events, lists = [], []
            for u in range(20):
                item = "good" if phase_hits or u % 10 == 0 else f"other{i}"
                events.append(ev(i, f"u{u}", item))
                lists.append(Published(f"u{u}", ["good"], "collaborative", 1))
                i += 1
            m.on_batch(events, lists)
        now[0] += 30.0
    assert value(reg, "refold_drift_detections_total", detector="hit_rate",
                 direction="down") - drops >= 2
    assert asked and set(asked) == {"hit_rate"}
    assert len(asked) == m.refit_requests
    assert value(reg, "refold_refit_requests_total", reason="hit_rate") - requests == len(asked)
    assert len(asked) <= 2  # 120 s of drops with a 60 s cooldown


def test_snapshots_rebalances_and_errors(reg):
    m = Monitor(clock=lambda: 1234.0)
    loads = value(reg, "refold_snapshot_loads_total", outcome="loaded")
    m.on_snapshot(7, created_at=1000.0, items=50)
    assert value(reg, "refold_snapshot_loads_total", outcome="loaded") - loads == 1
    assert value(reg, "refold_snapshot_created_timestamp_seconds") == 1000.0
    assert value(reg, "refold_snapshot_loaded_timestamp_seconds") == 1234.0
    assert value(reg, "refold_model_version") == 7 and value(reg, "refold_model_items") == 50
    parts = [TopicPartition("t", 0), TopicPartition("t", 1)]
    assigned = value(reg, "refold_assigned_partitions", topic="t")
    m.on_assigned(parts)
    M.CONSUMER_LAG.labels(group="g", topic="t", partition="1").set(5)
    m.on_revoked(parts[1:], "g")
    assert value(reg, "refold_assigned_partitions", topic="t") - assigned == 1
    assert reg.get_sample_value("refold_consumer_lag_messages",
                                {"group": "g", "topic": "t", "partition": "1"}) is None
    errors = value(reg, "refold_errors_total", kind="kafka")
    m.on_error("kafka")
    assert value(reg, "refold_errors_total", kind="kafka") - errors == 1


class FakeConsumer:
    def __init__(self, positions: dict[int, int], highs: dict[int, int]) -> None:
        self.positions, self.highs = positions, highs

    def assignment(self):
        return [TopicPartition("ev", p) for p in self.positions]

    def position(self, tps):
        return [TopicPartition(tp.topic, tp.partition, self.positions[tp.partition]) for tp in tps]

    def get_watermark_offsets(self, tp, timeout=None, cached=False):
        high = self.highs[tp.partition]
        return (0, -1001) if cached and high > 100 else (0, high)


def test_record_lag_uses_positions_and_watermarks(reg):
    lags = record_lag(FakeConsumer({0: 10, 1: 5, 2: -1001}, {0: 15, 1: 500, 2: 9}), "g")
    assert lags == {("ev", 0): 5, ("ev", 1): 495}  # partition 2 has no position yet
    assert value(reg, "refold_consumer_lag_messages", group="g", topic="ev", partition="1") == 495


def test_record_refit(reg):
    accepted = value(reg, "refold_refits_total", outcome="accepted")
    n = value(reg, "refold_refit_duration_seconds_count")
    record_refit(12.5, "accepted", training_events=1000, scores={"recall_at_20": (0.3, 0.25)})
    assert value(reg, "refold_refits_total", outcome="accepted") - accepted == 1
    assert value(reg, "refold_refit_duration_seconds_count") - n == 1
    assert value(reg, "refold_refit_holdout_score", metric="recall_at_20", model="live") == 0.25
    assert value(reg, "refold_refit_training_events") == 1000
    record_published(5, 1234.0, 2048)
    assert value(reg, "refold_snapshot_bytes") == 2048 and value(reg, "refold_model_version") == 5
    record_refitter_read({0: 10, 1: 5})
    assert value(reg, "refold_refitter_events_read") == 15


class FakeRecommender:
    model_version: int | None = None


class FakeWorker:
    def __init__(self) -> None:
        self.recommender = FakeRecommender()
        self.calls: list[str] = []
        self.on_commit = None
        self.pending = None

    def handle(self, messages, out):
        self.calls.append("handle")

    def promote(self):
        self.calls.append("promote")

    def rollback(self):
        self.calls.append("rollback")

    def between_batches(self):
        if self.pending is not None:
            self.recommender.model_version, self.pending = self.pending, None

    def on_partitions_assigned(self, partitions):
        self.calls.append("assigned")

    def on_partitions_revoked(self, partitions):
        self.calls.append("revoked")

    def swap_model(self, factors):
        self.pending = factors

    def summary(self, seconds):
        return "summary"


class FakeSnapshot:
    version, created_at, item_ids = 9, 4321.0, ("a", "b", "c")

    def item_factors(self):
        return 9


def test_monitored_worker_reports_swaps_aborts_rebalances_and_lag(reg):
    worker, now = FakeWorker(), [0.0]
    monitored = Monitored(worker, Monitor(clock=lambda: 5000.0), "grp", lag_interval=5.0,
                          clock=lambda: now[0])
    assert worker.on_commit == monitored.monitor.on_commit
    consumer = FakeConsumer({0: 1}, {0: 4})
    monitored.consumer = lambda: consumer
    aborts = value(reg, "refold_errors_total", kind="abort")
    monitored.handle([], None)
    monitored.rollback()
    monitored.on_partitions_assigned([TopicPartition("ev", 0)])
    monitored.swap_snapshot(FakeSnapshot())
    monitored.between_batches()
    assert worker.calls == ["handle", "rollback", "assigned"]
    assert value(reg, "refold_errors_total", kind="abort") - aborts == 1
    assert value(reg, "refold_model_version") == 9 and value(reg, "refold_model_items") == 3
    assert value(reg, "refold_snapshot_created_timestamp_seconds") == 4321.0
    assert value(reg, "refold_consumer_lag_messages", group="grp", topic="ev", partition="0") == 3
    consumer.positions[0] = 4
    now[0] = 1.0
    monitored.between_batches()  # within lag_interval: not re-read
    assert value(reg, "refold_consumer_lag_messages", group="grp", topic="ev", partition="0") == 3
    assert monitored.worker.summary(1.0) == "summary"


def test_monitor_takes_the_workers_committed_batch(reg):
    from consumers.foldin_worker import CommittedBatch
    from models.recommender import Recs

    fresh = value(reg, "refold_event_to_recommendation_seconds_count")
    dead = value(reg, "refold_dead_letters_total", reason="oversize")
    batch = CommittedBatch(events=[ev(0, "u1", "a")],
                           published=[Recs("u1", ["b"], [1.0], "collaborative", 4)],
                           dead_letters=["oversize"], timestamps=[99.0], started=100.0,
                           committed=100.25, model_version=4, users_in_state=1,
                           user_vector_norm=1.5)
    Monitor(clock=lambda: 0.0).on_commit(batch)
    assert value(reg, "refold_user_vector_norm") == 1.5
    assert value(reg, "refold_event_to_recommendation_seconds_count") - fresh == 1
    assert value(reg, "refold_dead_letters_total", reason="oversize") - dead == 1
    assert value(reg, "refold_model_version") == 4


def test_user_vector_norms_feed_page_hinkley_which_starts_anew_with_a_model(reg):
    asked: list[str] = []
    m = Monitor(clock=lambda: 0.0, request_refit=asked.append, refit_on={"user_vector_norm"},
                ph_threshold=5.0)
    detections = [m.on_batch([], [], model_version=1, user_vector_norm=v).detections
                  for v in [1.0] * 40 + [3.0] * 20]
    assert ["user_vector_norm"] in detections and asked == ["user_vector_norm"]
    assert value(reg, "refold_user_vector_norm") == 3.0
    m.on_batch([], [], model_version=2, user_vector_norm=3.0)  # another model's scale
    assert m.shifts["user_vector_norm"].n == 1 and m.shifts["user_vector_norm"].detections == 0
