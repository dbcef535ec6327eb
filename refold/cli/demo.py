"""`refold demo`: the main job on the local broker, from nothing to a running pipeline."""

from __future__ import annotations

import click

from refold.cli import cli, settings_from


@cli.command("demo")
@click.option("--path", type=click.Path(exists=True, file_okay=False),
              help="An ml-100k directory to replay; without it, the synthetic world.")
@click.option("--limit", type=int, help="Replay at most N events.")
@click.option("--synth-events", type=int, default=100_000, show_default=True,
              help="Events of the synthetic world (when no --path).")
@click.pass_context
def demo(ctx: click.Context, path: str | None, limit: int | None, synth_events: int) -> None:
    """Start the broker, create the topics, replay a dataset, and report what happened."""
    from producers.replay import replay
    from producers.sdk import EventProducer
    from refold.broker import ensure_bootstrap
    from refold.kafka import make_admin
    from refold.topics import create_topics

    settings = settings_from(ctx)
    click.echo(f"kafka: {ensure_bootstrap(settings)}")
    create_topics(make_admin(settings), settings)
    if path:
        from producers.datasets import load_movielens

        log, catalog = load_movielens(path)
    else:
        from producers.synth import SynthConfig, generate

        log, catalog, _ = generate(SynthConfig(n_events=synth_events))
    with EventProducer(settings) as producer:
        report = replay(log.iter_events(log.name), producer, catalog=catalog, total=len(log),
                        limit=limit)
    click.echo(report.summary())
    click.echo(f"topic {settings.topic('events')}: {_count(settings):,} events in total")


def _count(settings) -> int:
    """Messages on the events topic (end minus start offsets over its partitions)."""
    from refold.kafka import make_consumer, watermarks

    consumer = make_consumer(settings, "refold-demo-count")
    try:
        marks = watermarks(consumer, settings.topic("events"))
        return sum(high - low for low, high in marks.values())
    finally:
        consumer.close()
