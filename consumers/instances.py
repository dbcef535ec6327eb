"""One live process per instance id: refuse to start next to a live twin, once and clearly.

A worker's (or bridge's) instance id names its transactional producer, so two live processes with
the same id fence each other: each restart of the one fences the other, forever. Before it joins
its group, a process asks the group who is in it. A member whose `client.id` is this process's
(`refold.<role>.<instance id>`, set by the client factory) is either a live twin or the ghost of
this instance's previous run (killed before it left the group): a ghost disappears once its
session times out, a twin does not. So the check waits up to the session timeout (plus a
margin) for such a member to go, and raises `DuplicateInstance` if it is still there.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from typing import Any

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient

from refold.core.config import Settings
from refold.core.errors import ConsumerError
from refold.core.kafka import client_id, consumer_config, make_admin

log = logging.getLogger(__name__)


class DuplicateInstance(ConsumerError):
    """Another live process uses this instance id in the same group."""


COORDINATOR_BUSY = frozenset({
    KafkaError.COORDINATOR_LOAD_IN_PROGRESS, KafkaError.COORDINATOR_NOT_AVAILABLE,
    KafkaError.NOT_COORDINATOR, KafkaError._TIMED_OUT, KafkaError._TRANSPORT})
"""Answers of a group coordinator that is not ready yet (a broker just started loads its
groups), asked again."""


def members(admin: AdminClient, group: str, timeout: float = 10.0, patience: float = 60.0,
            sleep: Callable[[float], None] = time.sleep) -> list[Any]:
    """The group's members (`client_id`, `host`, ...); none when the group does not exist.
    A coordinator that is not ready is asked again for up to `patience` seconds."""
    deadline = time.monotonic() + patience
    while True:
        try:
            description = admin.describe_consumer_groups([group], request_timeout=timeout)[
                group].result(timeout)
            return list(description.members)
        except KafkaException as exc:
            if "GROUP_ID_NOT_FOUND" in str(exc):
                return []
            err = exc.args[0]
            if err.code() not in COORDINATOR_BUSY or time.monotonic() > deadline:
                raise
            log.info("describing group %s: %s (asking again)", group, err)
            sleep(0.5)


def ensure_unique(admin: AdminClient, group: str, client_id: str, instance_id: str,
                  session_timeout: float, clock: Callable[[], float] = time.monotonic,
                  sleep: Callable[[float], None] = time.sleep) -> None:
    """Return once no member of `group` has `client_id`; `DuplicateInstance` if one stays
    longer than a session timeout (it heartbeats: a live twin, not a ghost)."""
    def hosts() -> list[str]:
        return [m.host for m in members(admin, group) if m.client_id == client_id]

    _wait_gone(hosts, session_timeout, clock, sleep,
               f"group {group} has a member with instance id {instance_id}",
               "this instance's previous run", lambda found: DuplicateInstance(
                   f"instance id {instance_id!r} is in use by a live member of group {group!r} "
                   f"(host {found}): give every replica its own instance id "
                   "(--instance-id, REFOLD_INSTANCE_ID; the default is the host name)"))


def refuse_twin(settings: Settings, group: str, role: str,
                consumer_extra: Mapping[str, Any] | None = None) -> None:
    """`ensure_unique` for a process of `role` about to join `group` with its consumer's
    session timeout: stop (`DuplicateInstance`) rather than fence a live twin."""
    conf = consumer_config(settings, group, consumer_extra)
    session = float(conf.get("session.timeout.ms", 45_000)) / 1000.0
    ensure_unique(make_admin(settings, purpose=f"{role}-check"), group,
                  client_id(settings, role), settings.instance_id, session)


def ensure_alone(admin: AdminClient, group: str, what: str, session_timeout: float,
                 clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep) -> None:
    """For a singleton (the refitter): return once `group` has no member; `DuplicateInstance`
    if one stays longer than a session timeout (a live process, not a killed one's ghost)."""
    def found() -> list[str]:
        return [f"{m.client_id}@{m.host}" for m in members(admin, group)]

    _wait_gone(found, session_timeout, clock, sleep, f"group {group} has member(s)",
               f"this {what}'s previous run", lambda who: DuplicateInstance(
                   f"another {what} is running in group {group!r} ({who}): stop it first; "
                   "two would publish colliding versions"))


def _wait_gone(find: Callable[[], list[str]], session_timeout: float,
               clock: Callable[[], float], sleep: Callable[[float], None], what: str,
               ghost: str, refusal: Callable[[str], DuplicateInstance]) -> None:
    """Poll `find` every second until it finds nothing; past a session timeout (and a
    margin), raise `refusal(what it found)`."""
    wait = session_timeout + 5.0
    deadline = clock() + wait
    found = find()
    if found:
        log.info("%s (%s): waiting up to %.0f s for it to time out, in case it is %s", what,
                 ", ".join(found), wait, ghost)
    while found:
        if clock() > deadline:
            raise refusal(", ".join(found))
        sleep(1.0)
        found = find()
