"""Shared fixtures: a Kafka to talk to, and topic names that no other test uses."""

from __future__ import annotations

import os
import uuid
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
def unique_prefix() -> str:
    """A topic prefix of this test alone (`t-1a2b3c4d.`), so tests never share topics."""
    return f"t-{uuid.uuid4().hex[:8]}."
