"""`refold bench ...`: side-by-side benchmarks that print a table (or `--json`)."""

from __future__ import annotations

import json

import click

from refold.cli import cli


@cli.group()
def bench() -> None:
    """Benchmarks: refold next to the obvious alternative, in the same run."""


def emit(result: dict, as_json: bool, table: str) -> None:
    click.echo(json.dumps(result, indent=2) if as_json else table)


@bench.command("serde")
@click.option("--messages", type=int, default=100_000, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def bench_serde(messages: int, as_json: bool) -> None:
    """Event encode and decode+validate per second: msgspec vs json vs orjson."""
    from refold.bench import serde

    result = serde.run(messages)
    emit(result, as_json, serde.table(result))


@bench.command("produce")
@click.option("--events", type=int, default=100_000, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.pass_context
def bench_produce(ctx: click.Context, events: int, as_json: bool) -> None:
    """Events/s acknowledged by the broker: the SDK next to a bare confluent-kafka producer."""
    from refold.bench import produce
    from refold.broker import ensure_bootstrap
    from refold.cli import settings_from

    settings = settings_from(ctx)
    ensure_bootstrap(settings)
    result = produce.run(settings, events)
    emit(result, as_json, produce.table(result))


@bench.command("foldin")
@click.option("--items", "items", type=int, multiple=True,
              help="Catalog size(s); repeatable [10000, 100000, 1000000].")
@click.option("--factors", type=int, default=64, show_default=True)
@click.option("--events", type=int, default=2000, show_default=True,
              help="Events for refold and implicit (river gets fewer: it is slow).")
@click.option("--k", type=int, default=20, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def bench_foldin(items: tuple[int, ...], factors: int, events: int, k: int,
                 as_json: bool) -> None:
    """Fold-in + top-K events/s on one thread: refold vs implicit recalculate_user vs river."""
    from refold.bench import foldin

    results = []
    for n in items or (10_000, 100_000, 1_000_000):
        results.append(foldin.run(items=n, factors=factors, events=events, k=k))
        if not as_json:
            click.echo(f"  {n:,} items done", err=True)
    out = results[0] if len(results) == 1 else {"runs": results}
    emit(out, as_json, foldin.table(results))
