"""The metrics of `refold serve` (the HTTP read path), declared unregistered like every metric
of `refold.core.metrics`, which imports them into its `ALL` and exposes them as the `serve` role.

>>> SERVE_ROUTES[0], SERVE_LATENCY.describe()[0].name
('recommendations', 'refold_serve_request_seconds')
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

_NO_REGISTRY = {"registry": None}  # `refold.core.metrics.register` adds them

SERVE_ROUTES = ("recommendations", "similar", "popular", "health", "metrics", "other")
"""The route label's values (never the ids in a path)."""
SERVE_REQUESTS = Counter(
    "refold_serve_requests_total", "HTTP requests refold serve answered, by route and status.",
    ["route", "status"], **_NO_REGISTRY)
SERVE_LATENCY = Histogram(
    "refold_serve_request_seconds", "Time refold serve took to answer a request, by route.",
    ["route"], buckets=(0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 1.0, 2.5),
    **_NO_REGISTRY)
SERVE_USERS = Gauge("refold_serve_users", "Users whose latest list refold serve holds.",
                    **_NO_REGISTRY)
SERVE_LISTS_BYTES = Gauge(
    "refold_serve_lists_bytes", "Bytes of the users' lists refold serve holds (keys, packed "
    "values, the table).", **_NO_REGISTRY)
SERVE_ITEMS = Gauge("refold_serve_items", "Items refold serve knows (catalog, lists, similar).",
                    **_NO_REGISTRY)
SERVE_PENDING = Gauge(
    "refold_serve_pending_dismissal_users", "Users with dismissals that no list of theirs "
    "answers yet.", **_NO_REGISTRY)
SERVE_EVICTED = Gauge("refold_serve_evicted_users",
                      "Lists refold serve dropped by its max-users bound so far.", **_NO_REGISTRY)
SERVE_RECORDS = Gauge("refold_serve_records_read",
                      "Records refold serve applied since start, by topic kind.", ["topic"],
                      **_NO_REGISTRY)
SERVE_REJECTED = Gauge("refold_serve_records_rejected",
                       "Records refold serve could not decode, by topic kind.", ["topic"],
                       **_NO_REGISTRY)
SERVE_GC_PAUSE = Histogram(
    "refold_serve_gc_pause_seconds", "Pauses of Python's cyclic garbage collector in refold "
    "serve, by generation (every thread waits them out).", ["generation"],
    buckets=(0.0001, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 1.0, 2.5),
    **_NO_REGISTRY)
