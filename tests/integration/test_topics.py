"""`refold topics create` against the real broker: idempotent, with the documented configs."""

from __future__ import annotations

from refold.core.config import Settings
from refold.core.kafka import make_admin
from refold.core.topics import create_topics, describe_topic_configs, topic_specs


def test_topics_created_idempotently_with_documented_configs(bootstrap, unique_prefix):
    s = Settings(bootstrap_servers=bootstrap, topic_prefix=unique_prefix, events_partitions=3)
    admin = make_admin(s)
    first = create_topics(admin, s)
    assert set(first.values()) == {"created"}
    assert set(create_topics(admin, s).values()) == {"exists"}

    md = admin.list_topics(timeout=10).topics
    specs = {spec.name: spec for spec in topic_specs(s)}
    assert set(specs) == {f"{unique_prefix}{n}" for n in (
        "events", "recommendations", "snapshots", "items", "dead-letter", "state-changelog",
        "control", "similar-items", "users", "impressions")}
    configs = describe_topic_configs(admin, list(specs))
    for name, spec in specs.items():
        assert len(md[name].partitions) == spec.partitions
        for key, value in spec.config.items():
            assert configs[name][key] == value, (name, key)
    assert len(md[f"{unique_prefix}events"].partitions) == 3
    assert configs[f"{unique_prefix}recommendations"]["cleanup.policy"] == "compact"
    assert configs[f"{unique_prefix}items"]["cleanup.policy"] == "compact"
    assert configs[f"{unique_prefix}control"]["cleanup.policy"] == "compact"
    assert configs[f"{unique_prefix}similar-items"]["cleanup.policy"] == "compact"
    assert configs[f"{unique_prefix}users"]["cleanup.policy"] == "compact"
    assert len(md[f"{unique_prefix}users"].partitions) == 3  # like the events
    assert len(md[f"{unique_prefix}impressions"].partitions) == 3  # co-partitioned with them
    assert configs[f"{unique_prefix}events"]["cleanup.policy"] == "delete"


def test_topic_names_and_partitions_are_configurable(bootstrap, unique_prefix):
    s = Settings(bootstrap_servers=bootstrap, topic_prefix=unique_prefix, events_topic="clicks",
                 recommendations_topic="recs", events_partitions=2)
    create_topics(make_admin(s), s)
    md = make_admin(s).list_topics(timeout=10).topics
    assert len(md[f"{unique_prefix}clicks"].partitions) == 2
    assert f"{unique_prefix}recs" in md
