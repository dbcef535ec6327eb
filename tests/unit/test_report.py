"""refold report: local rates and quantiles from scrapes, PromQL of the lines, the PNG."""

from __future__ import annotations

import math

import pytest
from click.testing import CliRunner
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from refold.report import PANELS, Line, ScrapeSource, render
from refold.scrape import bucket_quantile, parse


def test_bucket_quantile_matches_prometheus_interpolation():
    buckets = {0.01: 10.0, 0.1: 60.0, 1.0: 100.0, math.inf: 100.0}
    assert bucket_quantile(0.1, buckets) == pytest.approx(0.01)
    assert bucket_quantile(0.5, buckets) == pytest.approx(0.01 + 0.09 * 40 / 50)
    assert bucket_quantile(0.99, {0.5: 0.0, math.inf: 10.0}) == 0.5
    assert math.isnan(bucket_quantile(0.5, {1.0: 0.0, math.inf: 0.0}))


def test_every_line_makes_promql():
    exprs = [line.promql("2m") for panel in PANELS for line in panel.lines]
    assert 'sum(rate(refold_events_consumed_total[2m]))' in exprs
    assert ('max(refold_model_version and on (job, instance) '
            'refold_build_info{component="consumer"})') in exprs
    assert all(e.count("(") == e.count(")") for e in exprs)


class FakeProcess:
    """A registry whose /metrics text the scrape source reads through `fetch`."""

    def __init__(self) -> None:
        self.reg = CollectorRegistry()
        self.events = Counter("refold_events_consumed", "x", ["event_type"], registry=self.reg)
        self.latency = Histogram("refold_foldin_latency_seconds", "x", registry=self.reg,
                                 buckets=(0.01, 0.1, 1.0))
        self.version = Gauge("refold_model_version", "x", registry=self.reg)
        self.info = Gauge("refold_build_info", "x", ["component"], registry=self.reg)
        self.info.labels(component="consumer").set(1)

    def text(self, url: str) -> str:
        return generate_latest(self.reg).decode()


def test_scrape_source_computes_rates_quantiles_and_gauges():
    proc = FakeProcess()
    src = ScrapeSource(["127.0.0.1:1"], fetch=proc.text)
    assert src.urls == ["http://127.0.0.1:1/metrics"]
    for k in range(5):
        proc.events.labels(event_type="click").inc(100)
        proc.events.labels(event_type="view").inc(50)
        for _ in range(10):
            proc.latency.observe(0.05)
        proc.version.set(k)
        src.scrape(now=1000.0 + 10 * k)
    t, rate = src.series(Line("ev", "rate", "refold_events_consumed_total"))
    assert t.tolist() == [1010.0, 1020.0, 1030.0, 1040.0]
    assert rate.tolist() == pytest.approx([15.0] * 4)
    _, p50 = src.series(Line("p50", "quantile", "refold_foldin_latency_seconds", q=0.5))
    assert p50 == pytest.approx(0.01 + 0.09 * 0.5)
    _, version = src.series(Line("v", "gauge", "refold_model_version", agg="max",
                                 component="consumer"))
    assert version.tolist() == [0, 1, 2, 3, 4]
    assert len(src.series(Line("v", "gauge", "refold_model_version", component="refitter"))[0]) == 0


def test_parse_metrics_adds_labels():
    samples = parse("# TYPE x counter\nx_total{a=\"1\"} 3\n", {"instance": "0"})
    assert samples == {("x_total", frozenset({("a", "1"), ("instance", "0")})): 3.0}


@pytest.mark.slow
def test_render_writes_a_png_with_no_data_panels(tmp_path):
    proc = FakeProcess()
    src = ScrapeSource(["x:1"], fetch=proc.text)
    for k in range(3):
        proc.events.labels(event_type="click").inc(10)
        src.scrape(now=float(k))
    out = tmp_path / "r.png"
    last = render(src, out)
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert last["throughput: events consumed"] == pytest.approx(10.0)
    assert not any(k.startswith("latency") for k in last)


def test_cli_needs_exactly_one_source():
    from refold.cli import cli
    from refold.cli import report as _report  # noqa: F401  (registers the command)

    result = CliRunner().invoke(cli, ["report"])
    assert result.exit_code != 0 and "--prometheus" in result.output
