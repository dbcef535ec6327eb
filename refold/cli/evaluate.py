"""`refold evaluate`: prequential replay of refold and its baselines on a dataset, one report."""

from __future__ import annotations

import json
import sys
from typing import Any

import click

from refold.cli import cli, fold_in_changes, mapping_options, typed_pairs


def _load(dataset: str, path: str | None, csv_opts: dict[str, Any], synth: dict[str, Any]):
    """(log, catalog, declared profiles) of a dataset."""
    from producers.datasets import load_csv, load_movielens

    if dataset == "ml-100k":
        if not path:
            raise click.UsageError("--dataset ml-100k needs --path DIR")
        return (*load_movielens(path), [])
    if dataset == "csv":
        if not path:
            raise click.UsageError("--dataset csv needs --path FILE")
        return load_csv(path, **csv_opts), [], []
    if dataset in ("slow", "fast"):
        from producers import synth_pace

        pace = synth_pace.slow_log if dataset == "slow" else synth_pace.fast_log
        return synth_pace.generate_paced(pace(synth["seed"])), [], []
    if dataset == "synth-content":
        from producers import synth_content as sc

        synth = {k: v for k, v in synth.items() if k != "drift_at"}
        world = sc.generate_content(sc.content_synth_config(**synth))
        return world.log, sc.catalog_with_content(world), sc.declared_profiles(world)
    from producers.synth import SynthConfig, generate

    log, catalog, _ = generate(SynthConfig(**synth))
    return log, catalog, []


def _say(text: str) -> None:
    click.echo(text, err=True)


@cli.command("evaluate")
@click.option("--dataset", type=click.Choice(["ml-100k", "synth", "synth-content", "slow",
                                              "fast", "csv"]),
              default="ml-100k", show_default=True,
              help="synth-content: the synthetic shop with item texts and tags and users' "
                   "declared profiles; slow / fast: synthetic logs of 5 years / 6 hours.")
@click.option("--path", type=click.Path(exists=True),
              help="ml-100k: a directory (GroupLens or atomic layout); csv: a file.")
@click.option("--models", default=None, help="Comma-separated subset [all]: popularity, "
              "trending, river_funkmf, river_biasedmf, static_als, oryx_rank1, foldin_only, "
              "refold, oracle; also refold_mixer (refold with the learned mixer).")
@click.option("--warmup", type=float, default=0.2, show_default=True,
              help="Share of events used to fit (and search), never scored.")
@click.option("--window", type=int, default=5000, show_default=True,
              help="Events in the moving-window recall.")
@click.option("--refit-every", type=int, default=5000, show_default=True,
              help="refold: warm-started refit every N events.")
@click.option("--oracle-every", type=int, default=1000, show_default=True,
              help="oracle: refit from scratch every N events.")
@click.option("--search", "do_search", is_flag=True,
              help="Tune every model on the warm-up first (and report the search).")
@click.option("--weighted", is_flag=True, help="Weigh ratings by value (4-5 positive, 1-2 "
              "negative) instead of counting every rating as a positive.")
@click.option("--fold-in", "fold_in", multiple=True, metavar="KEY=VALUE",
              help="A FoldInConfig setting for refold, foldin_only and oracle (repeatable), "
                   "e.g. --fold-in session_boost=2.")
@click.option("--param", "params", multiple=True, metavar="MODEL.KEY=VALUE",
              help="Override one hyper-parameter of one model, e.g. refold.factors=64.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--out", type=click.Path(file_okay=False), default="reports", show_default=True,
              help="Directory for report.md, result.json and the plots.")
@click.option("--json", "as_json", is_flag=True, help="Print the results as JSON on stdout.")
@click.option("--no-progress", is_flag=True, help="No progress bar.")
@click.option("--offline", is_flag=True, help="The offline protocol instead: random 75/25 split "
              "per user, P/R/NDCG@10 and MAP next to published ml-100k numbers.")
@click.option("--user-col", default="user_id", show_default=True, help="csv: user column.")
@click.option("--item-col", default="item_id", show_default=True, help="csv: item column.")
@click.option("--time-col", default="timestamp", show_default=True, help="csv: time column.")
@click.option("--value-col", default=None, help="csv: value (rating) column.")
@click.option("--type-col", default=None, help="csv: event type column.")
@click.option("--session-col", default=None, help="csv: session column.")
@click.option("--event-type", default="click", show_default=True,
              help="csv: event type when there is no type column.")
@click.option("--time-format", type=click.Choice(["unix", "iso"]), default="unix",
              show_default=True, help="csv: time column format.")
@click.option("--delimiter", default=",", show_default=True, help="csv: field delimiter.")
@click.option("--synth-users", type=int, default=2000, show_default=True)
@click.option("--synth-items", type=int, default=1000, show_default=True)
@click.option("--synth-events", type=int, default=100_000, show_default=True)
@click.option("--synth-drift-at", type=int, default=None, help="synth: event where tastes shift.")
@mapping_options
def evaluate(dataset, path, models, warmup, window, refit_every, oracle_every, do_search,
             weighted, fold_in, params, seed, out, as_json, no_progress, offline, user_col,
             item_col, time_col, value_col, type_col, session_col, event_type, time_format,
             delimiter, synth_users, synth_items, synth_events, synth_drift_at, mapping) -> None:
    """Replay a dataset test-then-train through refold and its baselines; write a report.

    Each positive event after the warm-up is scored against the user's top-10 before the
    model learns it. See the report's Protocol section for the details.
    """
    from refold.evaluation import report, runner
    from refold.evaluation.contenders import MODELS, REFOLD_FAMILY

    changes = fold_in_changes(fold_in)  # before the dataset is read
    csv_opts = {"user_col": user_col, "item_col": item_col, "time_col": time_col,
                "value_col": value_col, "type_col": type_col, "session_col": session_col,
                "default_event_type": event_type, "time_format": time_format,
                "delimiter": delimiter, "mapping": mapping}
    synth = {"n_users": synth_users, "n_items": synth_items, "n_events": synth_events,
             "drift_at": synth_drift_at, "seed": seed}
    log, catalog, profiles = _load(dataset, path, csv_opts, synth)
    if offline:
        _offline(log, seed, out, as_json)
        return
    names = tuple(m.strip() for m in models.split(",")) if models else MODELS
    try:
        protocol = runner.Protocol(warmup, window, 10, refit_every, oracle_every, seed,
                                   not weighted, changes)
        data = runner.encode(log, catalog, protocol, profiles)
    except (ValueError, TypeError) as exc:
        raise click.UsageError(str(exc)) from exc
    tuned: dict[str, dict[str, Any]] = {}
    search_result = None
    if do_search:
        from refold.evaluation import search

        search_result = search.search(data, protocol, names, log=None if as_json else _say)
        tuned = search.tuned(search_result)
    for key, value in typed_pairs(params, "--param").items():
        model, _, name = key.partition(".")
        family = "refold" if model in REFOLD_FAMILY else model
        tuned.setdefault(family, {})[name] = value
    try:
        result = runner.evaluate(data, protocol, names, tuned, progress=not no_progress)
    except ValueError as exc:
        raise click.UsageError(str(exc)) from exc
    path_md = report.write(result, out, search_result)
    if as_json:
        keys = ("recall_at_10", "ndcg_at_10", "hit_rate_at_10", "cold_recall_at_10", "coverage",
                "diversity", "novelty", "seconds", "wall_seconds", "refit_seconds",
                "refit_wall_seconds", "events", "violations")
        slim = {"models": {n: {k: m[k] for k in keys} for n, m in result["models"].items()},
                "protocol": result["protocol"]}
        json.dump(slim, sys.stdout, indent=2, default=str)
        click.echo()
    else:
        click.echo(report.table(result["models"]))
        for line in report.comparisons(result["models"]):
            click.echo(line)
    _say(f"report: {path_md}")


def _offline(log: Any, seed: int, out: str, as_json: bool) -> None:
    from pathlib import Path

    from refold.evaluation import offline

    result = offline.run(log, seed=seed, log=None if as_json else _say)
    Path(out).mkdir(parents=True, exist_ok=True)
    text = (f"# Offline evaluation on {log.name}\n\n{offline.__doc__}\n\n{offline.table(result)}"
            f"\n\nALS hyper-parameters: `{json.dumps(result['als_params'])}`\n")
    (Path(out) / "offline.md").write_text(text)
    if as_json:
        click.echo(json.dumps({k: v for k, v in result.items() if k != "als_trials"}, indent=2))
    else:
        click.echo(offline.table(result))
    _say(f"report: {Path(out) / 'offline.md'}")
