"""The Kafka ACLs each refold role needs on a cluster with an authorizer, from the settings.

One list per role, least privilege: the README's ACL table, `refold acls` and the secured-broker
tests all read it, so what is documented is what is tested.

>>> from refold.core.config import Settings
>>> for acl in role_acls(Settings(), "reader"):
...     print(acl)
Topic:LITERAL:refold.recommendations READ
Group:PREFIXED:refold. DESCRIBE
"""

from __future__ import annotations

from dataclasses import dataclass

from refold.core.config import Settings

ROLES = ("worker", "refitter", "bridge", "producer", "reader", "serve", "admin")
"""`worker` (`refold consume`), `refitter` (`refold refit`), `bridge` (`refold bridge`),
`producer` (the SDK, `refold produce`), `reader` (`refold recs`, `RecommendationsView`),
`serve` (`refold serve`), `admin` (`refold topics create|list`)."""


@dataclass(frozen=True)
class Acl:
    """Allow `operation` on one resource (`Topic`, `Group`, `TransactionalId`, `Cluster`)."""

    resource: str
    name: str
    operation: str
    pattern: str = "LITERAL"

    def __str__(self) -> str:
        return f"{self.resource}:{self.pattern}:{self.name} {self.operation}"

    def kafka_acls_args(self, principal: str) -> str:
        """The `kafka-acls.sh` arguments that grant it to `principal` (`User:refold-worker`)."""
        kind = {"Topic": "--topic", "Group": "--group", "TransactionalId": "--transactional-id",
                "Cluster": "--cluster"}[self.resource]
        target = kind if self.resource == "Cluster" else f"{kind} '{self.name}'"
        pattern = " --resource-pattern-type prefixed" if self.pattern == "PREFIXED" else ""
        op = "".join(word.title() for word in self.operation.split("_"))
        return f"--add --allow-principal '{principal}' --operation {op} {target}{pattern}"


def transactional_id_prefix(settings: Settings, group: str) -> str:
    """What every transactional.id of a group's instances starts with."""
    return f"{settings.topic_prefix}{group}-"


def _tail_groups(settings: Settings) -> Acl:
    """Topics read whole (catalog, snapshots, control, recommendations) are assigned, not
    subscribed, and commit nothing; but librdkafka needs a group id and looks its coordinator
    up, which takes DESCRIBE on the group (named after the topic, so under the topic prefix)."""
    return Acl("Group", settings.topic_prefix, "DESCRIBE", "PREFIXED")


def role_acls(settings: Settings, role: str, bridge_group: str | None = None) -> list[Acl]:
    """The ACLs `role` needs (`ROLES`); `bridge_group` is the bridge's consumer group."""
    t = settings.topic
    if role == "worker":
        return [
            Acl("Topic", t("events"), "READ"),
            Acl("Topic", t("impressions"), "READ"),
            Acl("Topic", t("changelog"), "READ"),
            Acl("Topic", t("changelog"), "WRITE"),
            Acl("Topic", t("recommendations"), "WRITE"),
            Acl("Topic", t("dead_letter"), "WRITE"),
            Acl("Topic", t("snapshots"), "READ"),
            Acl("Topic", t("items"), "READ"),
            Acl("Topic", t("users"), "READ"),
            Acl("Topic", t("control"), "WRITE"),
            Acl("Group", settings.consumer_group, "READ"),
            _tail_groups(settings),
            Acl("TransactionalId", transactional_id_prefix(settings, settings.consumer_group),
                "WRITE", "PREFIXED"),
        ]
    if role == "refitter":
        return [
            Acl("Topic", t("events"), "READ"),
            Acl("Topic", t("items"), "READ"),  # the catalog's texts: the content model's idf
            Acl("Topic", t("control"), "READ"),
            Acl("Topic", t("snapshots"), "READ"),
            Acl("Topic", t("snapshots"), "WRITE"),
            Acl("Topic", t("snapshots"), "DELETE"),  # prunes versions it no longer keeps
            Acl("Topic", t("similar_items"), "READ"),  # the keys it published before
            Acl("Topic", t("similar_items"), "WRITE"),
            Acl("Group", settings.refit_group, "READ"),
            _tail_groups(settings),
            Acl("TransactionalId", transactional_id_prefix(settings, settings.refit_group),
                "WRITE", "PREFIXED"),  # publishes each version in a transaction
        ]
    if role == "bridge":
        group = bridge_group or getattr(settings, "bridge_group", "refold-bridge")
        source = getattr(settings, "bridge_source_topic", None)
        return [
            *([Acl("Topic", source, "READ")] if source else []),
            Acl("Topic", t("events"), "WRITE"),
            Acl("Topic", t("dead_letter"), "WRITE"),
            Acl("Group", group, "READ"),
            Acl("TransactionalId", transactional_id_prefix(settings, group), "WRITE",
                "PREFIXED"),
        ]
    if role == "producer":
        return [Acl("Topic", t("events"), "WRITE"), Acl("Topic", t("items"), "WRITE"),
                Acl("Topic", t("impressions"), "WRITE"), Acl("Topic", t("users"), "WRITE")]
    if role == "reader":
        return [Acl("Topic", t("recommendations"), "READ"), _tail_groups(settings)]
    if role == "serve":
        return [*(Acl("Topic", t(name), "READ") for name in
                  ("recommendations", "similar_items", "events", "items")),
                _tail_groups(settings)]
    if role == "admin":
        return [
            Acl("Topic", settings.topic_prefix, "CREATE", "PREFIXED"),
            Acl("Topic", settings.topic_prefix, "DESCRIBE", "PREFIXED"),
            Acl("Topic", settings.topic_prefix, "DESCRIBE_CONFIGS", "PREFIXED"),
        ]
    raise ValueError(f"unknown role {role!r}: one of {', '.join(ROLES)}")


def acl_bindings(settings: Settings, role: str, principal: str, host: str = "*",
                 bridge_group: str | None = None) -> list:
    """`role_acls` as confluent-kafka `AclBinding`s for `principal`, for `create_acls`."""
    from confluent_kafka.admin import (
        AclBinding,
        AclOperation,
        AclPermissionType,
        ResourcePatternType,
        ResourceType,
    )

    kinds = {"Topic": ResourceType.TOPIC, "Group": ResourceType.GROUP,
             "TransactionalId": ResourceType.TRANSACTIONAL_ID, "Cluster": ResourceType.BROKER}
    return [AclBinding(kinds[a.resource], a.name, ResourcePatternType[a.pattern], principal, host,
                       AclOperation[a.operation], AclPermissionType.ALLOW)
            for a in role_acls(settings, role, bridge_group)]
