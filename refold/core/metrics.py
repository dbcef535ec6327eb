"""Every Prometheus metric of refold, declared once, and the /metrics endpoint.

Names carry the `refold_` prefix and base units (`_seconds`, `_bytes`, `_ratio`); counters end in
`_total`. Labels take a small, fixed set of values (event type, topic partition, detector,
outcome): never a user or an item id. Prometheus adds `job` and `instance`, which tell the
processes apart, so no label here names a process.

Metrics are declared unregistered; `serve(settings, role)` adds those of the process's role to the
default registry. Tests read values through a fresh registry: `register(CollectorRegistry())`
adds the module's collectors to it, without the process and platform collectors.

>>> from prometheus_client import CollectorRegistry
>>> reg = register(CollectorRegistry())
>>> before = reg.get_sample_value("refold_events_consumed_total", {"event_type": "click"}) or 0
>>> EVENTS_CONSUMED.labels(event_type="click").inc()
>>> reg.get_sample_value("refold_events_consumed_total", {"event_type": "click"}) - before
1.0
"""

from __future__ import annotations

import contextlib
import logging
import re

from prometheus_client import (
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    Info,
)

from refold import __version__
from refold.core.config import Settings
from refold.core.metrics_serve import (  # refold serve's own, declared there
    SERVE_EVICTED,
    SERVE_GC_PAUSE,
    SERVE_ITEMS,
    SERVE_LATENCY,
    SERVE_LISTS_BYTES,
    SERVE_PENDING,
    SERVE_RECORDS,
    SERVE_REJECTED,
    SERVE_REQUESTS,
    SERVE_ROUTES,
    SERVE_USERS,
)
from refold.core.probes import Probes, serve_http
from refold.core.schemas import EVENT_TYPES

log = logging.getLogger(__name__)

_NO_REGISTRY = {"registry": None}  # declared unregistered; `register` adds them (below)

# -- pipeline: what came in, what went out, how fast -------------------------------------------
EVENTS_CONSUMED = Counter(
    "refold_events_consumed", "Events decoded and handled by a fold-in worker.",
    ["event_type"], **_NO_REGISTRY)
DEAD_LETTERS = Counter(
    "refold_dead_letters", "Messages sent to the dead-letter topic, by short reason code.",
    ["reason"], **_NO_REGISTRY)
RECOMMENDATIONS = Counter(
    "refold_recommendations_published", "Recommendation lists published, by source.",
    ["source"], **_NO_REGISTRY)
BATCHES = Counter("refold_batches", "Micro-batches handled.", **_NO_REGISTRY)
BATCH_EVENTS = Histogram(
    "refold_batch_events", "Events per micro-batch.",
    buckets=(1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000), **_NO_REGISTRY)
BATCH_DURATION = Histogram(
    "refold_batch_duration_seconds",
    "Wall time of one micro-batch, from its handling to its commit.",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
    **_NO_REGISTRY)
FOLDIN_LATENCY = Histogram(
    "refold_foldin_latency_seconds",
    "Per event: from the start of its micro-batch to the commit that publishes its list.",
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
    **_NO_REGISTRY)
FRESHNESS = Histogram(
    "refold_event_to_recommendation_seconds",
    "Per event: from its Kafka timestamp (when it was produced) to the commit of its list.",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600),
    **_NO_REGISTRY)
CONSUMER_LAG = Gauge(
    "refold_consumer_lag_messages", "High watermark minus the consumer's position, by group.",
    ["group", "topic", "partition"], **_NO_REGISTRY)
ASSIGNED_PARTITIONS = Gauge(
    "refold_assigned_partitions", "Partitions currently assigned to this consumer.",
    ["topic"], **_NO_REGISTRY)
REBALANCES = Counter(
    "refold_rebalances", "Partition assignment changes (assign, revoke, lost).",
    ["kind"], **_NO_REGISTRY)
ERRORS = Counter(
    "refold_errors", "Errors handled without stopping the process, by kind.",
    ["kind"], **_NO_REGISTRY)
USERS_IN_STATE = Gauge(
    "refold_users_in_state", "Users whose state this worker holds in memory.", **_NO_REGISTRY)
DUPLICATES = Counter(
    "refold_duplicate_events", "Events skipped because their id was applied already.",
    **_NO_REGISTRY)

# -- the local state stores --------------------------------------------------------------------
STATE_RESTORE_RECORDS = Counter(
    "refold_state_restore_records", "Changelog records applied to a local store by restores.",
    ["partition"], **_NO_REGISTRY)
STATE_RESTORE_REMAINING = Gauge(
    "refold_state_restore_remaining_records",
    "Changelog records a partition's restore has still to read (0: restored).",
    ["partition"], **_NO_REGISTRY)
STATE_RESTORES = Histogram(
    "refold_state_restore_duration_seconds",
    "Wall time from an assignment to the last of its partitions restored.",
    buckets=(0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600), **_NO_REGISTRY)
STATE_CACHE_LOOKUPS = Counter(
    "refold_state_cache_lookups", "Users looked up in the bounded cache, by result (a miss "
    "reads the user from its store).", ["result"], **_NO_REGISTRY)
STATE_STORE_MEMORY = Gauge(
    "refold_state_store_memory_bytes",
    "Block cache and memtables of the local stores (bounded by state_cache_mb).", **_NO_REGISTRY)
REPUBLISHED = Counter(
    "refold_lists_republished", "Lists published again, with no new event, because the catalog "
    "deactivated an item of the user's last list.", **_NO_REGISTRY)
EXPIRED_USERS = Counter(
    "refold_expired_users", "Users tombstoned because inactive beyond user_expiry_seconds.",
    **_NO_REGISTRY)
STATE_USERS_RESET = Counter(
    "refold_state_users_reset", "Users whose stored state made handling their message raise, "
    "reset to an empty state (the record goes to the dead letters as bad_state).",
    **_NO_REGISTRY)

GUARD_EVENTS = Counter(
    "refold_guard_events", "Positive events the bot and shill guard kept out of the shared "
    "trending and co-visit counts, by outcome: automated (the user looks automated), capped (a "
    "repeated vote, or the rate cap), withdrawn (a newly flagged user's earlier events).",
    ["outcome"], **_NO_REGISTRY)
GUARD_USERS = Gauge(
    "refold_guard_automated_users",
    "Users this worker judged automated within the last hour of event time.", **_NO_REGISTRY)

# -- the model and its snapshots ---------------------------------------------------------------
MODEL_VERSION = Gauge(
    "refold_model_version", "Version of the item-factor snapshot in use (0: none yet).",
    **_NO_REGISTRY)
MODEL_ITEMS = Gauge(
    "refold_model_items", "Items with a vector in the snapshot in use.", **_NO_REGISTRY)
SNAPSHOT_CREATED = Gauge(
    "refold_snapshot_created_timestamp_seconds",
    "Unix time at which the snapshot in use was created by the refitter.", **_NO_REGISTRY)
SNAPSHOT_LOADED = Gauge(
    "refold_snapshot_loaded_timestamp_seconds",
    "Unix time at which the snapshot in use was loaded by this process.", **_NO_REGISTRY)
SNAPSHOT_LOADS = Counter(
    "refold_snapshot_loads", "Snapshots read from the snapshots topic, by outcome.",
    ["outcome"], **_NO_REGISTRY)
USER_VECTOR_NORM = Gauge(
    "refold_user_vector_norm", "Mean L2 norm of the user vectors folded in, last batch.",
    **_NO_REGISTRY)
FOLDIN_RESIDUAL = Gauge(
    "refold_foldin_residual", "Mean fold-in residual of the last batch (as the worker defines it).",
    **_NO_REGISTRY)

# -- the refitter ------------------------------------------------------------------------------
REFIT_DURATION = Histogram(
    "refold_refit_duration_seconds", "Wall time of one refit, read to decision.",
    buckets=(0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1200, 1800, 3600), **_NO_REGISTRY)
REFITS = Counter(
    "refold_refits", "Refits finished, by outcome: accepted (published), refused, failed.",
    ["outcome"], **_NO_REGISTRY)
REFIT_REQUESTS = Counter(
    "refold_refit_requests", "Refits requested, by reason (a drift detector, schedule, manual).",
    ["reason"], **_NO_REGISTRY)
REFIT_EVENTS = Gauge(
    "refold_refit_training_events", "Interactions in the last refit's training set.",
    **_NO_REGISTRY)
REFIT_SCORE = Gauge(
    "refold_refit_holdout_score", "Hold-out quality of the last refit, candidate next to live.",
    ["metric", "model"], **_NO_REGISTRY)
SNAPSHOTS_PUBLISHED = Counter(
    "refold_snapshots_published", "Snapshots written to the snapshots topic.", **_NO_REGISTRY)
SNAPSHOT_BYTES = Gauge(
    "refold_snapshot_bytes", "Size of the last snapshot written, before chunking.",
    **_NO_REGISTRY)
LAST_REFIT = Gauge(
    "refold_last_refit_timestamp_seconds", "Unix time at which the last refit finished.",
    **_NO_REGISTRY)
REFITTER_EVENTS_READ = Gauge(
    "refold_refitter_events_read", "Messages the refitter has read from the events topic (the "
    "sum of its next offsets), moved once any refit they made due has finished.",
    **_NO_REGISTRY)

# -- prequential quality, computed from the stream ---------------------------------------------
ONLINE_EVALUATED = Counter(
    "refold_online_evaluated_events", "Positive events judged against their user's list in force.",
    **_NO_REGISTRY)
ONLINE_HITS = Counter(
    "refold_online_hits", "Judged positive events whose item was in the user's top-K.",
    **_NO_REGISTRY)
ONLINE_HIT_RATE = Gauge(
    "refold_online_hit_ratio",
    "Hit rate@K over the window of judged events: each user's hit share, averaged.",
    **_NO_REGISTRY)
ONLINE_RECALL = Gauge(
    "refold_online_recall_ratio",
    "Recall@K over the window: share of judged events whose item was listed.",
    **_NO_REGISTRY)
ONLINE_NDCG = Gauge(
    "refold_online_ndcg_ratio", "NDCG@K (one relevant item per event) over the window.",
    **_NO_REGISTRY)
CATALOG_COVERAGE = Gauge(
    "refold_catalog_coverage_ratio", "Share of the catalog appearing in recent lists.",
    **_NO_REGISTRY)
DIVERSITY = Gauge(
    "refold_recommendation_categories", "Mean distinct categories in the top 10 of recent lists.",
    **_NO_REGISTRY)
GINI = Gauge(
    "refold_recommendation_gini_ratio",
    "Gini coefficient of item exposure in recent lists (0 even, 1 one item).", **_NO_REGISTRY)
COLD_START = Gauge(
    "refold_cold_start_ratio", "Share of recent lists not from the collaborative model.",
    **_NO_REGISTRY)

# -- drift -------------------------------------------------------------------------------------
DRIFT_STATISTIC = Gauge(
    "refold_drift_statistic",
    "Current statistic of each drift detector (ADWIN: windowed hit rate; Page-Hinkley: "
    "cumulative deviation; psi/js: divergence; churn: 1 - top-K overlap).",
    ["detector"], **_NO_REGISTRY)
DRIFT_DETECTIONS = Counter(
    "refold_drift_detections",
    "Drift detections, by detector and direction (down, up, or change when it has none).",
    ["detector", "direction"], **_NO_REGISTRY)
ADWIN_WIDTH = Gauge(
    "refold_drift_adwin_width_events", "Events in ADWIN's current hit-rate window.",
    **_NO_REGISTRY)

# -- closing the loop: what users were shown, and what they did with it -------------------------
SLOTS = ("1", "2", "3", "4-5", "6-10", "11+")
"""Positions of shown items, bucketed: CTR@1 is slot 1, CTR@3 slots 1-3, CTR@K all."""
IMPRESSIONS = Counter(
    "refold_impressions", "Impressions read (a list a service showed), by list source and "
    "exploration policy.", ["source", "policy"], **_NO_REGISTRY)
IMPRESSION_SLOTS = Counter(
    "refold_impression_slots", "Items shown in impressions, by list source, position (slot) and "
    "whether exploration put the item there.", ["source", "slot", "explored"], **_NO_REGISTRY)
IMPRESSION_CLICKS = Counter(
    "refold_impression_clicks", "Shown items clicked within the attribution window (the first "
    "click of each shown item).", ["source", "slot", "explored"], **_NO_REGISTRY)
IMPRESSION_PURCHASES = Counter(
    "refold_impression_purchases", "Shown items bought within the attribution window (the "
    "first purchase of each shown item).", ["source", "slot", "explored"], **_NO_REGISTRY)
PURCHASES = Counter(
    "refold_purchases", "Purchases, by whether they followed a shown list (credited to one, or "
    "naming its rec_id).", ["attributed"], **_NO_REGISTRY)
TIME_TO_FIRST_CONVERSION = Histogram(
    "refold_time_to_first_conversion_seconds", "New users: from their first event to their "
    "first purchase.", buckets=(60, 300, 900, 1800, 3600, 3 * 3600, 6 * 3600, 12 * 3600, 86400,
                                3 * 86400, 7 * 86400, 30 * 86400), **_NO_REGISTRY)
LIST_IMPRESSIONS = Histogram(
    "refold_list_impressions", "How often each list was shown before a new one replaced it (0: "
    "never shown).", buckets=(0, 1, 2, 3, 5, 10, 20, 50), **_NO_REGISTRY)
EXPOSURE_DEMOTED = Counter(
    "refold_exposure_demoted_lists", "Lists in which exposure feedback demoted an item the user "
    "had been shown too often without acting on it.", **_NO_REGISTRY)

BRIDGE_RECORDS = Counter(
    "refold_bridge_records", "Source records the bridge committed, by outcome: events produced, "
    "dead letters, or skipped on purpose.", ["outcome"], **_NO_REGISTRY)

BUILD = Info("refold_build", "Version and component (consumer, refitter) of this process.",
             **_NO_REGISTRY)

ALL = tuple(v for v in list(globals().values())
            if isinstance(v, Counter | Gauge | Histogram | Info))

_REFIT_ONLY = (REFIT_DURATION, REFITS, REFIT_EVENTS, REFIT_SCORE, SNAPSHOTS_PUBLISHED,
               SNAPSHOT_BYTES, LAST_REFIT, REFITTER_EVENTS_READ)
REFITTER = (*_REFIT_ONLY, REFIT_REQUESTS, MODEL_VERSION, SNAPSHOT_CREATED, CONSUMER_LAG, ERRORS,
            BUILD)
_SERVE_ONLY = (SERVE_REQUESTS, SERVE_LATENCY, SERVE_USERS, SERVE_LISTS_BYTES, SERVE_ITEMS,
               SERVE_PENDING, SERVE_EVICTED, SERVE_RECORDS, SERVE_REJECTED, SERVE_GC_PAUSE)
SERVE = (*_SERVE_ONLY, BUILD)
BRIDGE = (BRIDGE_RECORDS, DEAD_LETTERS, CONSUMER_LAG, ERRORS, BUILD)
CONSUMER = tuple(c for c in ALL if c not in (*_REFIT_ONLY, *_SERVE_ONLY, BRIDGE_RECORDS))
ROLES = {"consumer": CONSUMER, "refitter": REFITTER, "serve": SERVE, "bridge": BRIDGE}
"""What each process exposes: a refitter has no hit rate, so it exports none (not a zero)."""

# Label values known in advance start at zero, so a dashboard shows 0 rather than "No data" and
# `increase()` sees the first event (see `init_labels`).
KNOWN_LABELS: dict[Counter | Histogram, list[dict[str, str]]] = {
    EVENTS_CONSUMED: [{"event_type": t} for t in EVENT_TYPES],
    RECOMMENDATIONS: [{"source": s} for s in ("collaborative", "content", "popular")],
    GUARD_EVENTS: [{"outcome": o} for o in ("automated", "capped", "withdrawn")],
    DEAD_LETTERS: [{"reason": r} for r in (
        "not_json", "not_utf8", "null_value", "unknown_type", "empty_id", "schema", "oversize",
        "future_time", "key_mismatch", "model", "too_deep", "out_of_range", "exception",
        "missing_field", "bad_time", "not_object", "bad_state")],
    BRIDGE_RECORDS: [{"outcome": o} for o in ("events", "dead_letters", "skipped")],
    STATE_CACHE_LOOKUPS: [{"result": r} for r in ("hit", "miss")],
    REBALANCES: [{"kind": k} for k in ("assign", "revoke", "lost")],
    ERRORS: [{"kind": k} for k in ("kafka", "abort", "snapshot")],
    SNAPSHOT_LOADS: [{"outcome": o} for o in ("loaded", "rejected")],
    DRIFT_DETECTIONS: [{"detector": "hit_rate", "direction": "down"},
                       {"detector": "hit_rate", "direction": "up"}]
    + [{"detector": d, "direction": "change"} for d in (
        "foldin_residual", "user_vector_norm", "item_popularity", "event_type", "snapshot_churn")],
    REFIT_REQUESTS: [{"reason": r} for r in ("hit_rate", "foldin_residual", "item_popularity")],
    REFITS: [{"outcome": o} for o in ("accepted", "refused", "failed")],
    SERVE_GC_PAUSE: [{"generation": g} for g in ("0", "1", "2")],
    SERVE_LATENCY: [{"route": r} for r in SERVE_ROUTES],
    SERVE_RECORDS: [{"topic": t} for t in ("items", "recommendations", "similar-items",
                                           "events")],
    IMPRESSIONS: [{"source": s, "policy": p} for s in ("collaborative", "content", "popular")
                  for p in ("none", "epsilon", "plackett_luce")],
    **{m: [{"source": s, "slot": slot, "explored": e} for s in ("collaborative", "content",
                                                                "popular")
           for slot in SLOTS for e in ("true", "false")]
       for m in (IMPRESSION_SLOTS, IMPRESSION_CLICKS, IMPRESSION_PURCHASES)},
    PURCHASES: [{"attributed": a} for a in ("true", "false")],
}


def init_labels(collectors: tuple = ALL) -> None:
    """Create the known label children of `collectors` (at zero) so that their series exist."""
    for metric, label_sets in KNOWN_LABELS.items():
        if metric in collectors:
            for labels in label_sets:
                metric.labels(**labels)


_LABEL_RE = re.compile(r"[^a-z0-9_]+")
_seen_values: dict[str, dict[str, None]] = {}
_MAX_VALUES = 32


def reason_label(text: str, family: str = "reason") -> str:
    """A bounded label value from free text: lower snake case, at most 40 characters, and at
    most 32 distinct values per `family` (then "other"), so that no input grows a series set.

    >>> reason_label("event_time: Expected `float`"), reason_label("")
    ('event_time', 'unknown')
    """
    value = _LABEL_RE.sub("_", text.split(":")[0].strip().lower()).strip("_")[:40] or "unknown"
    seen = _seen_values.setdefault(family, {})
    if value not in seen and len(seen) >= _MAX_VALUES:
        return "other"
    seen[value] = None
    return value


def register(registry: CollectorRegistry, collectors: tuple = ALL) -> CollectorRegistry:
    """Add `collectors` to `registry` (a collector may live in several registries); those it
    holds already are left alone."""
    for collector in collectors:
        with contextlib.suppress(ValueError):  # already registered here
            registry.register(collector)
    return registry


PORTS = {"consumer": 9400, "refitter": 9401, "bridge": 9402}
"""Each role's default metrics port (/metrics, /healthz, /ready), so a scrape config can name it;
`metrics_port` overrides it (0: a free port)."""


def serve(settings: Settings, role: str = "consumer", registry: CollectorRegistry = REGISTRY,
          probes: Probes | None = None) -> int:
    """Serve /metrics, /healthz and /ready (`refold.core.probes`) from a daemon thread; returns
    the port it listens on.

    It listens on `settings.metrics_host:settings.metrics_port`, or on the role's port of
    `PORTS` when that is unset (a free one, with a warning, when another process holds it: two
    workers on one host), and exposes the metrics of `role` ("consumer", "refitter", "bridge";
    another name: all of them) next to the client's process and platform metrics. Without
    `probes`, the process is live and ready as long as it serves.
    """
    collectors = ROLES.get(role, ALL)
    register(registry, collectors)
    init_labels(collectors)
    BUILD.info({"version": __version__, "component": role})
    probes = probes or Probes()
    port = settings.metrics_port
    if port is None:
        try:
            return serve_http(settings.metrics_host, PORTS.get(role, 0), probes, registry)[1]
        except OSError as exc:
            log.warning("metrics port %d of role %s is taken (%s): serving on a free port; set "
                        "metrics_port to choose one", PORTS.get(role, 0), role, exc.strerror)
            port = 0
    return serve_http(settings.metrics_host, port, probes, registry)[1]
