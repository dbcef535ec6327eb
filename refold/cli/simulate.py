"""`refold simulate`: the closed-loop simulated shop; `refold ope`: off-policy estimates."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path
from typing import Any

import click

from refold.cli import cli, settings_from


@cli.command("simulate")
@click.option("--users", type=int, default=2000, show_default=True,
              help="Customers; a share of them arrives during the run.")
@click.option("--items", type=int, default=1000, show_default=True)
@click.option("--days", type=float, default=1.0, show_default=True, help="Simulated days.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--shown", type=int, default=5, show_default=True, help="Slots a page shows.")
@click.option("--sessions-per-day", type=float, default=2.0, show_default=True,
              help="Visits of each customer per simulated day.")
@click.option("--refit-every-hours", type=float, default=6.0, show_default=True,
              help="Simulated hours between refits.")
@click.option("--only", multiple=True, metavar="POLICY",
              help="Run only these policies (repeatable): refold, refold-no-exploration, "
                   "refold-epsilon, refold-plackett-luce-x2, refold-popularity-light, "
                   "refold-popularity-blend, refold-popularity-first, refold-no-exposure, "
                   "refold-no-mixer, content-trending, popularity, popularity-exposure, random, "
                   "oracle (the popularity re-rankings and refold-no-mixer run only when named).")
@click.option("--parallel", type=int, default=3, show_default=True,
              help="Policies run at a time (each has its own refitter and worker).")
@click.option("--in-process", is_flag=True, help="Run refold's ranking, the customers and "
              "the refits in this process, without a broker (repeatable; no off-policy "
              "estimates): for studying the model in the loop.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object on stdout.")
@click.option("--out", type=click.Path(file_okay=False), help="Also write report.md, "
              "report.json and logs.jsonl (refold's impressions and events, for refold ope "
              "--from-file) there.")
@click.pass_context
def simulate(ctx: click.Context, users: int, items: int, days: float, seed: int, shown: int,
             sessions_per_day: float, refit_every_hours: float, only: tuple[str, ...],
             parallel: int, in_process: bool, as_json: bool, out: str | None) -> None:
    """Compare policies in a simulated shop running against the real pipeline.

    Simulated customers with tastes refold never sees visit a shop in sessions; the shop reads
    each customer's latest list from the recommendations topic, shows its first --shown slots,
    reports the impression, and the customer examines slots with a position bias, clicks and buys
    by their true taste; their clicks and purchases become events. Each policy runs on the same
    customers (same seed) with its own topics, refitter and worker; refold's exploration,
    exposure feedback and model come from the settings (flags, REFOLD_* variables, --config).
    Prints per policy CTR@1, CTR@3, CTR@K, conversion, median time to first conversion of new
    customers and coverage, then the off-policy estimates (IPS, SNIPS, DR) of the CTR@3 of the
    other exploration policies from refold's logs, next to what running them measured.
    """
    from producers.population import ShopConfig
    from refold.broker import ensure_bootstrap
    from refold.simulate.report import markdown
    from refold.simulate.run import simulate as run

    settings = settings_from(ctx)
    shop = ShopConfig(n_users=users, n_items=items, days=days, seed=seed, shown=shown,
                      sessions_per_day=sessions_per_day)
    if out:
        Path(out).mkdir(parents=True, exist_ok=True)
    if in_process:
        from refold.simulate.inprocess import simulate_in_process

        report = simulate_in_process(shop, settings, list(only) or None,
                                     refit_every_hours * 3600.0)
    else:
        from tqdm import tqdm

        ensure_bootstrap(settings)
        log_dir = Path(settings.home) / "simulate"
        with tqdm(desc="pages", unit="page", disable=as_json, file=sys.stderr) as bar:
            report = run(shop, settings, log_dir, only=list(only) or None, parallel=parallel,
                         refit_every=refit_every_hours * 3600.0, progress=bar.update,
                         export_to=Path(out) / "logs.jsonl" if out else None)
    text = markdown(report)
    if out:
        (Path(out) / "report.md").write_text(text)
        (Path(out) / "report.json").write_text(json.dumps(_finite(report), indent=2))
    click.echo(json.dumps(_finite(report), indent=2) if as_json else text)


@cli.command("ope")
@click.option("--from-file", "path", type=click.Path(exists=True, dir_okay=False),
              help="Impressions and events as JSON lines (from --export); default: the "
                   "impressions and events topics, read to their current ends.")
@click.option("--candidate", "candidates", multiple=True, metavar="POLICY[:K=V,...]",
              help="A policy to estimate, e.g. none, epsilon:epsilon=0.05, "
                   "plackett_luce:temperature=0.2,candidates=40; with score=/popularity= it "
                   "re-ranks the logged candidates, e.g. none:score=0,popularity=1 "
                   "(repeatable) [none].")
@click.option("--outcome", type=click.Choice(["click", "add_to_cart", "purchase"]),
              default="click", show_default=True,
              help="What a slot's success is: click (CTR@n) or purchase (conversion).")
@click.option("--positions", type=int, default=3, show_default=True,
              help="The first n positions (CTR@n).")
@click.option("--window", type=float, default=None, metavar="SECONDS",
              help="Attribution window [attribution_window_seconds].")
@click.option("--export", type=click.Path(dir_okay=False),
              help="Write the logs read to this JSON-lines file.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.pass_context
def ope(ctx: click.Context, path: str | None, candidates: tuple[str, ...], outcome: str,
        positions: int, window: float | None, export: str | None, as_json: bool) -> None:
    """Estimate candidate policies' CTR@n (or conversion) from logged impressions.

    Joins each impression (its list's policy, candidate scores and per-item propensities) with
    the clicks, carts and purchases the attribution rules credit to it, and estimates each
    candidate's rate with IPS, self-normalised IPS and doubly robust, each with a 95% interval
    and its effective sample size. Refuses where propensities are missing, or where a candidate
    shows what the logging policy never could.
    """
    from refold import ope as O

    settings = settings_from(ctx)
    if path:
        logs = O.read_file(path)
    else:
        from refold.broker import ensure_bootstrap

        ensure_bootstrap(settings)
        logs = O.read_topics(settings)
    if export:
        n = O.export(logs, export)
        click.echo(f"wrote {n:,} lines to {export}", err=True)
    named = [(spec, O.parse_candidate(spec)) for spec in candidates or ("none",)]
    lists = O.join(logs, outcome, settings.attribution_window_seconds if window is None
                   else window)
    rows = O.estimate(lists, named, positions)
    what = f"CTR@{positions}" if outcome == "click" else f"{outcome} rate@{positions}"
    click.echo(O.as_json(rows) if as_json else O.table(rows, what))


def _finite(obj: Any) -> Any:
    """JSON without NaN or infinity (None instead)."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_finite(v) for v in obj]
    return obj
