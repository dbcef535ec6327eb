"""Infrastructure commands: the local broker, topics, effective config, JSON Schemas."""

from __future__ import annotations

import json
from pathlib import Path

import click

from refold.cli import cli, settings_from
from refold.core.config import describe


@cli.group()
def broker() -> None:
    """Run a local single-node Kafka (KRaft) from Maven jars, without Docker.

    Not used when REFOLD_BOOTSTRAP_SERVERS (or --bootstrap-servers) names a cluster.
    """


def _local_broker(ctx: click.Context):
    from refold.broker import LocalBroker

    settings = settings_from(ctx)
    if not settings.uses_local_broker:
        click.echo(f"a cluster is configured ({settings.bootstrap}): nothing to do locally")
        ctx.exit(0)
    return LocalBroker(settings)


@broker.command("start")
@click.pass_context
def broker_start(ctx: click.Context) -> None:
    """Start the broker (idempotent); returns once it answers a metadata request."""

    info = _local_broker(ctx).start()
    click.echo(info)


@broker.command("stop")
@click.pass_context
def broker_stop(ctx: click.Context) -> None:
    """Stop the broker and wait until its port is free."""
    click.echo(_local_broker(ctx).stop())


@broker.command("status")
@click.pass_context
def broker_status(ctx: click.Context) -> None:
    """Say whether the local broker runs, where, and where its log is."""
    click.echo(_local_broker(ctx).status())


@cli.group()
def topics() -> None:
    """Create and inspect refold's topics."""


@topics.command("create")
@click.option("--partitions", "events_partitions", type=int,
              help="Partitions of the events, recommendations and changelog topics [6].")
@click.pass_context
def topics_create(ctx: click.Context, events_partitions: int | None) -> None:
    """Create the topics that do not exist yet (idempotent), with the documented configs."""
    from refold.broker import ensure_bootstrap
    from refold.core.kafka import make_admin
    from refold.core.topics import create_topics

    settings = settings_from(ctx, events_partitions=events_partitions)
    ensure_bootstrap(settings)
    for name, state in create_topics(make_admin(settings), settings).items():
        click.echo(f"{name}: {state}")


@topics.command("list")
@click.pass_context
def topics_list(ctx: click.Context) -> None:
    """List the deployment's topics with their partition counts and configs."""
    from refold.core.kafka import make_admin
    from refold.core.topics import describe_topic_configs, topic_specs

    settings = settings_from(ctx)
    admin = make_admin(settings)
    existing = admin.list_topics(timeout=10).topics
    names = [s.name for s in topic_specs(settings) if s.name in existing]
    configs = describe_topic_configs(admin, names) if names else {}
    for spec in topic_specs(settings):
        if spec.name not in existing:
            click.echo(f"{spec.name}: missing")
            continue
        conf = configs[spec.name]
        shown = {k: conf[k] for k in spec.config if k in conf}
        click.echo(f"{spec.name}: {len(existing[spec.name].partitions)} partition(s) {shown}")


@cli.command("config")
@click.option("--json", "as_json", is_flag=True,
              help="Print the effective settings and every kind of Kafka client's properties "
                   "as JSON (secrets as \"***\").")
@click.pass_context
def config_cmd(ctx: click.Context, as_json: bool) -> None:
    """Print every setting (effective value, environment variable, default) and the librdkafka
    properties each kind of Kafka client gets; secrets are shown as "***".

    Every value is checked first (librdkafka checks the client properties, and reads the files
    they name): a bad one exits with status 2 and one line naming it.
    """
    from refold.core.kafka import check_clients, effective_properties

    settings = settings_from(ctx)
    check_clients(settings)
    shown, clients = settings.redacted(), effective_properties(settings)
    if as_json:
        click.echo(json.dumps({"settings": shown, "kafka_clients": clients}, indent=2,
                              default=str))
        return
    for name, env, _type, default, _doc in describe():
        click.echo(f"{name:28} {shown[name]!r:32} {env:34} default {default}")
    for kind, props in clients.items():
        click.echo(f"\n[{kind} clients]")
        for prop, value in props.items():
            click.echo(f"  {prop:40} {value}")


@cli.command("schemas")
@click.option("--out", type=click.Path(file_okay=False), default=None,
              help="Write the JSON Schema files into this directory (default: print them).")
def schemas_cmd(out: str | None) -> None:
    """The JSON Schemas of the messages, for producers in other languages."""
    from refold.core.schemas import json_schemas

    for name, schema in json_schemas().items():
        text = json.dumps(schema, indent=2, sort_keys=True) + "\n"
        if out:
            Path(out).mkdir(parents=True, exist_ok=True)
            (Path(out) / name).write_text(text)
            click.echo(f"wrote {Path(out) / name}")
        else:
            click.echo(f"# {name}\n{text}")
