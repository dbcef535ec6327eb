"""The bridge's own metrics: the source topic's lag, kept only for the partitions it holds."""

from __future__ import annotations

from confluent_kafka import TopicPartition
from prometheus_client import CollectorRegistry

from consumers.bridge import Bridge, mapping_of
from refold.core import metrics as M
from refold.core.config import Settings


def test_a_revoked_partition_loses_its_lag_series():
    settings = Settings(bridge_source_topic="shop.clicks", bridge_group="g-bridge-lag")
    registry = M.register(CollectorRegistry(), (M.CONSUMER_LAG,))
    bridge = Bridge(settings, mapping_of(settings))
    for p in (0, 1):
        M.CONSUMER_LAG.labels(group="g-bridge-lag", topic="shop.clicks", partition=str(p)).set(7)

    def lag(p: int) -> float | None:
        return registry.get_sample_value("refold_consumer_lag_messages", {
            "group": "g-bridge-lag", "topic": "shop.clicks", "partition": str(p)})

    bridge.on_partitions_revoked([TopicPartition("shop.clicks", 0), TopicPartition("x", 5)])
    assert lag(0) is None and lag(1) == 7
