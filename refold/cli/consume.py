"""`refold consume` runs a fold-in worker; `refold recs` prints the latest lists."""

from __future__ import annotations

import click

from refold.cli import cli, fold_in_changes, setting_help, settings_from


@cli.command("consume")
@click.option("--instance-id", help=setting_help(
    "instance_id", "This worker's id in the group; two live workers must differ (it names the "
    "transactional producer)."))
@click.option("--model", "model_path", type=click.Path(exists=True, dir_okay=False),
              help="Item factors to serve: a snapshot file or an .npz (item_factors, item_ids, "
                   "version).")
@click.option("--fit-from", metavar="DATASET:PATH",
              help="Fit implicit ALS at start instead, e.g. ml-100k:../shared/datasets/ml-100k.")
@click.option("--batch-size", type=int,
              help=setting_help("batch_size", "Events per micro-batch and transaction."))
@click.option("--k", type=int, help=setting_help("k", "Items per recommendation list."))
@click.option("--max-events", type=int, help="Stop after N events (committed).")
@click.option("--idle-exit", type=float, metavar="SECONDS",
              help="Stop after SECONDS without input (tests, benchmarks).")
@click.option("--guarantee", type=click.Choice(["exactly-once", "at-least-once"]),
              default="exactly-once", show_default=True,
              help="at-least-once: no transactions (outputs flushed, then offsets committed); "
                   "only to measure what exactly-once costs.")
@click.option("--metrics-port", type=int, help=(
    "Serve /metrics, /healthz and /ready on this port; 0: a free one [9400] (env "
    "REFOLD_METRICS_PORT)."))
@click.option("--follow-snapshots/--no-follow-snapshots", default=True, show_default=True,
              help="Serve the latest snapshot of the snapshots topic if newer than --model or "
                   "--fit-from (a greater version), then each new one, swapped between batches.")
@click.option("--snapshot-wait", type=float, default=30.0, show_default=True, metavar="SECONDS",
              help="At start, look this long at most for the latest snapshot; then serve what "
                   "there is (popularity without a model) until it is read.")
@click.option("--refit-on-drift/--no-refit-on-drift", default=True, show_default=True,
              help="When a drift detector fires, ask the refitter for a refit (control topic).")
@click.option("--refit-request-interval", type=float, default=600.0, show_default=True,
              metavar="SECONDS", help="At most one refit request per this many seconds.")
@click.option("--consumer-config", "consumer_conf", multiple=True, metavar="KEY=VALUE",
              help="A librdkafka setting for the consumer (repeatable).")
@click.option("--producer-config", "producer_conf", multiple=True, metavar="KEY=VALUE",
              help="A librdkafka setting for the producer (repeatable).")
@click.option("--fold-in", "fold_in", multiple=True, metavar="KEY=VALUE",
              help="A fold-in setting that has no flag or variable (repeatable), e.g. "
                   "min_events=1000000000 for popularity lists only, or full_events=1.")
@click.pass_context
def consume(ctx: click.Context, instance_id: str | None, model_path: str | None,
            fit_from: str | None, batch_size: int | None, k: int | None,
            max_events: int | None, idle_exit: float | None, guarantee: str,
            metrics_port: int | None, follow_snapshots: bool, snapshot_wait: float,
            refit_on_drift: bool, refit_request_interval: float,
            consumer_conf: tuple[str, ...], producer_conf: tuple[str, ...],
            fold_in: tuple[str, ...]) -> None:
    """Fold events into per-user models and publish fresh recommendations, exactly once.

    Reads the events topic in the consumer group, writes one list per affected user to the
    recommendations topic, bad messages to the dead-letter topic and the new state of the batch's
    users and partitions to the state changelog, in one transaction per batch with the input
    offsets; assigned partitions get their state back from the changelog first. It serves the
    latest model snapshot and swaps in each new one between batches (--no-follow-snapshots: only
    --model or --fit-from); with no model at all it serves popularity. A drift alarm asks the
    refitter for a refit. SIGTERM or Ctrl-C finishes and commits the current batch, then exits 0.
    """
    from consumers import model_source
    from consumers.assembly import WorkerOptions, assemble_worker
    from refold.broker import ensure_bootstrap

    if model_path and fit_from:
        raise click.UsageError("give --model or --fit-from, not both")
    settings = settings_from(ctx, instance_id=instance_id, batch_size=batch_size, k=k,
                             metrics_port=metrics_port)
    changes = fold_in_changes(fold_in, settings)  # before a fit: a bad one is refused at once
    try:
        factors = (model_source.load_item_factors(model_path) if model_path
                   else _fit_from(fit_from, settings) if fit_from else None)
    except model_source.ModelSourceError as exc:
        raise click.BadParameter(str(exc)) from exc
    ensure_bootstrap(settings)
    options = WorkerOptions(
        guarantee=guarantee, follow_snapshots=follow_snapshots, snapshot_wait=snapshot_wait,
        refit_on_drift=refit_on_drift, refit_request_interval=refit_request_interval,
        max_messages=max_events, idle_exit=idle_exit, consumer_extra=_key_values(consumer_conf),
        producer_extra=_key_values(producer_conf), fold_in=changes)
    with assemble_worker(settings, factors, options) as worker:
        worker.stop_on_signals()
        stats = worker.run(freeze_heap=True)
    click.echo(f"consume: {worker.worker.summary(stats.busy_seconds)}; "
               f"{stats.batches:,} transactions, {stats.aborts} aborted")


@cli.command("recs")
@click.argument("user", required=False)
@click.option("--json", "as_json", is_flag=True,
              help="Print the Recommendation message(s) as JSON.")
@click.option("--all", "all_users", is_flag=True, help="Every user's latest list.")
@click.option("--timeout", type=float, default=10.0, show_default=True,
              help="Seconds to read the recommendations topic to its end.")
@click.pass_context
def recs(ctx: click.Context, user: str | None, as_json: bool, all_users: bool,
         timeout: float) -> None:
    """Print USER's latest recommendation list (read_committed, from the compacted topic)."""
    from consumers.recs_view import RecommendationsView
    from refold.core.errors import NotFound
    from refold.core.schemas import encode

    if bool(user) == all_users:
        raise click.UsageError("give a USER or --all")
    settings = settings_from(ctx)
    with RecommendationsView(settings) as view:
        caught_up = view.catch_up(timeout)
        if not caught_up:
            click.echo(f"warning: not caught up after {timeout:g} s", err=True)
        users = sorted(view) if all_users else [user]
        if not all_users and view.get(user) is None:
            raise NotFound(_no_list(user, settings.topic("recommendations"), len(view),
                                    caught_up, timeout))
        for u in users:
            rec = view.get(u)
            if as_json:
                click.echo(encode(rec).decode())
            else:
                click.echo(_describe(rec))


def _no_list(user: str | None, topic: str, users: int, caught_up: bool, timeout: float) -> str:
    """Why `refold recs USER` has nothing to print."""
    why = (f"read to its end: {users:,} user(s) have one; a user gets a list with their first "
           "event" if caught_up else f"not read to its end in {timeout:g} s: try a longer "
           "--timeout")
    return f"no recommendations for user {user!r} in {topic} ({why})"


def _fit_from(spec: str, settings):
    """Item factors fitted at start on `<dataset>:<path>` (`--fit-from ml-100k:DIR`)."""
    from consumers import model_source
    from producers.datasets import load_movielens

    name, sep, path = spec.partition(":")
    if not sep or name != "ml-100k" or not path:
        raise click.BadParameter(f"--fit-from {spec!r}: expected ml-100k:PATH")
    return model_source.fit_log(load_movielens(path)[0], settings)


def _key_values(pairs: tuple[str, ...]) -> dict[str, str]:
    out = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"expected KEY=VALUE, got {pair!r}")
        out[key.strip()] = value.strip()
    return out


def _describe(rec) -> str:
    head = (f"{rec.user_id}: {len(rec.items)} item(s), {rec.source}, "
            f"model v{rec.model_version}" if rec.model_version is not None
            else f"{rec.user_id}: {len(rec.items)} item(s), {rec.source}, no model")
    if rec.cause is not None:
        c = rec.cause
        head += f", after {c.event_id} ({c.topic}[{c.partition}]@{c.offset})"
    items = "  ".join(f"{it.item_id} {it.score:.4g}" for it in rec.items)
    return f"{head}\n  {items}" if items else head

