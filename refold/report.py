"""A run's main time series as one PNG: throughput, latency, hit rate, drift, model versions.

The series come from one of two sources that answer the same `Line` specs:

- `PrometheusSource`: range queries against a Prometheus HTTP API (the PromQL each spec makes);
- `ScrapeSource`: scrapes /metrics endpoints every `interval` seconds for a while and computes the
  same rates, quantiles and ratios itself, for runs without a Prometheus.

>>> line = Line("fold-in p99", "quantile", "refold_foldin_latency_seconds", q=0.99)
>>> line.promql(window="1m")
'histogram_quantile(0.99, sum by (le) (rate(refold_foldin_latency_seconds_bucket[1m])))'
"""

from __future__ import annotations

import json
import math
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np

from refold.core.errors import AppError
from refold.scrape import Samples, bucket_quantile, buckets, parse, values

Series = tuple[np.ndarray, np.ndarray]
"""(Unix times, values)."""


@dataclass(frozen=True)
class Line:
    """One plotted line: what to compute from which metric, summed over processes."""

    label: str
    kind: Literal["rate", "gauge", "quantile", "ratio"]
    metric: str
    labels: dict[str, str] = field(default_factory=dict)
    q: float = 0.99
    denominator: str = ""  # for "ratio": rate(metric) / rate(denominator)
    agg: Literal["sum", "max", "avg"] = "sum"  # across processes, for gauges
    component: str = ""  # only processes of this component (refold_build_info), e.g. "consumer"

    def _selector(self, name: str) -> str:
        inner = ",".join(f'{k}="{v}"' for k, v in sorted(self.labels.items()))
        return f"{name}{{{inner}}}" if inner else name

    def _of_component(self, expr: str) -> str:
        """`expr` kept for the processes of `component`, which each process names itself."""
        if not self.component:
            return expr
        return f'{expr} and on (job, instance) refold_build_info{{component="{self.component}"}}'

    def _rate(self, name: str, window: str) -> str:
        return self._of_component(f"rate({self._selector(name)}[{window}])")

    def promql(self, window: str = "1m") -> str:
        """The PromQL expression of this line.

        >>> Line("v", "gauge", "refold_model_version", agg="max", component="consumer").promql()
        'max(refold_model_version and on (job, instance) refold_build_info{component="consumer"})'
        """
        if self.kind == "rate":
            return f"sum({self._rate(self.metric, window)})"
        if self.kind == "quantile":
            buckets = self._rate(self.metric + "_bucket", window)
            return f"histogram_quantile({self.q}, sum by (le) ({buckets}))"
        if self.kind == "ratio":
            return (f"sum({self._rate(self.metric, window)}) / "
                    f"sum({self._rate(self.denominator, window)})")
        return f"{self.agg}({self._of_component(self._selector(self.metric))})"

    def filters(self) -> dict[str, str]:
        """The labels a scraped sample must have (`ScrapeSource` labels each process's samples
        with its component)."""
        return {**self.labels, "component": self.component} if self.component else self.labels


@dataclass(frozen=True)
class Panel:
    title: str
    unit: str
    lines: tuple[Line, ...]


PANELS = (
    Panel("throughput", "per second", (
        Line("events consumed", "rate", "refold_events_consumed_total"),
        Line("lists published", "rate", "refold_recommendations_published_total"),
        Line("dead letters", "rate", "refold_dead_letters_total"))),
    Panel("latency", "seconds", (
        Line("fold-in p50", "quantile", "refold_foldin_latency_seconds", q=0.5),
        Line("fold-in p99", "quantile", "refold_foldin_latency_seconds", q=0.99),
        Line("event to list p99", "quantile", "refold_event_to_recommendation_seconds", q=0.99))),
    Panel("online hit rate @K", "share", (
        Line("from counters", "ratio", "refold_online_hits_total",
             denominator="refold_online_evaluated_events_total"),
        Line("window (per-user mean)", "gauge", "refold_online_hit_ratio", agg="avg"))),
    Panel("drift statistics", "statistic", (
        Line("ADWIN hit-rate estimate", "gauge", "refold_drift_statistic",
             {"detector": "hit_rate"}, agg="max"),
        Line("PSI item popularity", "gauge", "refold_drift_statistic",
             {"detector": "item_popularity_psi"}, agg="max"),
        Line("PSI event types", "gauge", "refold_drift_statistic",
             {"detector": "event_type_psi"}, agg="max"),
        Line("snapshot churn", "gauge", "refold_drift_statistic",
             {"detector": "snapshot_churn"}, agg="max"))),
    Panel("model versions", "version", (
        Line("serving", "gauge", "refold_model_version", agg="max", component="consumer"),
        Line("published", "gauge", "refold_model_version", agg="max", component="refitter"))),
)


class ReportError(AppError):
    """A source could not be read."""


def _get_json(url: str, timeout: float = 10.0) -> dict:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return json.load(r)
    except (OSError, ValueError) as exc:
        raise ReportError(f"{url}: {exc}") from exc


class PrometheusSource:
    """Range queries over [start, end] with `step` seconds against a Prometheus at `url`."""

    def __init__(self, url: str, start: float, end: float, step: float | None = None) -> None:
        self.url = url.rstrip("/")
        self.start, self.end = start, end
        self.step = step or max(5.0, (end - start) / 300)
        self.window = f"{max(60, int(4 * self.step))}s"  # a rate needs a few scrapes per window

    def series(self, line: Line) -> Series:
        params = {"query": line.promql(self.window), "start": f"{self.start:.3f}",
                  "end": f"{self.end:.3f}", "step": f"{self.step:g}"}
        body = _get_json(f"{self.url}/api/v1/query_range?{urllib.parse.urlencode(params)}")
        if body.get("status") != "success":
            raise ReportError(f"{params['query']}: {body.get('error')}")
        result = body["data"]["result"]
        if not result:
            return np.zeros(0), np.zeros(0)
        values = np.asarray(result[0]["values"], dtype=np.float64)
        return values[:, 0], values[:, 1]


def _component(samples: Samples) -> str | None:
    for (name, labels), _ in samples.items():
        if name == "refold_build_info":
            return dict(labels).get("component")
    return None


class ScrapeSource:
    """Scrapes `urls` every `interval` seconds for `duration` seconds, then answers lines."""

    def __init__(self, urls: Sequence[str], fetch: Callable[[str], str] | None = None) -> None:
        self.urls = [u if "://" in u else f"http://{u}" for u in urls]
        self.urls = [u if u.rstrip("/").endswith("/metrics") else u.rstrip("/") + "/metrics"
                     for u in self.urls]
        self.fetch = fetch or (lambda u: urllib.request.urlopen(u, timeout=5).read().decode())
        self.times: list[float] = []
        self.scrapes: list[Samples] = []
        self.window = 2

    def scrape(self, now: float | None = None) -> None:
        """One scrape of every endpoint; an endpoint that does not answer is left out."""
        merged: Samples = {}
        for i, url in enumerate(self.urls):
            try:
                samples = parse(self.fetch(url), {"instance": str(i)})
            except OSError:
                continue
            component = _component(samples)
            extra = frozenset({("component", component)}) if component else frozenset()
            for (name, labels), v in samples.items():
                merged[(name, labels | extra)] = v
        self.times.append(time.time() if now is None else now)
        self.scrapes.append(merged)

    def run(self, duration: float, interval: float) -> None:
        end = time.monotonic() + duration
        while True:
            self.scrape()
            if time.monotonic() + interval > end:
                return
            time.sleep(interval)

    def _total(self, k: int, name: str, labels: dict[str, str], agg: str = "sum") -> float:
        vals = values(self.scrapes[k], name, **labels)
        if not vals:
            return math.nan
        return {"sum": sum, "max": max, "avg": lambda x: sum(x) / len(x)}[agg](vals)

    def series(self, line: Line) -> Series:
        t = np.asarray(self.times)
        vals = np.full(len(t), math.nan)
        labels = line.filters()
        for k in range(len(t)):
            j = max(0, k - self.window)  # the rate window: the last `window` scrape intervals
            if line.kind == "gauge":
                vals[k] = self._total(k, line.metric, labels, line.agg)
            elif k > j and line.kind == "quantile":
                now, then = (buckets(self.scrapes[x], line.metric, **labels) for x in (k, j))
                vals[k] = bucket_quantile(line.q, {le: now[le] - then.get(le, 0.0) for le in now})
            elif k > j:
                dt = t[k] - t[j]
                num = self._total(k, line.metric, labels) - self._total(j, line.metric, labels)
                if line.kind == "rate":
                    vals[k] = num / dt if dt > 0 else math.nan
                else:
                    den = (self._total(k, line.denominator, labels)
                           - self._total(j, line.denominator, labels))
                    vals[k] = num / den if den > 0 else math.nan
        keep = ~np.isnan(vals)
        return t[keep], vals[keep]


def render(source: PrometheusSource | ScrapeSource, out: str | Path,
           panels: Sequence[Panel] = PANELS, title: str = "refold run") -> dict[str, float]:
    """Draw `panels` from `source` into the PNG `out`; returns the last value of every line."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    data = [[(line, *source.series(line)) for line in panel.lines] for panel in panels]
    starts = [t[0] for lines in data for _, t, _ in lines if len(t)]
    t0 = min(starts) if starts else 0.0
    fig, axes = plt.subplots(len(panels), 1, figsize=(11, 2.6 * len(panels)), sharex=True,
                             squeeze=False)
    last: dict[str, float] = {}
    for ax, panel, lines in zip(axes[:, 0], panels, data, strict=True):
        for j, (line, t, v) in enumerate(lines):
            if len(t):
                style = "steps-post" if panel.unit == "version" else "default"
                ax.plot((t - t0) / 60.0, v, label=line.label, drawstyle=style,
                        linestyle=("-", "--", ":", "-.")[j % 4])  # overlapping lines stay visible
                last[f"{panel.title}: {line.label}"] = float(v[-1])
        ax.set_title(panel.title, loc="left", fontsize=10)
        ax.set_ylabel(panel.unit)
        ax.grid(alpha=0.3)
        if ax.lines:
            ax.legend(fontsize=8, loc="upper left")
        else:
            ax.text(0.5, 0.5, "no data", transform=ax.transAxes, ha="center", color="grey")
    axes[-1, 0].set_xlabel("minutes since the first sample")
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(out, dpi=100)
    plt.close(fig)
    return last
