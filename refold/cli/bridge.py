"""`refold bridge`: a shop's own event topic into refold's events topic, exactly once."""

from __future__ import annotations

import click

from refold.cli import cli, setting_help, settings_from


@cli.command("bridge")
@click.option("--source", "bridge_source_topic", metavar="TOPIC",
              help=setting_help("bridge_source_topic", "The shop's topic to read."))
@click.option("--field", "bridge_fields", multiple=True, metavar="REFOLD=SOURCE",
              help="Where an event field is in the source record, e.g. user_id=uid, "
                   "item_id=product.sku, event_time=ts, context.page=page (repeatable; unmapped "
                   "fields are read under their own name). (env REFOLD_BRIDGE_FIELDS)")
@click.option("--type", "bridge_types", multiple=True, metavar="SOURCE=REFOLD",
              help="An event type of the source and refold's name for it, e.g. pv=view "
                   "(repeatable; a source type that is already a refold type passes). "
                   "(env REFOLD_BRIDGE_TYPES)")
@click.option("--skip-type", "bridge_skip_types", multiple=True, metavar="SOURCE",
              help="A source type to drop on purpose (counted, not dead-lettered; repeatable).")
@click.option("--time-unit", "bridge_time_unit",
              type=click.Choice(["s", "ms", "us", "iso", "auto"]),
              help=setting_help("bridge_time_unit", "How the source writes event_time: seconds, "
                                "milliseconds, microseconds, ISO 8601, or guessed per value."))
@click.option("--default-type", "bridge_default_type",
              help="The event type of records without one (e.g. purchase for an order log).")
@click.option("--group", "bridge_group", help=setting_help("bridge_group", "Consumer group."))
@click.option("--instance-id", help=setting_help(
    "instance_id", "This replica's id; names its transactional producer, so live replicas "
    "must differ."))
@click.option("--batch-size", type=int, help=setting_help("batch_size", "Records per transaction."))
@click.option("--metrics-port", type=int, help=(
    "Serve /metrics, /healthz and /ready on this port; 0: a free one [9402] "
    "(env REFOLD_METRICS_PORT)."))
@click.option("--max-messages", type=int, help="Stop after N records (committed).")
@click.option("--idle-exit", type=float, metavar="SECONDS",
              help="Stop after SECONDS without input (tests).")
@click.pass_context
def bridge(ctx: click.Context, max_messages: int | None, idle_exit: float | None,
           **flags: object) -> None:
    """Read the shop's own event topic and write refold events, exactly once.

    Each record (JSON, plain or in a schema registry's JSON wire format) is mapped with
    --field/--type/--time-unit, produced to the events topic keyed by its user id (so each
    user's events land on one partition, whatever the source's key), or sent to the
    dead-letter topic with its reason and original bytes; records of a --skip-type are
    dropped. Events, dead letters and the source offsets commit in one transaction per batch.
    A record without an event id gets <topic>-<partition>-<offset>, so a record read again
    is applied once. SIGTERM or Ctrl-C finishes and commits the current batch, then exits 0.
    """
    from consumers.bridge import assemble_bridge
    from refold.broker import ensure_bootstrap

    flags = {k: (list(v) if isinstance(v, tuple) else v) for k, v in flags.items()
             if v not in (None, ())}
    settings = settings_from(ctx, **flags)
    if not settings.bridge_source_topic:
        raise click.UsageError("give the shop's topic: --source TOPIC (or bridge_source_topic)")
    ensure_bootstrap(settings)
    with assemble_bridge(settings, max_messages=max_messages, idle_exit=idle_exit) as running:
        running.stop_on_signals()
        click.echo(f"metrics: http://{settings.metrics_host}:{running.metrics_port}/metrics",
                   err=True)
        seconds = running.run()
    click.echo(f"bridge: {running.bridge.summary(seconds)}")
