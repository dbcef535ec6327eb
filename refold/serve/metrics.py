"""`refold serve`'s metrics (declared in `refold.core.metrics`): requests by route and status,
their latency, and what the process holds. Route labels are bounded: never the ids in a path."""

from __future__ import annotations

from prometheus_client import REGISTRY, CollectorRegistry, Counter

from consumers.serve_state import ServeState
from consumers.serve_view import ServeView
from refold import __version__
from refold.core import metrics as M

ROUTES = M.SERVE_ROUTES
_latency = {r: M.SERVE_LATENCY.labels(r) for r in ROUTES}
_counts: dict[tuple[str, int], Counter] = {}


def register(registry: CollectorRegistry = REGISTRY) -> CollectorRegistry:
    """Add the serve role's metrics to `registry` (idempotent), with their known labels."""
    M.register(registry, M.SERVE)
    M.init_labels(M.SERVE)
    M.BUILD.info({"version": __version__, "component": "serve"})
    return registry


def route(path: str) -> str:
    """The route label of a request path."""
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
        counter = _counts[(r, status)] = M.SERVE_REQUESTS.labels(r, str(status))
    counter.inc()
    _latency[r].observe(seconds)


def record_view(view: ServeView) -> None:
    """What the view read, and what its state holds (before each scrape)."""
    for topic, n in view.records.items():
        M.SERVE_RECORDS.labels(topic).set(n)
    for topic, n in view.rejected.items():
        M.SERVE_REJECTED.labels(topic).set(n)
    record_state(view.state)


def record_state(state: ServeState) -> None:
    M.SERVE_USERS.set(len(state.lists))
    M.SERVE_LISTS_BYTES.set(state.lists.memory_bytes())
    M.SERVE_ITEMS.set(len(state.catalog.ids))
    M.SERVE_PENDING.set(state.lists.pending_users())
    M.SERVE_EVICTED.set(state.lists.evicted)
