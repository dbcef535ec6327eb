"""Kafka client helpers: the one place that builds producer, consumer and admin clients.

Every client refold creates gets, in this order (later wins): refold's tuning defaults, the
user's librdkafka properties (`[kafka.client]`, then `[kafka.consumer|producer|admin]`: security,
tuning, anything librdkafka's CONFIGURATION.md lists), what refold's guarantees need (idempotent
producers, read_committed consumers that never commit by themselves), and the call site's own
additions (a transactional.id, a group). Its `client.id` is `refold.<purpose>.<instance id>`.
Clients are created by these functions only when called: no network in module import.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from confluent_kafka import (
    Consumer,
    KafkaError,
    KafkaException,
    Message,
    Producer,
    TopicCollection,
    TopicPartition,
)
from confluent_kafka.admin import AclOperation, AdminClient

from refold.core.config import REDACTED, Settings, is_secret
from refold.core.errors import ConfigError, KafkaFatalError

log = logging.getLogger(__name__)


TRANSIENT_AUTH = ("handshake failed: Local: Broker transport failure",
                  "handshake failed: Local: Timed out")
"""Authentication errors that are a connection lost during the SASL handshake (a broker starting
or under load), not a refusal: librdkafka reconnects and tries again."""


def error_cb(err: KafkaError) -> None:
    """Escalate what cannot heal by itself; log the rest (librdkafka retries transient errors).

    >>> error_cb(KafkaError(KafkaError._AUTHENTICATION, "SASL SCRAM-SHA-512 mechanism handshake "
    ...          "failed: Local: Broker transport failure: broker's supported mechanisms: (n/a)"))
    >>> error_cb(KafkaError(KafkaError._AUTHENTICATION, "SASL authentication error: "
    ...          "Authentication failed due to invalid credentials"))
    Traceback (most recent call last):
    ...
    refold.core.errors.KafkaFatalError: authentication failed: SASL authentication error: ...
    """
    auth = (KafkaError._AUTHENTICATION, KafkaError.SASL_AUTHENTICATION_FAILED)
    if err.code() in auth and any(t in err.str() for t in TRANSIENT_AUTH):
        log.warning("kafka: %s (a connection lost during authentication: retrying)", err.str())
        return
    if err.code() in auth:
        raise KafkaFatalError(f"authentication failed: {err.str()} (check the client's "
                              "credentials: sasl.username/sasl.password, certificates)")
    if err.fatal():
        raise KafkaFatalError(str(err))
    if err.code() == KafkaError._ALL_BROKERS_DOWN:
        log.warning("all brokers down: %s (retrying)", err)
    else:
        log.debug("kafka: %s", err)


# -- client properties: refold's defaults < the user's tables < what refold's guarantees need

PRODUCER_DEFAULTS: dict[str, Any] = {"linger.ms": 5, "compression.type": "lz4"}
CONSUMER_DEFAULTS: dict[str, Any] = {"auto.offset.reset": "earliest",
                                     "partition.assignment.strategy": "cooperative-sticky"}
REQUIRED: dict[str, dict[str, Any]] = {
    "producer": {"enable.idempotence": True, "acks": "all"},
    "consumer": {"enable.auto.commit": False, "enable.auto.offset.store": False,
                 "isolation.level": "read_committed"},
    "admin": {},
}
"""What exactly-once and nothing-lost rest on: offsets committed with their effects, only
committed outputs read, no duplicates on retries. A user's table may repeat, not change them."""
MANAGED = {"bootstrap.servers": "set bootstrap_servers instead",
           "client.id": "refold names each client after its role and instance",
           "group.id": "refold sets each consumer's group (consumer_group, refit_group ...)",
           "transactional.id": "refold derives it from the instance id"}


def client_id(settings: Settings, purpose: str) -> str:
    """`refold.<purpose>.<instance id>`: what broker logs, quotas and group listings show.

    >>> client_id(Settings(instance_id="w-0"), "worker")
    'refold.worker.w-0'
    """
    return f"refold.{purpose}.{settings.instance_id}"


def user_properties(settings: Settings, kind: str) -> dict[str, Any]:
    """The user's librdkafka properties of a `kind` of client, checked against what refold
    manages or needs; secrets read from their files. `ConfigError` names the property."""
    props = settings.client_properties(kind)
    for name, value in props.items():
        if name in MANAGED:
            raise ConfigError(f"kafka property {name} ([kafka.{_table(settings, kind, name)}])"
                              f": {MANAGED[name]}")
        need = REQUIRED[kind].get(name)
        if need is not None and str(value).lower() != str(need).lower():
            raise ConfigError(f"kafka property {name} = {value!r} ([kafka."
                              f"{_table(settings, kind, name)}]): refold needs {need!r} for its "
                              "delivery guarantees")
    return props


def _table(settings: Settings, kind: str, name: str) -> str:
    return kind if name in getattr(settings, f"kafka_{kind}") else "client"


def _base(settings: Settings, kind: str, purpose: str) -> dict[str, Any]:
    return {"bootstrap.servers": settings.bootstrap, "client.id": client_id(settings, purpose),
            "error_cb": error_cb}


def producer_config(settings: Settings, extra: Mapping[str, Any] | None = None, *,
                    purpose: str = "producer") -> dict[str, Any]:
    """An idempotent producer: acks=all, no duplicates or reordering on retries, lz4 batches."""
    size = {"message.max.bytes": max(1_000_000, settings.max_message_bytes * 2)}
    return {**_base(settings, "producer", purpose), **PRODUCER_DEFAULTS, **size,
            **user_properties(settings, "producer"), **REQUIRED["producer"], **(extra or {})}


def consumer_config(settings: Settings, group_id: str, extra: Mapping[str, Any] | None = None,
                    *, purpose: str = "consumer") -> dict[str, Any]:
    """A consumer that never commits by itself: callers commit after their effects are durable."""
    return {**_base(settings, "consumer", purpose), **CONSUMER_DEFAULTS,
            **user_properties(settings, "consumer"), **REQUIRED["consumer"],
            "group.id": group_id, **(extra or {})}


def admin_config(settings: Settings, extra: Mapping[str, Any] | None = None, *,
                 purpose: str = "admin") -> dict[str, Any]:
    return {**_base(settings, "admin", purpose), **user_properties(settings, "admin"),
            **(extra or {})}


def _create(kind: type, conf: dict[str, Any]) -> Any:
    """A client, or `ConfigError` naming the property librdkafka refused (secrets not shown)."""
    try:
        return kind(conf)
    except (KafkaException, ValueError, TypeError) as exc:
        raise ConfigError(refused_property(exc, conf)) from None


def refused_property(exc: Exception, conf: Mapping[str, Any]) -> str:
    """librdkafka's refusal of a client configuration, with any secret value masked."""
    text = exc.args[0].str() if exc.args and isinstance(exc.args[0], KafkaError) else str(exc)
    for name, value in conf.items():
        if is_secret(name) and isinstance(value, str) and value:
            text = text.replace(value, REDACTED)
    return f"kafka client configuration: {text}"


def make_producer(settings: Settings, extra: Mapping[str, Any] | None = None, *,
                  purpose: str = "producer") -> Producer:
    return _create(Producer, producer_config(settings, extra, purpose=purpose))


def make_consumer(settings: Settings, group_id: str, extra: Mapping[str, Any] | None = None, *,
                  purpose: str = "consumer") -> Consumer:
    return _create(Consumer, consumer_config(settings, group_id, extra, purpose=purpose))


def make_admin(settings: Settings, extra: Mapping[str, Any] | None = None, *,
               purpose: str = "admin") -> AdminClient:
    return _create(AdminClient, admin_config(settings, extra, purpose=purpose))


def effective_properties(settings: Settings) -> dict[str, dict[str, Any]]:
    """What each kind of client gets (before a call site's own additions), secrets as "***":
    what `refold config` shows."""
    confs = {"consumer": consumer_config(settings, "<group>", purpose="<role>"),
             "producer": producer_config(settings, purpose="<role>"),
             "admin": admin_config(settings, purpose="<role>")}
    return {kind: {k: (REDACTED if is_secret(k) else v) for k, v in sorted(conf.items())
                   if not callable(v)} for kind, conf in confs.items()}


def check_clients(settings: Settings) -> None:
    """Have librdkafka check every kind of client's configuration (names, values, files such
    as ssl.ca.location), without connecting; `ConfigError` names what it refused."""
    quiet = {"log_level": 0, "error_cb": lambda _err: None}
    for kind, conf in (("producer", producer_config(settings, quiet)),
                       ("consumer", consumer_config(settings, "refold-config-check", quiet)),
                       ("admin", admin_config(settings, quiet))):
        conf["bootstrap.servers"] = "127.0.0.1:1"  # nothing to reach: nothing is contacted
        _create({"producer": Producer, "consumer": Consumer, "admin": AdminClient}[kind], conf)


# -- authorization: a missing ACL is a setup error, not a reason to retry

AUTHORIZATION = {KafkaError.TOPIC_AUTHORIZATION_FAILED: "Topic",
                 KafkaError.GROUP_AUTHORIZATION_FAILED: "Group",
                 KafkaError.TRANSACTIONAL_ID_AUTHORIZATION_FAILED: "TransactionalId",
                 KafkaError.CLUSTER_AUTHORIZATION_FAILED: "Cluster"}


def not_authorized(err: KafkaError | None, operation: str, resource: str) -> None:
    """Raise `KafkaFatalError` when `err` says this client's principal lacks an ACL: it names
    the operation and the resource (`WRITE`, `refold.recommendations`)."""
    if err is None or err.code() not in AUTHORIZATION:
        return
    kind = AUTHORIZATION[err.code()]
    raise KafkaFatalError(
        f"not authorized: {operation} on {kind} {resource!r} is not allowed for this client's "
        f"principal ({err.str()}); `refold acls <role> --principal User:...` lists the ACLs "
        "each role needs")


def lacking_write(settings: Settings, topics: Iterable[str], timeout: float = 10.0) -> list[str]:
    """Which of `topics` this principal may not WRITE to, asked of the broker (the topics'
    authorized operations). A transaction that failed on a topic's authorization says only
    that; this names the topic. An empty list when the broker cannot be asked."""
    names = sorted(set(topics))
    if not names:
        return []
    admin = make_admin(settings, purpose="acl-check")
    futures = admin.describe_topics(TopicCollection(names), include_authorized_operations=True,
                                    request_timeout=timeout)
    missing = []
    for name, future in futures.items():
        try:
            allowed = future.result().authorized_operations or []
        except KafkaException as exc:  # no DESCRIBE either: writing is not allowed
            if exc.args[0].code() != KafkaError.TOPIC_AUTHORIZATION_FAILED:
                continue
            allowed = []
        if not {AclOperation.WRITE, AclOperation.ALL} & set(allowed):
            missing.append(name)
    return sorted(missing)


def produce(
    producer: Producer, topic: str, value: bytes | None, key: bytes | str | None = None, *,
    partition: int | None = None, headers: list[tuple[str, bytes]] | None = None,
    on_delivery: Callable[[KafkaError | None, Message], None] | None = None,
    timestamp: int = 0,
) -> None:
    """Produce one message with back-pressure: while librdkafka's local queue is full
    (`BufferError`), serve delivery reports for 50 ms and retry; then serve the callbacks that
    are due (`poll(0)`). `partition` None: the one the key hashes to; `timestamp` (ms) 0: now.
    Every refold producer sends through this."""
    while True:
        try:
            producer.produce(topic, value, key, -1 if partition is None else partition,
                             headers=headers, on_delivery=on_delivery, timestamp=timestamp)
            break
        except BufferError:  # local queue full: let librdkafka send, then retry
            producer.poll(0.05)
    producer.poll(0)


def topic_metadata(client: Consumer | Producer, topic: str, timeout: float = 10.0) -> Any:
    """`client.list_topics(topic)`; when it fails, the client's callbacks are served first, so
    that an authentication failure surfaces as such (`error_cb` raises it), not as a timeout.
    Anything else (a broker down) is raised as it was, for the caller to retry."""
    try:
        return client.list_topics(topic, timeout=timeout).topics[topic]
    except KafkaException:
        client.poll(0)  # serves error_cb, which raises the cause (e.g. authentication failed)
        raise


def where(msg: Message) -> str:
    """`topic[partition]@offset`, the form every log line uses to point at a message."""
    return f"{msg.topic()}[{msg.partition()}]@{msg.offset()}"


def watermarks(consumer: Consumer, topic: str, timeout: float = 10.0) -> dict[int, tuple[int, int]]:
    """`{partition: (low, high)}` offsets of a topic, retrying while new leaders settle."""
    deadline = time.monotonic() + timeout
    parts = sorted(topic_metadata(consumer, topic, timeout).partitions)
    out: dict[int, tuple[int, int]] = {}
    for p in parts:
        while True:
            try:
                out[p] = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=timeout)
                break
            except KafkaException as exc:
                err = exc.args[0]
                if not (err.retriable() or err.code() in _SETTLING) or time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
    return out


_SETTLING = (KafkaError.NOT_LEADER_FOR_PARTITION, KafkaError.LEADER_NOT_AVAILABLE,
             KafkaError.UNKNOWN_TOPIC_OR_PART)
"""Errors of a topic just created, whose leaders the broker is still settling (not flagged
retriable by librdkafka here)."""


def fatal_cause(exc: BaseException) -> KafkaFatalError | None:
    """The fatal error behind confluent-kafka's `SystemError`, if any.

    When a callback raises (`error_cb` raises `KafkaFatalError` for a fatal error, such as being
    fenced) while librdkafka serves another one in the same call (a failed message's delivery
    report, in a `flush`, `poll` or `commit_transaction`), confluent-kafka raises `SystemError`
    with the callback's exception as its `__cause__`.
    """
    cause = exc.__cause__ if isinstance(exc, SystemError) else None
    if isinstance(cause, KafkaFatalError):
        return cause
    if isinstance(cause, KafkaException) and cause.args[0].fatal():
        return KafkaFatalError(str(cause.args[0]))
    return None


def raise_fatal_cause(exc: BaseException) -> None:
    """Raise `fatal_cause(exc)` instead of `exc` when there is one (else return)."""
    cause = fatal_cause(exc)
    if cause is not None:
        raise cause from None
