"""Shared fixtures: a Kafka to talk to, and topic names that no other test uses."""

from __future__ import annotations

import os
import uuid
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest

INTEGRATION = Path(__file__).parent / "integration"

# Processes the tests start serve their metrics on a free port, not their role's fixed one
# (several test runs share this machine).
os.environ.setdefault("REFOLD_METRICS_PORT", "0")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Everything under tests/integration talks to a real broker: mark it `integration`."""
    for item in items:
        if INTEGRATION in item.path.parents:
            item.add_marker(pytest.mark.integration)


@pytest.fixture(scope="session")
def bootstrap() -> str:
    """`REFOLD_BOOTSTRAP_SERVERS` if set, else the local broker, started if it is not running.

    The local broker is left running at the end: the next run reuses it (`make broker-stop`
    or `refold broker stop` ends it).
    """
    from refold.broker import ensure_bootstrap
    from refold.core.config import load_settings

    return ensure_bootstrap(load_settings())


@pytest.fixture
def unique_prefix(request: pytest.FixtureRequest) -> Iterator[str]:
    """A topic prefix of this test alone (`t-1a2b3c4d.`), so tests never share topics.

    A test that also talks to the broker (`bootstrap`) has its topics deleted at teardown: a
    broker that keeps every test's partitions runs out of file handles after some thousands
    of runs.
    """
    prefix = f"t-{uuid.uuid4().hex[:8]}."
    yield prefix
    if "bootstrap" in request.fixturenames:
        delete_prefixed(request.getfixturevalue("bootstrap"), prefix)


def delete_prefixed(bootstrap: str, prefix: str) -> None:
    """Delete every topic whose name starts with `prefix` (best effort: a leftover topic is
    harmless to other tests, which use their own prefixes)."""
    from confluent_kafka.admin import AdminClient

    admin = AdminClient({"bootstrap.servers": bootstrap})
    try:
        names = [t for t in admin.list_topics(timeout=10).topics if t.startswith(prefix)]
        if names:
            for future in admin.delete_topics(names, operation_timeout=30).values():
                future.result(timeout=30)
    except Exception as exc:  # cleanup must not fail the test it follows
        warnings.warn(f"topics {prefix}* not deleted: {exc}", stacklevel=1)
