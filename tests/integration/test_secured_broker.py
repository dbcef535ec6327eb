"""A secured Kafka of the tests' own (SASL_SSL with SCRAM-SHA-512, mTLS, a CA made here, the KRaft
authorizer): refold's role ACLs are what the broker enforces, and refused access says so."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator

import pytest
from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import (
    AclBindingFilter,
    AclOperation,
    AclPermissionType,
    NewTopic,
    ResourcePatternType,
    ResourceType,
)

from refold.acls import ROLES, acl_bindings
from refold.core.config import Settings

from .secured import SecuredBroker


@pytest.fixture(scope="module")
def secured(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SecuredBroker]:
    broker = SecuredBroker(tmp_path_factory.mktemp("secured-kafka")).start()
    try:
        yield broker
    finally:
        broker.stop()


@pytest.fixture
def settings(unique_prefix: str) -> Settings:
    return Settings(topic_prefix=unique_prefix, consumer_group=f"{unique_prefix}foldin")


def grant(broker: SecuredBroker, settings: Settings, role: str, user: str) -> dict[str, str]:
    """A SCRAM user with the ACLs of `role`; returns its client settings."""
    password = uuid.uuid4().hex
    broker.add_user(user, password)
    allow(broker, acl_bindings(settings, role, f"User:{user}"))
    return broker.sasl_config(user, password)


def allow(broker: SecuredBroker, bindings: list) -> None:
    """Create the ACLs and wait until the broker lists them (it learns them from the metadata
    log, a moment after the controller took them)."""
    for fut in broker.admin().create_acls(bindings).values():
        fut.result(30)
    wanted = {b.principal for b in bindings}
    deadline = time.monotonic() + 15
    while not wanted <= listed_principals(broker) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert wanted <= listed_principals(broker)


def create(broker: SecuredBroker, *topics: str) -> None:
    futures = broker.admin().create_topics([NewTopic(t, 1, 1) for t in topics])
    for fut in futures.values():
        fut.result(30)


def produce(conf: dict[str, str], topic: str, value: bytes) -> KafkaError | None:
    """Produce one message; the delivery error (None: delivered)."""
    errors: list[KafkaError | None] = []
    producer = Producer({**conf, "message.timeout.ms": 15000})
    producer.produce(topic, key=b"u1", value=value, on_delivery=lambda e, _m: errors.append(e))
    producer.flush(20)
    return errors[0] if errors else KafkaError(KafkaError._MSG_TIMED_OUT)


def read(conf: dict[str, str], topic: str, expected: int) -> list[bytes] | KafkaError:
    """The first `expected` values of partition 0, or the error that stopped the read."""
    consumer = Consumer({**conf, "group.id": f"{topic}.tail",  # as refold's tailing readers
                         "enable.auto.commit": False})
    consumer.assign([TopicPartition(topic, 0, 0)])
    out: list[bytes] = []
    try:
        for _ in range(40):
            msg = consumer.poll(0.5)
            if msg is not None and msg.error() is not None:
                return msg.error()
            if msg is not None:
                out.append(msg.value())
            if len(out) >= expected:
                break
    finally:
        consumer.close()
    return out


def test_sasl_ssl_scram_round_trip_as_the_super_user(secured: SecuredBroker, settings: Settings):
    topic = settings.topic("events")
    create(secured, topic)
    assert produce(secured.sasl_config(), topic, b"hello") is None
    assert read(secured.sasl_config(), topic, 1) == [b"hello"]


def test_wrong_password_is_an_authentication_error(secured: SecuredBroker):
    seen: list[KafkaError] = []
    conf = {**secured.sasl_config(password="not-the-password"), "error_cb": seen.append}
    consumer = Consumer({**conf, "group.id": "nobody"})
    with pytest.raises(KafkaException):
        consumer.list_topics(timeout=5)
    consumer.poll(1.0)
    consumer.close()
    assert any(e.code() in (KafkaError._AUTHENTICATION, KafkaError.SASL_AUTHENTICATION_FAILED)
               for e in seen), seen


def test_every_role_acl_is_accepted_and_listed(secured: SecuredBroker, settings: Settings):
    bindings = [b for role in ROLES
                for b in acl_bindings(settings, role, f"User:{role}-{settings.topic_prefix}")]
    allow(secured, bindings)
    assert {b.principal for b in bindings} == {f"User:{r}-{settings.topic_prefix}" for r in ROLES}


def listed_principals(broker: SecuredBroker) -> set[str]:
    everything = AclBindingFilter(ResourceType.ANY, None, ResourcePatternType.ANY, None, None,
                                  AclOperation.ANY, AclPermissionType.ANY)
    return {b.principal for b in broker.admin().describe_acls(everything).result(30)}


def test_a_reader_cannot_write_recommendations(secured: SecuredBroker, settings: Settings):
    recs = settings.topic("recommendations")
    create(secured, recs)
    assert produce(secured.sasl_config(), recs, b"list") is None
    reader = grant(secured, settings, "reader", f"reader-{uuid.uuid4().hex[:6]}")
    assert read(reader, recs, 1) == [b"list"]
    err = produce(reader, recs, b"forged")
    assert err is not None and err.code() == KafkaError.TOPIC_AUTHORIZATION_FAILED


def test_mtls_principal_is_the_certificate_subject(secured: SecuredBroker, settings: Settings):
    recs = settings.topic("recommendations")
    create(secured, recs)
    assert produce(secured.sasl_config(), recs, b"list") is None
    refused = read(secured.mtls_config(), recs, 1)  # no ACL for CN=refold-mtls yet
    assert isinstance(refused, KafkaError)
    assert refused.code() in (KafkaError.GROUP_AUTHORIZATION_FAILED,
                              KafkaError.TOPIC_AUTHORIZATION_FAILED)
    allow(secured, acl_bindings(settings, "reader", "User:CN=refold-mtls"))
    assert read(secured.mtls_config(), recs, 1) == [b"list"]
