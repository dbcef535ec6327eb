"""A real Prometheus scrapes a running pipeline; every dashboard and rule expression has data.

A worker (`refold consume --follow-snapshots`) and a refitter (`refold refit`) run as processes on
a replay of a synthetic world through the real broker, with a few bad messages for the
dead-letter path; a bridge (`refold bridge`) maps a few of the same events, written in a shop's
own format to a topic of its own, into the events topic. The refitter publishes a snapshot
mid-replay, which the worker then serves. `refold report` then draws the run from the same
Prometheus.
Prometheus scrapes them every second with the repository's rules, as a shop's Prometheus would:
under a job name of its own and with no target labels, so whatever the rules and dashboards need
must come from the processes themselves (and every label they read must be one the processes
export). Then each PromQL expression of the dashboards and the rule file is evaluated through
the HTTP API. A condition (an alert, or an annotation that keeps only non-zero samples) is empty
while the pipeline is healthy, so for those each operand must have data instead.
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import pytest
from confluent_kafka import Producer

from consumers.recs_view import RecommendationsView
from producers.replay import replay
from producers.sdk import EventProducer
from producers.synth import SynthConfig, generate
from refold.core.config import Settings
from refold.core.schemas import Event
from refold.report import PrometheusSource, render

from .helpers import create_topic
from .prometheus import Prometheus, free_port, label_references, promql_expressions

pytestmark = pytest.mark.slow

_SPLIT = re.compile(r"\s*(==|!=|>=|<=|>|<)\s*(bool\s+)?|\s+(and|or|unless)\s+")


def operands(expr: str) -> list[str]:
    """The parts of `expr` joined at top level by comparisons or set operators (else [expr]).

    >>> operands('a{x!="1"} > 0 unless sum(rate(b[1m])) > bool 2')
    ['a{x!="1"}', '0', 'sum(rate(b[1m]))', '2']
    """
    parts, depth, quote, start, i = [], 0, "", 0, 0
    text = " ".join(expr.split())
    while i < len(text):
        c = text[i]
        if quote:
            quote = "" if c == quote and text[i - 1] != "\\" else quote
        elif c in "\"'":
            quote = c
        elif c in "([{":
            depth += 1
        elif c in ")]}":
            depth -= 1
        elif depth == 0 and (m := _SPLIT.match(text, i)):
            parts.append(text[start:i].strip())
            start = i = m.end()
            continue
        i += 1
    parts.append(text[start:].strip())
    return [p for p in parts if p]


SCRAPED = '{__name__=~"up|(refold|process|python)_.+"}'
"""Every scraped series (not the recording rules' `refold:...` results)."""


def send_bad_messages(settings: Settings, n: int = 5) -> None:
    producer = Producer({"bootstrap.servers": settings.bootstrap})
    for i in range(n):
        producer.produce(settings.topic("events"), b"not json", key=f"bad{i}".encode())
    producer.flush(10)


def show_lists(settings: Settings, users: int = 150) -> None:
    """Report impressions of the first three items of some users' lists, each user then clicking
    (and some buying) one shown item: the loop's metrics get data."""
    with RecommendationsView(settings) as view, EventProducer(settings) as producer:
        assert view.catch_up(30)
        for n, user in enumerate(sorted(view)[:users]):
            rec = view.get(user)
            if rec is None or rec.cause is None or len(rec.items) < 3:
                continue
            at = rec.cause.event_time + 1.0
            producer.impression(rec, 3, shown_at=at, impression_id=f"x{n}")
            producer.flush()
            item = rec.items[n % 3].item_id
            for kind in ("click", "purchase")[: 1 + n % 2]:
                producer.send(Event(event_id=f"x{n}-{kind}", user_id=user, item_id=item,
                                    event_type=kind, event_time=at + 10.0))


def value(prom: Prometheus, expr: str) -> float:
    result = prom.query(expr)
    return float(result[0]["value"][1]) if result else float("nan")


def wait_for(prom: Prometheus, expr: str, ok, timeout: float, logs: Path) -> None:
    deadline = time.monotonic() + timeout
    while not ok(value(prom, expr)):
        if time.monotonic() > deadline:
            tails = {p.name: p.read_text()[-1500:] for p in logs.glob("*.log")}
            pytest.fail(f"{expr} = {value(prom, expr)} after {timeout:.0f} s; logs: {tails}")
        time.sleep(0.5)


def without_data(prom: Prometheus) -> list[str]:
    """The expressions that have no data (conditions: that have an operand without data)."""
    missing = []
    for where, expr in promql_expressions():
        if prom.query(expr):
            continue
        parts = operands(expr)
        empty = [part for part in parts if not prom.query(part)]
        if len(parts) == 1 or empty:
            missing.append(f"{where}: {expr} (empty: {empty})")
    return missing


SHOP_TYPES = {"view": "pv", "click": "click", "add_to_cart": "atc", "purchase": "buy"}


def send_shop_records(settings: Settings, events: list[Event]) -> None:
    """`events` as a shop writes them (its field and type names, milliseconds), one of its
    heartbeats (skipped) and a broken record (a dead letter), to the bridge's source topic."""
    topic = settings.bridge_source_topic
    assert topic
    create_topic(settings.bootstrap, topic)
    producer = Producer({"bootstrap.servers": settings.bootstrap})
    for ev in events:
        record = {"uid": ev.user_id, "sku": ev.item_id, "act": SHOP_TYPES.get(ev.event_type, "pv"),
                  "ts": int(ev.event_time * 1000)}
        producer.produce(topic, json.dumps(record).encode())
    producer.produce(topic, json.dumps({"uid": "u0", "sku": "x", "act": "hb", "ts": 1}).encode())
    producer.produce(topic, b"{broken")
    producer.flush(10)


def test_every_dashboard_and_rule_expression_has_data(make_settings, refold_process, tmp_path,
                                                       unique_prefix):
    settings = make_settings(events_partitions=2, bridge_source_topic=f"{unique_prefix}shop",
                             bridge_group=f"{unique_prefix}bridge")
    log, catalog, _ = generate(SynthConfig(n_users=300, n_items=200, n_events=6000, seed=3))
    events = list(log.iter_events("synth"))
    ports = {"consumer": free_port(), "refitter": free_port(), "bridge": free_port()}
    targets: dict[str, dict[str, str]] = {f"127.0.0.1:{port}": {} for port in ports.values()}
    procs = []
    with Prometheus(targets, job="shop-pods") as prom:
        try:
            procs.append(refold_process(
                settings, "refit", "--every-events", "3000", "--every-seconds", "0",
                "--factors", "8", "--iterations", "3", "--metrics-port", str(ports["refitter"]),
                log=tmp_path / "refitter.log"))
            procs.append(refold_process(
                settings, "consume", "--batch-size", "100", "--follow-snapshots",
                "--metrics-port", str(ports["consumer"]), log=tmp_path / "consumer.log"))
            procs.append(refold_process(
                settings, "bridge", "--field", "user_id=uid", "--field", "item_id=sku",
                "--field", "event_type=act", "--field", "event_time=ts", "--type", "pv=view",
                "--type", "atc=add_to_cart", "--type", "buy=purchase", "--skip-type", "hb",
                "--time-unit", "ms", "--instance-id", "b0", "--metrics-port",
                str(ports["bridge"]), log=tmp_path / "bridge.log"))
            wait_for(prom, "count(up == 1)", lambda v: v == 3, 60, tmp_path)
            send_shop_records(settings, events[:40])
            with EventProducer(settings) as producer:
                replay(events[:3000], producer, catalog=catalog, progress=False)
            send_bad_messages(settings)
            # the refitter publishes v1 at 3000 events; the worker swaps it in
            serving = ('max(refold_model_version and on (job, instance) '
                       'refold_build_info{component="consumer"})')
            wait_for(prom, serving, lambda v: v >= 1, 120, tmp_path)
            show_lists(settings)
            with EventProducer(settings) as producer:
                replay(events[3000:], producer, progress=False)
            wait_for(prom, "sum(refold_events_consumed_total)", lambda v: v >= len(events), 120,
                     tmp_path)
            wait_for(prom, "sum(refold_impression_clicks_total)", lambda v: v > 0, 30, tmp_path)
            wait_for(prom, "sum(refold_online_evaluated_events_total)", lambda v: v > 0, 30,
                     tmp_path)
            wait_for(prom, "sum(refold_bridge_records_total)", lambda v: v >= 42, 60, tmp_path)
            # Rates and derivatives need a few scrapes and rule evaluations: retry a while.
            deadline = time.monotonic() + 30
            while (missing := without_data(prom)) and time.monotonic() < deadline:
                time.sleep(2)
            # the labels the processes export (this Prometheus adds none but job and instance)
            exported = set(prom.api("labels", **{"match[]": SCRAPED}))
            now = time.time()
            last = render(PrometheusSource(prom.url, now - 120, now, step=1), tmp_path / "r.png")
        finally:
            codes = [proc.stop() for proc in procs]
    assert not missing, "no data for:\n" + "\n".join(missing)
    unknown = sorted({f"{where}: {label}" for where, label in label_references()
                      if label not in exported})
    assert not unknown, f"labels no process exports ({sorted(exported)}):\n" + "\n".join(unknown)
    assert codes == [0, 0, 0], codes
    assert last["model versions: serving"] >= 1 and last["model versions: published"] >= 1
    assert (tmp_path / "r.png").stat().st_size > 10_000
