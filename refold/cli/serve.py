"""`refold serve`: the HTTP API over the recommendations, items, similar-items and events topics."""

from __future__ import annotations

import click

from refold.cli import cli, settings_from


def parse_partitions(raw: str | None) -> set[int] | None:
    """`"0,2,5"` -> {0, 2, 5}; None or "all" -> None (every partition)."""
    if raw is None or raw.strip().lower() == "all":
        return None
    try:
        held = {int(p) for p in raw.split(",") if p.strip()}
    except ValueError as exc:
        raise click.BadParameter(f"expected partition numbers like 0,2,5, got {raw!r}") from exc
    if not held or min(held) < 0:
        raise click.BadParameter("give at least one partition number >= 0")
    return held


@cli.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", type=int, default=8000, show_default=True, help="Port to listen on.")
@click.option("--partitions", metavar="P,P,...|all", default="all", show_default=True,
              help="Recommendations partitions this replica holds (users of the others get "
                   "421); several replicas can split them, or each hold all.")
@click.option("--max-users", type=int, default=10_000_000, show_default=True,
              help="Lists held at most; beyond, the least recently updated go (and get trending).")
@click.option("--events-lookback", type=float, default=86400.0, show_default=True,
              metavar="SECONDS", help="Read the events of this many seconds back at start "
                                      "(trending, and dismissals not yet in a list).")
@click.option("--k", type=int, help="Items per answer when a request does not say [20].")
@click.option("--gc", "gc_mode", type=click.Choice(["freeze", "default"]), default="freeze",
              show_default=True, help="freeze: once the topics are read, what the process holds "
              "is left out of the garbage collector's walks (shorter pauses); default: Python's "
              "collector unchanged (for comparison).")
@click.pass_context
def serve(ctx: click.Context, host: str, port: int, partitions: str, max_users: int,
          events_lookback: float, k: int | None, gc_mode: str) -> None:
    """Serve recommendations over HTTP (OpenAPI at /schema), read from the topics.

    GET /v1/users/USER/recommendations?k=&category=&exclude=&explain=, /v1/items/ITEM/similar?k=,
    /v1/popular?k=&category=, /healthz, /ready (200 once every topic was read to its end) and
    /metrics. Inactive items and items a user dismissed are never returned; a user without a
    list gets trending. SIGTERM or Ctrl-C stops it.
    """
    from refold.broker import ensure_bootstrap
    from refold.core.kafka import KafkaFatalError
    from refold.serve.server import build, run

    settings = settings_from(ctx, k=k)
    ensure_bootstrap(settings)
    try:
        served = build(settings, parse_partitions(partitions), max_users, events_lookback,
                       gc_mode)  # type: ignore[arg-type]
    except KafkaFatalError as exc:
        raise click.ClickException(str(exc)) from exc
    ctx.exit(run(served, host, port, settings.log_level))
