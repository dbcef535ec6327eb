"""The local broker of refold.broker: start, stop, and what refold needs of Kafka (transactions,
compacted topics). The shared broker (`bootstrap`) is never stopped here: the stop/start test
runs a second broker of its own, in a temporary home on other ports."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest
from confluent_kafka import KafkaError, Producer
from confluent_kafka.admin import AdminClient

from refold.broker import BrokerError, LocalBroker, answers_metadata
from refold.core.config import Settings, load_settings
from tests.integration.helpers import create_topic, free_port, read_all

local_only = pytest.mark.skipif(
    bool(os.environ.get("REFOLD_BOOTSTRAP_SERVERS")),
    reason="REFOLD_BOOTSTRAP_SERVERS names a cluster: the local broker is not used")


def free_to_bind(port: int) -> bool:
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


@pytest.fixture
def private_settings(tmp_path: Path) -> Settings:
    """A broker of its own (on free ports) that shares the jars of the default home."""
    libs = LocalBroker(load_settings()).ensure_libs()
    (tmp_path / libs.parent.name).symlink_to(libs.parent)
    return Settings(home=str(tmp_path), broker_port=free_port(), controller_port=free_port())


def test_broker_answers_metadata(bootstrap: str) -> None:
    metadata = AdminClient({"bootstrap.servers": bootstrap}).list_topics(timeout=10)
    assert metadata.brokers
    assert metadata.cluster_id


@local_only
def test_start_is_idempotent(bootstrap: str) -> None:
    broker = LocalBroker(load_settings())
    first, second = broker.start(), broker.start()
    assert first.running and second.running
    assert first.pid == second.pid == broker.status().pid


def test_transactional_producer_commits_and_aborts(bootstrap: str, unique_prefix: str) -> None:
    topic = unique_prefix + "tx"
    create_topic(bootstrap, topic)
    producer = Producer({"bootstrap.servers": bootstrap, "transactional.id": topic})
    producer.init_transactions(30)
    producer.begin_transaction()
    producer.produce(topic, value=b"aborted")
    producer.abort_transaction(30)
    producer.begin_transaction()
    producer.produce(topic, value=b"committed")
    producer.commit_transaction(30)
    assert read_all(bootstrap, topic, expected=1) == [b"committed"]


def test_compacted_topic_needs_keys(bootstrap: str, unique_prefix: str) -> None:
    """The broker really compacts this topic: it accepts keyed records and refuses keyless."""
    topic = unique_prefix + "compact"
    create_topic(bootstrap, topic, **{"cleanup.policy": "compact"})
    producer = Producer({"bootstrap.servers": bootstrap})
    errors: list[KafkaError | None] = []
    for key in (b"user-1", None):
        producer.produce(topic, key=key, value=b"v", on_delivery=lambda err, _m: errors.append(err))
        producer.flush(30)
    keyed, keyless = errors
    assert keyed is None
    assert keyless is not None and keyless.code() == KafkaError.INVALID_RECORD


@local_only
def test_stop_frees_the_port_and_start_works_again(private_settings: Settings) -> None:
    settings = private_settings.model_copy(update={"broker_jvm_options": "-XX:MaxGCPauseMillis=25"})
    broker = LocalBroker(settings)
    try:
        started = broker.start()
        assert started.running and answers_metadata(broker.bootstrap)
        # the extra JVM options reach the broker's JVM, which runs the chosen collector (ZGC
        # by default) and logs its work
        cmdline = Path(f"/proc/{started.pid}/cmdline").read_bytes().split(b"\0")
        assert b"-XX:MaxGCPauseMillis=25" in cmdline and b"-XX:+UseZGC" in cmdline
        assert "Z Garbage Collector" in (broker.logs / "gc.log").read_text()
        create_topic(broker.bootstrap, "kept")

        stopped = broker.stop()
        assert not stopped.running and stopped.pid is None
        assert free_to_bind(private_settings.broker_port)
        assert broker.status().pid is None

        broker = LocalBroker(settings.model_copy(update={"broker_gc": "g1"}))
        again = broker.start()
        assert again.running and again.pid != started.pid
        cmdline = Path(f"/proc/{again.pid}/cmdline").read_bytes().split(b"\0")
        assert b"-XX:+UseG1GC" in cmdline and b"-XX:+UseZGC" not in cmdline
        topics = AdminClient({"bootstrap.servers": broker.bootstrap}).list_topics(timeout=10)
        assert "kept" in topics.topics  # the storage was formatted once and kept
    finally:
        broker.stop()
    assert free_to_bind(private_settings.broker_port)


@local_only
def test_start_refuses_a_port_held_by_something_else(tmp_path: Path) -> None:
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        port = squatter.getsockname()[1]
        broker = LocalBroker(Settings(home=str(tmp_path), broker_port=port,
                                      controller_port=free_port()))
        with pytest.raises(BrokerError, match="not this broker"):
            broker.start()
