"""/metrics, /healthz and /ready over real HTTP, and the states behind them."""

from __future__ import annotations

import json
import urllib.error
import urllib.request

import pytest
from prometheus_client import CollectorRegistry, Counter

from refold.core.probes import Probes, serve_http


def get(port: int, path: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode()


@pytest.fixture
def served():
    registry = CollectorRegistry()
    Counter("refold_test_things", "Things.", registry=registry).inc(3)
    now = [100.0]
    probes = Probes(stall_seconds=60, clock=lambda: now[0], starting="catalog not read yet")
    server, port = serve_http("127.0.0.1", 0, probes, registry)
    yield probes, port, now
    server.shutdown()
    server.server_close()


def test_endpoints_answer_what_the_probes_hold(served):
    probes, port, _ = served
    status, text = get(port, "/metrics")
    assert status == 200 and "refold_test_things_total 3.0" in text
    assert get(port, "/healthz")[0] == 200
    status, body = get(port, "/ready")
    assert status == 503
    assert json.loads(body)["waiting_for"] == {"starting": "catalog not read yet"}
    probes.clear("starting")
    assert get(port, "/ready") == (200, json.dumps(
        {"live": True, "ready": True, "waiting_for": {}}))
    probes.hold("restoring", "restoring 3 partition(s)")
    assert get(port, "/ready")[0] == 503 and get(port, "/healthz")[0] == 200
    assert get(port, "/nothing")[0] == 404


def test_a_stalled_loop_is_not_live_and_a_beat_revives_it(served):
    probes, port, now = served
    probes.clear("starting")
    now[0] += 61
    status, body = get(port, "/healthz")
    assert status == 503 and "main loop silent for 61 s" in json.loads(body)["error"]
    assert get(port, "/ready")[0] == 503
    probes.beat()
    assert get(port, "/healthz")[0] == 200 and get(port, "/ready")[0] == 200


def test_a_fatal_error_is_neither_live_nor_ready(served):
    probes, port, _ = served
    probes.clear("starting")
    probes.fail("fenced: another worker runs with instance id w-0")
    status, body = get(port, "/healthz")
    assert status == 503 and json.loads(body)["error"].startswith("fenced")
    assert get(port, "/ready")[0] == 503


def test_a_taken_port_is_an_error(served):
    _, port, _ = served
    with pytest.raises(OSError):
        serve_http("127.0.0.1", port, Probes())
