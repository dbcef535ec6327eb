"""`refold acls ROLE`: the Kafka ACLs a refold role needs, printed or created."""

from __future__ import annotations

import click

from refold.acls import ROLES, acl_bindings, role_acls
from refold.cli import cli, settings_from


@cli.command("acls")
@click.argument("role", type=click.Choice(ROLES))
@click.option("--principal", required=True, metavar="User:NAME",
              help="Who gets them: `User:<SASL user>` or `User:CN=...` for a TLS certificate.")
@click.option("--apply", "apply_", is_flag=True,
              help="Create them on the cluster (as the configured client, which needs ALTER on "
                   "the cluster) instead of printing kafka-acls.sh arguments.")
@click.pass_context
def acls(ctx: click.Context, role: str, principal: str, apply_: bool) -> None:
    """The ACLs ROLE needs on a cluster with an authorizer, least privilege.

    Roles: worker (refold consume), refitter (refold refit), bridge (refold bridge), producer
    (the SDK, refold produce), reader (refold recs, RecommendationsView), admin (refold topics).
    Topic and group names come from the settings (topic_prefix, consumer_group ...).
    """
    if not principal.startswith("User:") or len(principal) <= len("User:"):
        raise click.BadParameter(f"{principal!r}: expected User:NAME", param_hint="--principal")
    settings = settings_from(ctx)
    if not apply_:
        for acl in role_acls(settings, role, settings.bridge_group):
            click.echo(acl.kafka_acls_args(principal))
        return
    from confluent_kafka import KafkaError, KafkaException

    from refold.core.kafka import make_admin, not_authorized

    bindings = acl_bindings(settings, role, principal, bridge_group=settings.bridge_group)
    admin = make_admin(settings, purpose="admin-acls")  # kept: its futures end with it
    for binding, future in admin.create_acls(bindings).items():
        try:
            future.result(30)
        except KafkaException as exc:  # a missing ALTER on the cluster: one line, exit 69
            err = exc.args[0] if exc.args and isinstance(exc.args[0], KafkaError) else None
            not_authorized(err, "ALTER", "kafka-cluster")
            raise
        click.echo(f"created: {binding.restype.name} {binding.resource_pattern_type.name} "
                   f"{binding.name} {binding.operation.name} for {principal}")
