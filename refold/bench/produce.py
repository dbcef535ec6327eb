"""Produce throughput: the `EventProducer` SDK next to a bare confluent-kafka producer.

Both use the same producer settings (idempotent, acks=all, lz4) and end with a flush, so the figures
are events acknowledged by the broker per second. The bare producer sends pre-encoded bytes: that is
the Kafka-bound ceiling; the SDK's gap to it is the cost of validation and encoding.
"""

from __future__ import annotations

import time

from producers.sdk import EventProducer
from refold.bench.serde import sample
from refold.core.config import Settings
from refold.core.kafka import make_admin, make_producer, produce
from refold.core.schemas import encode
from refold.core.topics import create_topics, delete_topics


def run(settings: Settings, n: int = 100_000) -> dict:
    """Events/s acknowledged by the broker, SDK vs bare producer, on throwaway topics."""
    settings = settings.replace(topic_prefix=f"{settings.topic_prefix}bench-{int(time.time())}.")
    admin = make_admin(settings)
    create_topics(admin, settings)
    events = sample(n)
    try:
        t0 = time.perf_counter()
        with EventProducer(settings) as producer:
            producer.send_many(events)
        sdk = n / (time.perf_counter() - t0)

        blobs = [(e.user_id.encode(), encode(e)) for e in events]
        topic = settings.topic("events")
        bare = make_producer(settings)
        t0 = time.perf_counter()
        for key, value in blobs:
            produce(bare, topic, value, key)
        bare.flush(60)
        raw = n / (time.perf_counter() - t0)
    finally:
        delete_topics(admin, [s for s in (settings.topic(t) for t in (
            "events", "recommendations", "snapshots", "items", "dead_letter", "changelog"))])
    return {"events": n, "sdk_events_per_s": sdk, "bare_producer_events_per_s": raw,
            "sdk_over_bare": sdk / raw}


def table(r: dict) -> str:
    return (f"{r['events']:,} events, acknowledged (acks=all, idempotent)\n"
            f"{'EventProducer (validate + encode + send)':44} {r['sdk_events_per_s']:12,.0f} ev/s\n"
            f"{'bare confluent-kafka Producer (pre-encoded)':44} "
            f"{r['bare_producer_events_per_s']:12,.0f} ev/s\n"
            f"{'SDK / bare':44} {r['sdk_over_bare']:12.2f}")
