"""The whole pipeline on a secured Kafka (SASL_SSL, SCRAM-SHA-512, TLS from a CA the test makes,
the KRaft authorizer): each role logs in as its own user with only the ACLs `refold acls` lists,
configured through settings alone (`REFOLD_KAFKA_CLIENT_*`). A worker without write access to the
recommendations topic, and wrong credentials, stop with one clear line instead of looping."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from confluent_kafka import Consumer, TopicPartition
from confluent_kafka.admin import (
    AclBindingFilter,
    AclOperation,
    AclPermissionType,
    ResourcePatternType,
    ResourceType,
)

from refold.acls import acl_bindings, role_acls
from refold.core.config import load_settings
from refold.core.kafka import lacking_write

from .secured import ADMIN, ADMIN_PASSWORD, SecuredBroker
from .test_secured_broker import allow

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def secured(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SecuredBroker]:
    broker = SecuredBroker(tmp_path_factory.mktemp("secured-pipeline")).start()
    try:
        yield broker
    finally:
        broker.stop()


class Cluster:
    """Users with role ACLs on the secured broker, and `refold` commands run as them."""

    def __init__(self, broker: SecuredBroker, prefix: str, home: Path) -> None:
        self.broker, self.prefix, self.home = broker, prefix, home
        self.env = {
            "REFOLD_BOOTSTRAP_SERVERS": broker.bootstrap, "REFOLD_TOPIC_PREFIX": prefix,
            "REFOLD_CONSUMER_GROUP": f"{prefix}foldin", "REFOLD_REFIT_GROUP": f"{prefix}refit",
            "REFOLD_EVENTS_PARTITIONS": "2", "REFOLD_HOME": str(home),
            "REFOLD_KAFKA_CLIENT_SECURITY_PROTOCOL": "SASL_SSL",
            "REFOLD_KAFKA_CLIENT_SASL_MECHANISM": "SCRAM-SHA-512",
            "REFOLD_KAFKA_CLIENT_SSL_CA_LOCATION": str(broker.pki.ca),  # type: ignore[union-attr]
        }

    def user(self, role: str, *, without: str | None = None) -> dict[str, str]:
        """A new SCRAM user with the ACLs of `role` (but the one printed as `without`); its
        environment, with the password in a file."""
        name, password = f"{role}-{uuid.uuid4().hex[:6]}", uuid.uuid4().hex
        self.broker.add_user(name, password)
        settings = load_settings(env=self.env)
        wanted = [a for a in role_acls(settings, role) if str(a) != without]
        bindings = acl_bindings(settings, role, f"User:{name}")
        allow(self.broker, [b for b, a in zip(bindings, role_acls(settings, role), strict=True)
                            if a in wanted])
        secret = self.home / f"{name}.password"
        secret.write_text(password + "\n")
        return {**self.env, "REFOLD_KAFKA_CLIENT_SASL_USERNAME": name,
                "REFOLD_KAFKA_CLIENT_SASL_PASSWORD_FILE": str(secret)}

    def run(self, env: dict[str, str], *args: str, timeout: float = 120.0
            ) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "refold", *args], env={**os.environ, **env},
                              capture_output=True, text=True, timeout=timeout)

    def spawn(self, env: dict[str, str], log: Path, *args: str) -> subprocess.Popen:
        return subprocess.Popen([sys.executable, "-m", "refold", *args],
                                env={**os.environ, **env}, stdout=log.open("w"),
                                stderr=subprocess.STDOUT)


@pytest.fixture
def cluster(secured: SecuredBroker, unique_prefix: str, tmp_path: Path) -> Cluster:
    c = Cluster(secured, unique_prefix, tmp_path)
    admin = c.user("admin")
    done = c.run(admin, "topics", "create")
    assert done.returncode == 0, done.stdout + done.stderr
    # the admin role sees the topics it made (it waited for them, not for a timeout)
    assert "metadata still lacks" not in done.stderr, done.stderr
    return c


def stop(proc: subprocess.Popen) -> int:
    if proc.poll() is None:
        proc.terminate()
        try:
            return proc.wait(60)
        except subprocess.TimeoutExpired:
            proc.kill()
    return proc.wait(10)


def test_the_pipeline_runs_over_sasl_ssl_with_least_privilege(cluster: Cluster, tmp_path):
    refitter = cluster.spawn(cluster.user("refitter"), tmp_path / "refitter.log", "refit",
                             "--every-events", "1500", "--every-seconds", "0", "--factors", "8",
                             "--iterations", "3", "--metrics-port", "0")
    worker = cluster.spawn(cluster.user("worker"), tmp_path / "worker.log", "consume",
                           "--instance-id", "w0", "--batch-size", "200", "--metrics-port", "0",
                           "--idle-exit", "20", "--snapshot-wait", "1")
    try:
        sent = cluster.run(cluster.user("producer"), "produce", "synth", "--users", "200",
                           "--items", "100", "--events", "3000", "--seed", "3")
        assert sent.returncode == 0, sent.stdout + sent.stderr
        assert worker.wait(240) == 0, (tmp_path / "worker.log").read_text()[-3000:]
    finally:
        stop(worker)
        refitter_exit = stop(refitter)
    assert refitter_exit == 0, (tmp_path / "refitter.log").read_text()[-3000:]
    recs = cluster.run(cluster.user("reader"), "recs", "--all", "--json")
    assert recs.returncode == 0, recs.stderr
    lists = [json.loads(line) for line in recs.stdout.splitlines()]
    assert len(lists) >= 150  # one per user who acted
    assert max(rec.get("model_version") or 0 for rec in lists) >= 1  # the refitter's model
    worker_log = (tmp_path / "worker.log").read_text()
    assert "SASL" not in worker_log or "authentication" not in worker_log.lower()


def test_a_worker_without_write_access_stops_with_a_clear_line(cluster: Cluster, tmp_path):
    recs = f"Topic:LITERAL:{cluster.prefix}recommendations WRITE"
    no_recs = cluster.user("worker", without=recs)
    sent = cluster.run(cluster.user("producer"), "produce", "synth", "--users", "20",
                       "--items", "20", "--events", "100", "--seed", "1")
    assert sent.returncode == 0, sent.stderr
    done = cluster.run(no_recs, "consume", "--instance-id", "w9", "--metrics-port", "0",
                       "--idle-exit", "30", "--snapshot-wait", "1", timeout=180)
    last = error_line(done.stderr)
    assert done.returncode == 69, done.stderr[-3000:]
    assert last.startswith("refold consume: not authorized: WRITE on Topic "
                           f"'{cluster.prefix}recommendations'"), last
    assert done.stderr.count("not authorized") <= 2  # said once, not in a loop


def test_the_broker_names_the_topics_a_principal_may_not_write(cluster: Cluster):
    """What a worker asks when its transaction failed on authorization without naming a topic
    (a fatal transaction can purge the delivery report that would)."""
    no_recs = cluster.user("worker", without=f"Topic:LITERAL:{cluster.prefix}recommendations WRITE")
    settings = load_settings(env={k: v for k, v in no_recs.items() if k.startswith("REFOLD_")})
    topics = [settings.topic(name) for name in ("recommendations", "changelog", "events")]
    assert lacking_write(settings, topics) == sorted([settings.topic("recommendations"),
                                                      settings.topic("events")])


def test_wrong_credentials_stop_with_a_clear_line(cluster: Cluster, tmp_path):
    wrong = tmp_path / "wrong.password"
    wrong.write_text("not-the-password\n")
    env = {**cluster.user("reader"), "REFOLD_KAFKA_CLIENT_SASL_PASSWORD_FILE": str(wrong)}
    done = cluster.run(env, "recs", "--all", timeout=60)
    assert done.returncode == 69, done.stderr
    last = error_line(done.stderr)
    assert "authentication" in last.lower(), last


def test_refold_acls_apply_creates_what_a_role_needs(cluster: Cluster, tmp_path):
    """`refold acls ROLE --apply`, run as an administrator, grants a user exactly the role's ACLs:
    refused before, the user then does the role's work; another user stays refused."""
    admin = {**cluster.env, "REFOLD_KAFKA_CLIENT_SASL_USERNAME": ADMIN,  # a super user
             "REFOLD_KAFKA_CLIENT_SASL_PASSWORD_FILE": str(secret(tmp_path, ADMIN_PASSWORD))}
    producer, other = (bare_user(cluster, tmp_path, name) for name in ("shop", "stranger"))
    synth = ("produce", "synth", "--users", "20", "--items", "20", "--events", "100", "--seed", "1")
    refused = cluster.run(producer, *synth)
    assert refused.returncode == 69, refused.stderr[-2000:]
    assert "not authorized" in error_line(refused.stderr), refused.stderr[-2000:]

    grant = ("acls", "producer", "--principal", "User:shop", "--apply")
    itself = cluster.run(producer, *grant)  # granting takes ALTER on the cluster
    assert itself.returncode == 69, itself.stderr[-2000:]
    assert "not authorized: ALTER on Cluster" in error_line(itself.stderr)

    done = cluster.run(admin, *grant)
    assert done.returncode == 0, done.stdout + done.stderr
    wanted = role_acls(load_settings(env=cluster.env), "producer")
    created = [line for line in done.stdout.splitlines() if line.startswith("created: ")]
    assert len(created) == len(wanted) and all("User:shop" in line for line in created), created
    wait_for_acls(cluster.broker, "User:shop", len(wanted))

    sent = cluster.run(producer, *synth)
    assert sent.returncode == 0, sent.stdout + sent.stderr
    assert written(cluster.broker, f"{cluster.prefix}events", partitions=2) == 100
    still = cluster.run(other, *synth)
    assert still.returncode == 69, still.stderr[-2000:]


def error_line(stderr: str) -> str:
    """refold's own last line ("refold <command>: ..."): librdkafka's threads may still log
    after it."""
    mine = [line for line in stderr.strip().splitlines() if line.startswith("refold ")]
    return mine[-1] if mine else stderr[-2000:]


def secret(directory: Path, password: str) -> Path:
    path = directory / f"{uuid.uuid4().hex[:6]}.password"
    path.write_text(password + "\n")
    return path


def bare_user(cluster: Cluster, directory: Path, name: str) -> dict[str, str]:
    """A SCRAM user without any ACL; its environment."""
    password = uuid.uuid4().hex
    cluster.broker.add_user(name, password)
    return {**cluster.env, "REFOLD_KAFKA_CLIENT_SASL_USERNAME": name,
            "REFOLD_KAFKA_CLIENT_SASL_PASSWORD_FILE": str(secret(directory, password))}


def written(broker: SecuredBroker, topic: str, partitions: int) -> int:
    """Messages in `topic` (the super user's view of its high watermarks)."""
    consumer = Consumer({**broker.sasl_config(), "group.id": f"{topic}.count"})
    try:
        return sum(consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1]
                   for p in range(partitions))
    finally:
        consumer.close()


def wait_for_acls(broker: SecuredBroker, principal: str, n: int, timeout: float = 15.0) -> None:
    """Until the broker lists `n` ACLs of `principal` (it learns them from the metadata log)."""
    everything = AclBindingFilter(ResourceType.ANY, None, ResourcePatternType.ANY, principal,
                                  None, AclOperation.ANY, AclPermissionType.ANY)
    deadline = time.monotonic() + timeout
    while len(broker.admin().describe_acls(everything).result(30)) < n:
        assert time.monotonic() < deadline, f"the broker lists fewer than {n} ACLs of {principal}"
        time.sleep(0.2)
