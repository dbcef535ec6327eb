"""The HTTP API of `refold serve` (Litestar): users' lists, similar items, popular items, health.

| route | answer |
|---|---|
| `GET /v1/users/{user}/recommendations?k=&category=&exclude=&explain=` | `UserRecommendations` |
| `GET /v1/items/{item}/similar?k=` | `SimilarAnswer`; 404 for an item never seen |
| `GET /v1/popular?k=&category=` | `PopularAnswer` |
| `GET /healthz` | 200 while the process follows its topics, 503 when following failed |
| `GET /ready` | 200 once every topic was read to its end at start, 503 before |
| `GET /metrics` | Prometheus text |
| `GET /schema/openapi.json` | the OpenAPI description (`/schema` renders it) |

A bad parameter is a 400 naming it (`k` must be 1..`MAX_K`); a user of a partition this replica
does not hold is a 421 naming the partition. An unknown user is not an error: they get trending.
Handlers are synchronous and run on the event loop (each is a few dictionary look-ups).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Annotated, Any, Protocol

from litestar import Litestar, MediaType, Request, Response, get
from litestar.exceptions import NotFoundException
from litestar.openapi import OpenAPIConfig
from litestar.params import Parameter, PathParameter
from litestar.types import ASGIApp, Message, Receive, Scope, Send
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from consumers.serve_messages import PopularAnswer, Problem, SimilarAnswer, UserRecommendations
from consumers.serve_state import NotHere, ServeState
from refold import __version__
from refold.serve import metrics

MAX_K = 100
K = Annotated[int, Parameter(ge=1, le=MAX_K, description=f"how many items, 1..{MAX_K}")]


class Status(Protocol):
    """What `/healthz` and `/ready` ask of the process that fills the state."""

    def healthy(self) -> tuple[bool, str]: ...

    def ready(self) -> tuple[bool, str]: ...


def create_app(state: ServeState, status: Status, default_k: int = 20,
               clock: Callable[[], float] = time.time,
               on_scrape: Callable[[], None] | None = None) -> ASGIApp:
    """The ASGI application over `state` (wrapped to count requests by route and status);
    `on_scrape` updates gauges before `/metrics` answers (default: the state's sizes)."""

    @get("/v1/users/{user_id:str}/recommendations", sync_to_thread=False,
         summary="A user's recommendations")
    def recommendations(
        user_id: Annotated[str, PathParameter(description="the user id")], k: K = default_k,
        category: Annotated[str | None, Parameter(
            description="only items of this category")] = None,
        exclude: Annotated[list[str] | None, Parameter(
            description="item ids to leave out (repeat, or separate with commas)")] = None,
        explain: Annotated[bool, Parameter(description="give each item's reason")] = False,
    ) -> UserRecommendations:
        """The user's latest list, filtered at read time (inactive items, the user's dismissals,
        `exclude`, `category`) and filled with popular items; trending for a user without one."""
        excluded = [x for e in exclude or () for x in e.split(",") if x]
        return state.recommend(user_id, k, clock(), category, excluded, explain)

    @get("/v1/items/{item_id:str}/similar", sync_to_thread=False, summary="Similar items")
    def similar(item_id: Annotated[str, PathParameter(description="the item id")],
                k: K = default_k) -> SimilarAnswer:
        """The item's nearest active neighbours from the last refit (factors blended with
        session co-visits)."""
        got = state.similar(item_id, k)
        if got is None:
            raise NotFoundException(f"item {item_id!r} is not known")
        return got

    @get("/v1/popular", sync_to_thread=False, summary="Popular items")
    def popular(k: K = default_k, category: Annotated[str | None, Parameter(
            description="only items of this category")] = None) -> PopularAnswer:
        """Trending active items: time-decayed popularity of the positive events."""
        return state.popular(k, clock(), category)

    @get("/healthz", sync_to_thread=False, include_in_schema=True)
    def healthz() -> Response[dict[str, Any]]:
        ok, detail = status.healthy()
        return Response({"ok": ok, "detail": detail}, status_code=200 if ok else 503)

    @get("/ready", sync_to_thread=False)
    def ready() -> Response[dict[str, Any]]:
        ok, detail = status.ready()
        return Response({"ready": ok, "detail": detail}, status_code=200 if ok else 503)

    @get("/metrics", sync_to_thread=False, include_in_schema=False)
    def prometheus() -> Response[bytes]:
        (on_scrape or (lambda: metrics.record_state(state)))()
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    def not_here(_: Request, exc: NotHere) -> Response[Problem]:
        return Response(Problem(status_code=421, detail=str(exc),
                                extra={"partition": exc.partition}),
                        status_code=421, media_type=MediaType.JSON)

    metrics.register()
    app = Litestar(
        [recommendations, similar, popular, healthz, ready, prometheus],
        exception_handlers={NotHere: not_here},
        openapi_config=OpenAPIConfig(
            title="refold", version=__version__, path="/schema",
            description="Recommendations read from refold's topics."),
    )
    return counted(app)


def counted(app: ASGIApp) -> ASGIApp:
    """`app`, counting each HTTP request by route and status, with its duration."""

    async def wrapper(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await app(scope, receive, send)
            return
        start, status = time.perf_counter(), 500

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await app(scope, receive, send_status)
        finally:
            metrics.observe(scope["path"], status, time.perf_counter() - start)

    return wrapper
