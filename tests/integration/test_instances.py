"""A process refuses to start next to a live twin with its instance id, and starts once the ghost
of its own killed predecessor has timed out of the group."""

from __future__ import annotations

import subprocess
import sys
import threading
import time

import pytest
from confluent_kafka import Consumer
from confluent_kafka.admin import AdminClient, NewTopic

from consumers.instances import DuplicateInstance, ensure_unique

SESSION_S = 6.0  # the broker's minimum session timeout


@pytest.fixture
def group(bootstrap: str, unique_prefix: str) -> tuple[str, str]:
    topic = unique_prefix + "in"
    admin = AdminClient({"bootstrap.servers": bootstrap})  # kept while its future runs
    admin.create_topics([NewTopic(topic, 2, 1)])[topic].result(30)
    return topic, unique_prefix + "workers"


def member(bootstrap: str, topic: str, group: str, client_id: str) -> dict:
    return {"bootstrap.servers": bootstrap, "group.id": group, "client.id": client_id,
            "session.timeout.ms": int(SESSION_S * 1000), "heartbeat.interval.ms": 500}


def join(consumer: Consumer, topic: str) -> None:
    consumer.subscribe([topic])
    deadline = time.monotonic() + 30
    while not consumer.assignment() and time.monotonic() < deadline:
        consumer.poll(0.2)
    assert consumer.assignment()


@pytest.mark.slow
def test_a_live_twin_is_refused_with_a_clear_error(bootstrap, group):
    topic, name = group
    twin = Consumer(member(bootstrap, topic, name, "refold.worker.w0"))
    join(twin, topic)
    stop = threading.Event()
    beating = threading.Thread(target=lambda: [twin.poll(0.2) for _ in iter(stop.is_set, True)])
    beating.start()
    admin = AdminClient({"bootstrap.servers": bootstrap})
    try:
        ensure_unique(admin, name, "refold.worker.w1", "w1", SESSION_S)  # another id: fine
        with pytest.raises(DuplicateInstance, match=r"instance id 'w0' is in use by a live "
                                                    r"member of group .*REFOLD_INSTANCE_ID"):
            ensure_unique(admin, name, "refold.worker.w0", "w0", SESSION_S)
    finally:
        stop.set()
        beating.join()
        twin.close()
    ensure_unique(admin, name, "refold.worker.w0", "w0", SESSION_S)  # it left: fine


KILLED_MEMBER = """
import sys, time
from confluent_kafka import Consumer
c = Consumer({"bootstrap.servers": sys.argv[1], "group.id": sys.argv[3],
              "client.id": "refold.worker.w0", "session.timeout.ms": 6000})
c.subscribe([sys.argv[2]])
while not c.assignment():
    c.poll(0.2)
print("joined", flush=True)
time.sleep(600)
"""


@pytest.mark.slow
def test_the_ghost_of_a_killed_predecessor_is_waited_out(bootstrap, group):
    topic, name = group
    proc = subprocess.Popen([sys.executable, "-c", KILLED_MEMBER, bootstrap, topic, name],
                            stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "joined"
    finally:
        proc.kill()  # no LeaveGroup: the member stays until its session times out
        proc.wait()
    admin = AdminClient({"bootstrap.servers": bootstrap})
    t0 = time.monotonic()
    ensure_unique(admin, name, "refold.worker.w0", "w0", SESSION_S)
    assert time.monotonic() - t0 < SESSION_S + 5.0
