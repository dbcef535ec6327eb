"""The Prometheus config and rules pass promtool, and the alerts fire on the series they watch."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest
import yaml

from .prometheus import (
    DASHBOARDS,
    ROOT,
    RULES,
    Prometheus,
    PrometheusError,
    binaries,
    label_references,
    labels_of,
    promql_expressions,
)

CONFIG = ROOT / "deploy" / "prometheus" / "prometheus.yml"


@pytest.fixture(scope="module")
def promtool() -> str:
    return binaries()[1]


def run(promtool: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([promtool, *args], capture_output=True, text=True, timeout=60)


def test_config_is_valid_and_keeps_the_compose_targets(promtool):
    result = run(promtool, "check", "config", str(CONFIG))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 rule files found" in result.stdout
    job = yaml.safe_load(CONFIG.read_text())["scrape_configs"][0]
    targets = [t for sc in job["static_configs"] for t in sc["targets"]]
    assert targets == ["refitter:9401"]
    assert "relabel_configs" not in job  # no label the processes do not export themselves
    assert job["dns_sd_configs"] == [  # every scaled replica; the bridge when its profile is on
        {"names": ["consumer"], "type": "A", "port": 9400, "refresh_interval": "10s"},
        {"names": ["bridge"], "type": "A", "port": 9402, "refresh_interval": "10s"}]
    assert job["file_sd_configs"][0]["files"]


def test_rules_are_valid(promtool):
    result = run(promtool, "check", "rules", str(RULES))
    assert result.returncode == 0, result.stdout + result.stderr


def alert(name: str, at: str, summary: str = "", **labels: str) -> dict:
    """Expect alert `name` at `at` with these labels and summary; no labels: expect none."""
    firing = [{"exp_labels": labels, "exp_annotations": {"summary": summary}}]
    return {"eval_time": at, "alertname": name, "exp_alerts": firing if labels else []}


UNIT_TESTS = [
    {   # events flow, no lists come out; then a healthy series for the dead-letter ratio
        "interval": "1m",
        "input_series": [
            {"series": 'refold_events_consumed_total{event_type="click",job="refold"}',
             "values": "0+600x30"},
            {"series": 'refold_recommendations_published_total{source="popular",job="refold"}',
             "values": "0x30"},
            {"series": 'refold_dead_letters_total{reason="not_json",job="refold"}',
             "values": "0+60x30"},
        ],
        "alert_rule_test": [
            alert("RefoldNoRecommendationsPublished", "4m"),
            alert("RefoldNoRecommendationsPublished", "10m", "events are consumed but no "
                  "recommendations have been published for 5 minutes", severity="critical"),
            alert("RefoldDeadLetterRate", "12m",
                  "9.091% of incoming messages go to the dead-letter topic", severity="warning"),
        ],
    },
    {   # lag that keeps growing past the floor
        "interval": "1m",
        "input_series": [
            {"series": 'refold_consumer_lag_messages{group="g",topic="ev",partition="0",'
                       'job="refold"}',
             "values": "0+200x40"},
            {"series": 'refold_consumer_lag_messages{group="g",topic="ev",partition="1",'
                       'job="refold"}',
             "values": "500x40"},
        ],
        "alert_rule_test": [
            alert("RefoldConsumerLagGrowing", "30m",
                  "lag of g on ev is above 1000 messages and growing",
                  severity="warning", group="g", topic="ev"),
        ],
    },
    {   # a hit-rate drop, a drift detection, an old snapshot, a failed refit, a target down;
        # the processes scraped under a job name of the shop's, with no target labels: the
        # component comes from refold_build_info, and another job's target down is not refold's
        "interval": "1m",
        "input_series": [
            {"series": 'refold_online_evaluated_events_total{job="refold"}',
             "values": "0+100x420"},
            {"series": 'refold_online_hits_total{job="refold"}',
             "values": "0+30x360 10800+10x60"},
            {"series": 'refold_drift_detections_total{detector="hit_rate",direction="down",'
                       'job="refold"}', "values": "0x400 1x20"},
            {"series": 'refold_drift_detections_total{detector="hit_rate",direction="up",'
                       'job="refold"}', "values": "0x400 1x20"},
            {"series": 'refold_snapshot_created_timestamp_seconds{job="pods",instance="w"}',
             "values": "1x420"},
            {"series": 'refold_build_info{job="pods",instance="w",component="consumer",'
                       'version="1"}', "values": "1x420"},
            {"series": 'refold_snapshot_created_timestamp_seconds{job="pods",instance="r"}',
             "values": "1x400"},  # the refitter's own snapshot is no stale serving
            {"series": 'refold_build_info{job="pods",instance="r",component="refitter",'
                       'version="1"}', "values": "1x400"},  # down afterwards: no samples
            {"series": 'refold_refits_total{outcome="failed",job="refold"}',
             "values": "0x400 1x20"},
            {"series": 'up{job="pods",instance="r"}', "values": "1x400 0x20"},
            {"series": 'up{job="pods",instance="w"}', "values": "1x420"},
            {"series": 'up{job="node",instance="n"}', "values": "0x420"},  # not refold's
            {"series": 'refold_guard_automated_users{job="refold",instance="w"}',
             "values": "0x395 12x25"},
        ],
        "alert_rule_test": [
            alert("RefoldHitRateDrop", "350m"),
            alert("RefoldHitRateDrop", "415m", "online hit rate 10% is 20% below its 6-hour level",
                  severity="warning"),
            alert("RefoldDriftDetected", "405m",
                  "drift detected by hit_rate in the last 15 minutes",
                  severity="info", detector="hit_rate", direction="down"),
            alert("RefoldRefitFailing", "405m", "a refit failed in the last hour",
                  severity="warning"),
            alert("RefoldTargetDown", "405m", "refold refitter at r cannot be scraped",
                  severity="warning", instance="r", job="pods", component="refitter"),
            alert("RefoldSnapshotStale", "415m", "w serves a snapshot more than 6 hours old",
                  severity="warning", instance="w", job="pods", component="consumer"),
            alert("RefoldBotsDetected", "400m"),
            alert("RefoldBotsDetected", "410m", "12 users judged automated in the last hour: "
                  "their events no longer count for others", severity="warning"),
        ],
    },
]


UNIT_TESTS.append(
    {   # click-through on the first slots halves; then impressions stop while lists go on
        "interval": "1m",
        "input_series": [
            {"series": 'refold_impression_slots_total{slot="1",source="collaborative",'
                       'explored="false",job="refold"}', "values": "0+100x1600"},
            {"series": 'refold_impression_clicks_total{slot="1",source="collaborative",'
                       'explored="false",job="refold"}',
             "values": "0+20x1500 30000+10x100"},
            {"series": 'refold_impressions_total{source="collaborative",policy="none",'
                       'job="refold"}', "values": "0+30x1540 46200x60"},
            {"series": 'refold_recommendations_published_total{source="collaborative",'
                       'job="refold"}', "values": "0+50x1600"},
        ],
        "alert_rule_test": [
            alert("RefoldCtrAt3Drop", "1490m"),
            alert("RefoldCtrAt3Drop", "1595m", "CTR@3 10% is 20% below its 24-hour level",
                  severity="warning"),
            alert("RefoldImpressionsStopped", "1560m"),
            alert("RefoldImpressionsStopped", "1595m", "lists are published but no impression "
                  "was reported for 30 minutes", severity="warning"),
        ],
    })


def test_alerts_fire_on_the_series_they_watch(promtool, tmp_path: Path):
    spec = {"rule_files": [str(RULES)], "evaluation_interval": "1m", "tests": UNIT_TESTS}
    path = tmp_path / "rules_test.yml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    result = run(promtool, "test", "rules", str(path))
    assert result.returncode == 0, result.stdout + result.stderr


def test_dashboards_are_provisionable():
    provider = yaml.safe_load(
        (ROOT / "deploy/grafana/provisioning/dashboards/refold.yml").read_text())["providers"][0]
    boards = [json.loads(p.read_text()) for p in sorted(DASHBOARDS.glob("*.json"))]
    assert provider["options"]["path"] == "/var/lib/grafana/dashboards"
    assert len(boards) == 4 and len({b["uid"] for b in boards}) == 4
    for board in boards:
        for panel in board["panels"]:
            grid = panel["gridPos"]
            assert grid["x"] + grid["w"] <= 24, (board["uid"], panel["title"])


def dashboard_queries(board: dict) -> list[dict]:
    """Everything of a dashboard that queries a datasource: panels, targets, annotations,
    template variables."""
    annotations = [a for a in board["annotations"]["list"] if a.get("builtIn") != 1]
    variables = [v for v in board["templating"]["list"] if v["type"] == "query"]
    panels = [p for p in board["panels"] if p.get("datasource") is not None]
    return annotations + variables + panels + [t for p in panels for t in p.get("targets", [])]


SELECTOR = re.compile(r'(?<![:\w])((?:refold|process)_\w+|up)\b(?!\s*\()(\{[^}]*\})?')


def test_dashboards_work_on_an_existing_grafana():
    """A $datasource variable (no datasource uid of ours), $job and $instance filters on every
    series, and no label that only refold's own scrape config adds."""
    for path in sorted(DASHBOARDS.glob("*.json")):
        board = json.loads(path.read_text())
        variables = {v["name"]: v for v in board["templating"]["list"]}
        assert variables["datasource"]["type"] == "datasource"
        assert variables["datasource"]["query"] == "prometheus"
        for name in ("job", "instance"):
            assert variables[name]["type"] == "query" and variables[name]["includeAll"]
            assert "refold_build_info" in variables[name]["definition"]
        for thing in dashboard_queries(board):
            assert thing["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, thing
        exprs = [t["expr"] for t in dashboard_queries(board) if "expr" in t]
        assert exprs and '"uid": "prometheus"' not in path.read_text()
        for expr in exprs:
            assert "role" not in expr and "refold:" not in expr, (path.name, expr)
            for match in SELECTOR.finditer(expr):
                assert match.group(2) and 'job=~"$job"' in match.group(2), (path.name, expr)
                assert 'instance=~"$instance"' in match.group(2), (path.name, expr)


def test_every_dashboard_and_rule_expression_parses():
    """A Prometheus without targets still parses every query: a syntax error is `bad_data`."""
    errors = []
    with Prometheus({}) as prom:
        for where, expr in promql_expressions():
            try:
                prom.query(expr)
            except PrometheusError as exc:
                errors.append(f"{where}: {exc}")
    assert not errors, "\n".join(errors)


def test_label_references_name_what_each_expression_reads():
    """The check of test_prometheus.py (every label read is one the processes export) can fail:
    a label only a scrape config would add is found wherever it hides."""
    assert labels_of('refold:snapshot_age_seconds{role="consumer"} > 6 * 3600') == {"role"}
    assert labels_of('max by (job, role) (x{a=~"b=c,d"}) * on (job) group_left (role) y') == {
        "job", "role", "a"}
    assert labels_of("label_values(refold_build_info{job=~\"$job\"}, instance)") == {
        "job", "instance"}
    assert labels_of("{{ $labels.role }} at {{ $labels.instance }}") == {"role", "instance"}
    read = {label for _, label in label_references()}
    assert {"component", "le", "group", "topic", "instance", "job"} <= read
    assert "role" not in read
