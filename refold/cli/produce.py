"""`refold produce`: publish one event, replay a dataset, or generate a synthetic world."""

from __future__ import annotations

import time
import uuid

import click

from refold.cli import cli, mapping_options, settings_from


@cli.group()
def produce() -> None:
    """Publish interaction events (and catalog items) to the events topic."""


def _producer(ctx: click.Context):
    from producers.sdk import EventProducer
    from refold.broker import ensure_bootstrap

    settings = settings_from(ctx)
    ensure_bootstrap(settings)
    return EventProducer(settings)


@produce.command("event")
@click.option("--user", "user_id", required=True, help="User id (the message key).")
@click.option("--item", "item_id", required=True, help="Item id.")
@click.option("--type", "event_type", default="click", show_default=True,
              help="view, click, add_to_cart, purchase, bookmark, rating or dismiss.")
@click.option("--value", type=float, help="Explicit value, e.g. a 1-5 rating.")
@click.option("--weight", type=float, help="Override the configured weight of the type.")
@click.option("--session", "session_id", help="Session id.")
@click.option("--time", "event_time", type=float, help="Unix seconds [now].")
@click.option("--event-id", help="De-duplication id [a new UUID].")
@click.pass_context
def produce_event(ctx: click.Context, **fields) -> None:
    """Publish one event, validated first; waits for the broker's acknowledgement."""
    from refold.core.schemas import Event, SchemaError

    fields["event_time"] = fields["event_time"] or time.time()
    fields["event_id"] = fields["event_id"] or str(uuid.uuid4())
    try:
        event = Event(**fields)
        with _producer(ctx) as producer:
            producer.send(event)
    except SchemaError as exc:
        raise click.BadParameter(str(exc)) from exc
    click.echo(f"sent {event.event_type} {event.user_id} -> {event.item_id} ({event.event_id})")


def _run_replay(ctx: click.Context, log, catalog, speedup, fast, limit, prefix) -> None:
    from producers.replay import replay

    with _producer(ctx) as producer:
        report = replay(
            log.iter_events(prefix), producer, catalog=catalog, total=len(log),
            speedup=None if fast else speedup, limit=limit,
        )
    click.echo(report.summary())


pacing = [
    click.option("--speedup", type=float, default=None,
                 help="Replay event time N times faster than it happened."),
    click.option("--as-fast-as-possible", "fast", is_flag=True,
                 help="No pacing (the default when --speedup is not given)."),
    click.option("--limit", type=int, help="Send at most N events."),
]


def with_pacing(f):
    for opt in reversed(pacing):
        f = opt(f)
    return f


@produce.command("replay")
@click.option("--dataset", type=click.Choice(["ml-100k", "csv"]), default="ml-100k",
              show_default=True)
@click.option("--path", type=click.Path(exists=True), required=True,
              help="ml-100k: a directory (GroupLens u.data/u.item or the .inter/.item layout); "
                   "csv: a file.")
@click.option("--user-col", default="user_id", show_default=True, help="csv: user column.")
@click.option("--item-col", default="item_id", show_default=True, help="csv: item column.")
@click.option("--value-col", default=None, help="csv: value (rating) column, optional.")
@click.option("--time-col", default="timestamp", show_default=True, help="csv: time column.")
@click.option("--type-col", default=None, help="csv: event type column, optional.")
@click.option("--event-type", default="click", show_default=True,
              help="csv: event type when there is no type column.")
@mapping_options
@with_pacing
@click.pass_context
def produce_replay(ctx, dataset, path, user_col, item_col, value_col, time_col, type_col,
                   event_type, speedup, fast, limit, mapping) -> None:
    """Replay a dataset in event-time order (catalog first), with a progress bar."""
    from producers.datasets import load_csv, load_movielens

    if dataset == "ml-100k":
        log, catalog = load_movielens(path)
    else:
        log = load_csv(path, user_col=user_col, item_col=item_col, time_col=time_col,
                       value_col=value_col, type_col=type_col, default_event_type=event_type,
                       mapping=mapping)
        catalog = []
    _run_replay(ctx, log, catalog, speedup, fast, limit, prefix=dataset)


@produce.command("synth")
@click.option("--users", type=int, default=2000, show_default=True)
@click.option("--items", type=int, default=1000, show_default=True)
@click.option("--events", type=int, default=100_000, show_default=True)
@click.option("--drift-at", type=int, default=None, help="Event index where tastes shift.")
@click.option("--seed", type=int, default=0, show_default=True)
@with_pacing
@click.pass_context
def produce_synth(ctx, users, items, events, drift_at, seed, speedup, fast, limit) -> None:
    """Generate a seeded synthetic world (sessions, new users/items, drift) and publish it."""
    from producers.synth import SynthConfig, generate

    config = SynthConfig(n_users=users, n_items=items, n_events=events, drift_at=drift_at,
                         seed=seed)
    log, catalog, _truth = generate(config)
    _run_replay(ctx, log, catalog, speedup, fast, limit, prefix=f"synth{seed}")
