"""`refold bench serve`: the HTTP read path under load, next to the topic-only read."""

from __future__ import annotations

import click

from refold.cli.bench import bench, emit


@bench.command("serve")
@click.option("--users", type=int, default=1_000_000, show_default=True,
              help="Users with a published list (all held by the server).")
@click.option("--items", type=int, default=20_000, show_default=True, help="Catalog size.")
@click.option("--rate", type=float, default=2000.0, show_default=True,
              help="Requests/s of the fixed-rate run.")
@click.option("--duration", type=float, default=15.0, show_default=True, metavar="SECONDS",
              help="Length of the fixed-rate run (the saturation run takes a third).")
@click.option("--connections", type=int, default=16, show_default=True,
              help="wrk's connections to the server.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.pass_context
def bench_serve(ctx: click.Context, users: int, items: int, rate: float, duration: float,
                connections: int, as_json: bool) -> None:
    """Requests/s and p50/p99 latency of `refold serve`'s user endpoint on one core, driven by
    wrk (installed from Debian's packages when missing), side by side with
    `RecommendationsView.get` in-process; memory per million users of both. Throwaway topics,
    deleted after."""
    from refold.bench import serve
    from refold.broker import ensure_bootstrap
    from refold.cli import settings_from

    if min(users, items, connections) < 1 or rate <= 0 or duration < 1:
        raise click.UsageError("--users, --items, --connections must be >= 1, --rate > 0, "
                               "--duration >= 1")
    settings = settings_from(ctx)
    ensure_bootstrap(settings)
    result = serve.run(settings, users, items, rate, duration, connections)
    emit(result, as_json, serve.table(result))
