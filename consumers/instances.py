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
from collections.abc import Callable

from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient

from refold.core.errors import ConsumerError

log = logging.getLogger(__name__)


class DuplicateInstance(ConsumerError):
    """Another live process uses this instance id in the same group."""


def members_with(admin: AdminClient, group: str, client_id: str,
                 timeout: float = 10.0) -> list[str]:
    """The hosts of the group's members whose client.id is `client_id`."""
    try:
        description = admin.describe_consumer_groups([group], request_timeout=timeout)[
            group].result(timeout)
    except KafkaException as exc:
        if "GROUP_ID_NOT_FOUND" in str(exc):
            return []
        raise
    return [m.host for m in description.members if m.client_id == client_id]


def ensure_unique(admin: AdminClient, group: str, client_id: str, instance_id: str,
                  session_timeout: float, clock: Callable[[], float] = time.monotonic,
                  sleep: Callable[[float], None] = time.sleep) -> None:
    """Return once no member of `group` has `client_id`; `DuplicateInstance` if one stays
    longer than a session timeout (it heartbeats: a live twin, not a ghost)."""
    deadline = clock() + session_timeout + 5.0
    hosts = members_with(admin, group, client_id)
    if hosts:
        log.info("group %s has a member with instance id %s (%s): waiting up to %.0f s for it "
                 "to time out, in case it is this instance's previous run", group, instance_id,
                 ", ".join(hosts), session_timeout + 5.0)
    while hosts:
        if clock() > deadline:
            raise DuplicateInstance(
                f"instance id {instance_id!r} is in use by a live member of group {group!r} "
                f"(host {', '.join(hosts)}): give every replica its own instance id "
                "(--instance-id, REFOLD_INSTANCE_ID; the default is the host name)")
        sleep(1.0)
        hosts = members_with(admin, group, client_id)
