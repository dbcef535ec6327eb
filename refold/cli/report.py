"""`refold report`: a run's main time series as a PNG, from Prometheus or from /metrics scrapes."""

from __future__ import annotations

import re
import time

import click

from refold.cli import cli

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def seconds(text: str) -> float:
    """'90s', '30m', '2h', '1d' or a number of seconds."""
    m = re.fullmatch(r"\s*([\d.]+)\s*([smhd]?)\s*", text)
    if not m:
        raise click.BadParameter(f"not a duration: {text!r} (use e.g. 90s, 30m, 2h)")
    return float(m[1]) * _UNITS[m[2] or "s"]


@cli.command("report")
@click.option("--prometheus", "prometheus_url", metavar="URL",
              help="Query this Prometheus (e.g. http://127.0.0.1:9090) over --since.")
@click.option("--since", default="1h", show_default=True,
              help="With --prometheus: how far back from now (or from --end).")
@click.option("--end", "end_time", type=float, help="With --prometheus: Unix time of the end.")
@click.option("--step", type=float, help="With --prometheus: seconds between points [auto].")
@click.option("--scrape", "scrape_urls", multiple=True, metavar="HOST:PORT",
              help="Scrape this /metrics endpoint (repeatable) for --duration instead.")
@click.option("--duration", default="60s", show_default=True, help="With --scrape: how long.")
@click.option("--interval", type=float, default=2.0, show_default=True,
              help="With --scrape: seconds between scrapes.")
@click.option("--out", "out_path", type=click.Path(dir_okay=False), default="refold-report.png",
              show_default=True, help="The PNG to write.")
@click.option("--title", default="refold run", show_default=True)
def report(prometheus_url: str | None, since: str, end_time: float | None, step: float | None,
           scrape_urls: tuple[str, ...], duration: str, interval: float, out_path: str,
           title: str) -> None:
    """Throughput, latency, hit rate, drift statistics and model versions of a run, as a PNG.

    Either from a Prometheus HTTP API (--prometheus URL), or by scraping the processes' /metrics
    endpoints for a while (--scrape HOST:PORT ...), computing rates and quantiles locally.
    """
    from refold.report import PrometheusSource, ScrapeSource, render

    if bool(prometheus_url) == bool(scrape_urls):
        raise click.UsageError("give either --prometheus URL or one or more --scrape HOST:PORT")
    source: PrometheusSource | ScrapeSource
    if prometheus_url:
        end = end_time or time.time()
        source = PrometheusSource(prometheus_url, end - seconds(since), end, step)
    else:
        source = ScrapeSource(scrape_urls)
        click.echo(f"scraping {len(scrape_urls)} endpoint(s) for {duration} ...", err=True)
        source.run(seconds(duration), interval)
    last = render(source, out_path, title=title)
    for name, value in last.items():
        click.echo(f"{name:<45} {value:,.4g}")
    click.echo(f"wrote {out_path}")
