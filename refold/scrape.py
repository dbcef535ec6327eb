"""Reading Prometheus /metrics pages: parse, sum over processes, and histogram quantiles.

The demo's live line, `refold report` without a Prometheus, and the tests read refold's metrics
the way Prometheus does, through these functions. `Samples` keys each sample by its name and its
labels (a frozenset of pairs); functions that sum take one page or several (one per process).

>>> page = parse('# TYPE x counter\\nx_total{a="1"} 3\\nx_total{a="2"} 4\\n'
...              '# TYPE h histogram\\nh_bucket{le="0.1"} 0\\nh_bucket{le="0.2"} 10\\n'
...              'h_bucket{le="+Inf"} 10\\nh_count 10\\nh_sum 1.5\\n')
>>> total(page, "x_total"), total([page, page], "x_total", a="2")
(7.0, 8.0)
>>> histogram_quantile(page, "h", 0.5)
0.15
"""

from __future__ import annotations

import math
import urllib.request
from collections.abc import Iterable, Mapping

from prometheus_client.parser import text_string_to_metric_families

Labels = frozenset[tuple[str, str]]
Samples = dict[tuple[str, Labels], float]
"""A page's samples: `{(sample name, labels): value}`."""


def parse(text: str, extra: Mapping[str, str] | None = None) -> Samples:
    """Every sample of a /metrics page; `extra` labels are added to each (e.g. `instance`)."""
    out: Samples = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, frozenset({**s.labels, **(extra or {})}.items()))] = s.value
    return out


def scrape(url: str, timeout: float = 2.0, extra: Mapping[str, str] | None = None) -> Samples:
    """The samples of the page at `url` (empty if it does not answer)."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            return parse(resp.read().decode(), extra)
    except OSError:
        return {}


def _pages(samples: Samples | Iterable[Samples]) -> list[Samples]:
    return [samples] if isinstance(samples, dict) else list(samples)


def values(samples: Samples | Iterable[Samples], name: str, **labels: str) -> list[float]:
    """The values of sample `name` whose labels include `labels`, over one page or several."""
    want = set(labels.items())
    return [v for page in _pages(samples) for (n, ls), v in page.items()
            if n == name and want <= ls]


def total(samples: Samples | Iterable[Samples], name: str, **labels: str) -> float:
    """The sum of `values` (0 when there is none)."""
    return float(sum(values(samples, name, **labels)))


def buckets(samples: Samples | Iterable[Samples], name: str, **labels: str
            ) -> dict[float, float]:
    """Histogram `name`'s cumulative bucket counts `{upper bound: count}`, summed over pages."""
    want, out = set(labels.items()), {}
    for page in _pages(samples):
        for (n, ls), v in page.items():
            if n == name + "_bucket" and want <= ls:
                le = float(dict(ls)["le"])
                out[le] = out.get(le, 0.0) + v
    return out


def bucket_quantile(q: float, buckets: Mapping[float, float]) -> float:
    """Prometheus's `histogram_quantile` on cumulative bucket counts {upper bound: count}:
    linear within the bucket, the highest finite bound for the +Inf bucket, NaN when empty.

    >>> bucket_quantile(0.5, {0.1: 0, 0.2: 10, math.inf: 10})
    0.15
    """
    bounds = sorted(buckets)
    if not bounds or buckets[bounds[-1]] <= 0:
        return math.nan
    rank, lower, below = q * buckets[bounds[-1]], 0.0, 0.0
    for ub in bounds:
        count = buckets[ub]
        if count >= rank:
            if math.isinf(ub):
                return lower  # the highest finite bound, as Prometheus does
            return round(lower + (ub - lower) * (rank - below) / max(count - below, 1e-12), 12)
        lower, below = ub, count
    return lower


def histogram_quantile(samples: Samples | Iterable[Samples], name: str, q: float,
                       **labels: str) -> float:
    """The q-quantile of histogram `name`, its buckets summed over pages."""
    return bucket_quantile(q, buckets(samples, name, **labels))
