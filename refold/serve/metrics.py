"""`refold serve`'s metrics, declared once: requests by route and status, their latency, and what
the process holds. No user or item ids in labels."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

from consumers.serve_state import ServeState
from consumers.serve_view import ServeView

ROUTES = ("recommendations", "similar", "popular", "health", "metrics", "other")

REQUESTS = Counter("refold_serve_requests_total", "HTTP requests answered, by route and status",
                   ["route", "status"])
LATENCY = Histogram(
    "refold_serve_request_seconds", "Time to answer an HTTP request, by route", ["route"],
    buckets=(0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 1.0))
USERS = Gauge("refold_serve_users", "Users whose latest list this process holds")
LISTS_BYTES = Gauge("refold_serve_lists_bytes",
                    "Bytes of the users' lists held (keys, packed values, the table)")
ITEMS = Gauge("refold_serve_items", "Items this process knows (catalog, lists, similar items)")
PENDING = Gauge("refold_serve_pending_dismissal_users",
                "Users with dismissals that no list of theirs answers yet")
EVICTED = Gauge("refold_serve_evicted_users", "Lists dropped by the max-users bound so far")
RECORDS = Gauge("refold_serve_records_read", "Records applied since start, by topic kind",
                ["topic"])
REJECTED = Gauge("refold_serve_records_rejected", "Records that did not decode, by topic kind",
                 ["topic"])
_latency = {r: LATENCY.labels(r) for r in ROUTES}
_counts: dict[tuple[str, int], Counter] = {}


def route(path: str) -> str:
    """The route label of a request path (bounded: never the ids in it)."""
    if path.startswith("/v1/users/"):
        return "recommendations"
    if path.startswith("/v1/items/"):
        return "similar"
    if path.startswith("/v1/popular"):
        return "popular"
    if path in ("/healthz", "/ready"):
        return "health"
    return "metrics" if path == "/metrics" else "other"


def observe(path: str, status: int, seconds: float) -> None:
    r = route(path)
    counter = _counts.get((r, status))
    if counter is None:  # bounded: routes × the statuses the app answers with
        counter = _counts[(r, status)] = REQUESTS.labels(r, str(status))
    counter.inc()
    _latency[r].observe(seconds)


def record_view(view: ServeView) -> None:
    """What the view read, and what its state holds (before each scrape)."""
    for topic, n in view.records.items():
        RECORDS.labels(topic).set(n)
    for topic, n in view.rejected.items():
        REJECTED.labels(topic).set(n)
    record_state(view.state)


def record_state(state: ServeState) -> None:
    USERS.set(len(state.lists))
    LISTS_BYTES.set(state.lists.memory_bytes())
    ITEMS.set(len(state.catalog.ids))
    PENDING.set(state.lists.pending_users())
    EVICTED.set(state.lists.evicted)
