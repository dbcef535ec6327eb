"""The topics refold uses, their documented configs, and idempotent creation via the admin API."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient, ConfigResource, NewTopic

from refold.core.config import Settings

log = logging.getLogger(__name__)

WEEK_MS = 7 * 24 * 3600 * 1000


@dataclass(frozen=True)
class TopicSpec:
    """One topic: logical name, partitions, configs and what its messages are."""

    name: str
    partitions: int
    config: dict[str, str] = field(default_factory=dict)
    key: str = ""
    value: str = ""


def topic_specs(settings: Settings) -> list[TopicSpec]:
    """The topics of a deployment, with full (prefixed) names. Documented in the README."""
    p = settings.events_partitions
    compact = {"cleanup.policy": "compact", "min.compaction.lag.ms": "0", "segment.ms": "3600000"}
    specs = [
        TopicSpec("events", p, {"retention.ms": str(WEEK_MS)}, "user_id", "Event v1 (JSON)"),
        TopicSpec("recommendations", p, compact, "user_id", "Recommendation v1 (JSON)"),
        TopicSpec(
            "snapshots",
            1,
            {"retention.ms": "-1", "retention.bytes": str(4 << 30),
             "max.message.bytes": "2097152"},
            "<version>/<chunk>",
            "model snapshot chunks (binary)",
        ),
        TopicSpec("items", 1, compact, "item_id", "Item v1 (JSON); null value = deleted"),
        TopicSpec(
            "dead_letter", 1, {"retention.ms": str(4 * WEEK_MS)}, "original key",
            "original bytes; headers: reason, source topic/partition/offset",
        ),
        TopicSpec("changelog", p, compact, "user_id", "per-user state (JSON)"),
        TopicSpec("control", 1, compact, "<consumer group>/<instance id>",
                  "refit request (JSON: reason, detector, time, worker)"),
        TopicSpec("similar_items", 1, compact, "item_id",
                  "SimilarItems v1 (JSON); null value = the item left the model"),
        TopicSpec("users", p, compact, "user_id", "User v1 (JSON): a declared profile"),
        TopicSpec("impressions", p, {"retention.ms": str(WEEK_MS)}, "user_id",
                  "Impression v1 (JSON): what services showed, from which list"),
    ]
    return [
        TopicSpec(settings.topic(s.name), s.partitions, s.config, s.key, s.value) for s in specs
    ]


def create_topics(admin: AdminClient, settings: Settings, timeout: float = 30.0) -> dict[str, str]:
    """Create every topic that does not exist yet; returns `{topic: "created" | "exists"}`."""
    specs = topic_specs(settings)
    new = [
        NewTopic(s.name, num_partitions=s.partitions,
                 replication_factor=settings.replication_factor, config=s.config)
        for s in specs
    ]
    result: dict[str, str] = {}
    for name, fut in admin.create_topics(new, request_timeout=timeout).items():
        try:
            fut.result(timeout)
            result[name] = "created"
        except KafkaException as exc:
            if exc.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
                raise
            result[name] = "exists"
        log.info("topic %s: %s", name, result[name])
    _wait_for_metadata(admin, [s.name for s in specs], timeout)
    return result


def _wait_for_metadata(admin: AdminClient, names: list[str], timeout: float) -> None:
    """Topic creation is asynchronous on the broker; wait until every leader is known."""
    import time

    deadline = time.monotonic() + timeout
    while True:
        md = admin.list_topics(timeout=timeout).topics
        ready = all(
            n in md and md[n].error is None
            and all(p.leader >= 0 for p in md[n].partitions.values())
            for n in names
        )
        if ready:
            return
        if time.monotonic() > deadline:
            hidden = ", ".join(n for n in names if n not in md)
            why = f"; not visible (no DESCRIBE on them?): {hidden}" if hidden else ""
            log.warning("after %.0f s the metadata still lacks a leader for some topics%s",
                        timeout, why)
            return
        time.sleep(0.1)


def describe_topic_configs(admin: AdminClient, names: list[str]) -> dict[str, dict[str, str]]:
    """The broker's view of each topic's configs (used to check what `create_topics` made)."""
    futures = admin.describe_configs([ConfigResource(ConfigResource.Type.TOPIC, n) for n in names])
    return {res.name: {k: v.value for k, v in fut.result().items()} for res, fut in futures.items()}


def delete_topics(admin: AdminClient, names: list[str], timeout: float = 30.0) -> None:
    for fut in admin.delete_topics(names, operation_timeout=timeout).values():
        try:
            fut.result(timeout)
        except KafkaException as exc:
            if exc.args[0].code() != KafkaError.UNKNOWN_TOPIC_OR_PART:
                raise
