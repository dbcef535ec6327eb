"""`refold bench ...`: side-by-side benchmarks that print a table (or `--json`)."""

from __future__ import annotations

import json
import sys

import click

from refold.bench import DATASETS
from refold.cli import cli, fold_in_changes, typed_pairs


@cli.group()
def bench() -> None:
    """Benchmarks: refold next to the obvious alternative, in the same run."""


def emit(result: dict, as_json: bool, table: str) -> None:
    click.echo(json.dumps(result, indent=2) if as_json else table)


@bench.command("serde")
@click.option("--messages", type=int, default=100_000, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def bench_serde(messages: int, as_json: bool) -> None:
    """Event encode and decode+validate per second: msgspec vs json vs orjson."""
    from refold.bench import serde

    result = serde.run(messages)
    emit(result, as_json, serde.table(result))


@bench.command("exploration")
@click.option("--lists", type=int, default=2000, show_default=True)
@click.option("--k", type=int, default=20, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def bench_exploration(lists: int, k: int, as_json: bool) -> None:
    """µs to draw one list: each exploration policy next to the plain top-K (`none`)."""
    from refold.bench import exploration

    result = exploration.run(lists, k)
    emit(result, as_json, exploration.table(result))


@bench.command("batch")
@click.option("--dataset", type=click.Choice(DATASETS), default="ml-100k",
              show_default=True, help="ml-100k in time order, or the synthetic world, whose "
              "users interleave (a list for every ~5th event against every ~36th).")
@click.option("--path", type=click.Path(file_okay=False), envvar="REFOLD_ML100K",
              default="../shared/datasets/ml-100k", show_default=True,
              help="The ml-100k directory (env REFOLD_ML100K).")
@click.option("--events", type=int, default=100_000, show_default=True)
@click.option("--batch", type=int, default=500, show_default=True, help="Events per batch.")
@click.option("--partitions", type=int, default=6, show_default=True)
@click.option("--rounds", type=int, default=2, show_default=True,
              help="Alternated runs of each mode (the best counts).")
@click.option("--profile", type=click.Path(dir_okay=False), default=None,
              help="Write cProfile stats of one more run of the worker here.")
@click.option("--profile-stores", is_flag=True,
              help="Profile the worker with the local stores (default: every user in memory).")
@click.option("--fold-in", "fold_in", multiple=True, metavar="KEY=VALUE",
              help="A FoldInConfig setting for the fit and every mode (repeatable), e.g. "
                   "--fold-in session_weight=0 for the cost of the session co-visits.")
@click.option("--items", type=click.IntRange(min=1), default=None,
              help="Grow the fitted catalog to this many items with synthetic ones (the same "
                   "events on a large catalog; from ann_min_items on, ranked with the index).")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def bench_batch(dataset: str, path: str, events: int, batch: int, partitions: int, rounds: int,
                profile: str | None, profile_stores: bool, fold_in: tuple[str, ...],
                items: int | None, as_json: bool) -> None:
    """CPU per event of the worker's batch without the broker (every user in memory), next to
    the same worker with the local stores, without exploration, and to a pass-through's
    decode + encode."""
    from pathlib import Path

    from refold.bench import batch as batch_bench

    if dataset == "ml-100k" and not Path(path).is_dir():
        raise click.UsageError(f"no ml-100k directory at {path}: give --path")
    changes = fold_in_changes(fold_in)
    with click.progressbar(length=rounds * len(batch_bench.MODES), label="batch",
                           file=sys.stderr) as bar:
        try:
            result = batch_bench.run(path, events, batch, partitions, rounds, profile,
                                     bar.update, "worker, local stores" if profile_stores
                                     else "worker", changes, items, dataset)
        except batch_bench.ShrinkingCatalog as exc:
            raise click.UsageError(str(exc)) from exc
    emit(result, as_json, batch_bench.table(result))


@bench.command("produce")
@click.option("--events", type=int, default=100_000, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.pass_context
def bench_produce(ctx: click.Context, events: int, as_json: bool) -> None:
    """Events/s acknowledged by the broker: the SDK next to a bare confluent-kafka producer."""
    from refold.bench import produce
    from refold.broker import ensure_bootstrap
    from refold.cli import settings_from

    settings = settings_from(ctx)
    ensure_bootstrap(settings)
    result = produce.run(settings, events)
    emit(result, as_json, produce.table(result))


def _ann_settings(pairs: tuple[str, ...]) -> dict[str, int]:
    """`NAME=N` pairs of the index's fold-in settings (`ann_*`), refused with a clear error."""
    from dataclasses import fields

    from models.foldin_config import FoldInConfig

    known = sorted(f.name for f in fields(FoldInConfig)
                   if f.name.startswith("ann_") and f.name != "ann_min_items")
    out = typed_pairs(pairs, "--ann-setting")
    for name, value in out.items():
        if name not in known or type(value) is not int or value < 1:
            raise click.BadParameter(f"{name}={value!r}: expected NAME=N, N >= 1, NAME one of "
                                     f"{', '.join(known)}", param_hint="--ann-setting")
    return out


@bench.command("foldin")
@click.option("--items", "items", type=int, multiple=True,
              help="Catalog size(s); repeatable [10000, 100000, 1000000].")
@click.option("--factors", type=int, default=64, show_default=True)
@click.option("--events", type=int, default=2000, show_default=True,
              help="Events for refold and implicit (river gets fewer: it is slow).")
@click.option("--k", type=int, default=20, show_default=True)
@click.option("--ann", is_flag=True,
              help="Also with approximate retrieval (candidates re-scored exactly): events/s and "
                   "recall@K against the exact lists.")
@click.option("--shape", type=click.Choice(["gaussian", "als"]), default="gaussian",
              show_default=True,
              help="Item factors: isotropic Gaussian (the hardest for an index) or with norms "
                   "spread as ALS spreads them.")
@click.option("--baselines/--no-baselines", default=True, show_default=True,
              help="Run implicit and river too (skip them for very large catalogs).")
@click.option("--ann-setting", "ann_settings", multiple=True, metavar="NAME=N",
              help="An index fold-in setting for --ann, e.g. ann_build_threads=2, "
                   "ann_ef_construction=40, ann_ef_search=192; repeatable.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def bench_foldin(items: tuple[int, ...], factors: int, events: int, k: int, ann: bool,
                 shape: str, baselines: bool, ann_settings: tuple[str, ...],
                 as_json: bool) -> None:
    """Fold-in + top-K events/s on one thread: refold vs implicit recalculate_user vs river;
    with --ann, refold's approximate retrieval next to its exact scan."""
    from refold.bench import foldin

    if not (ann or baselines):
        raise click.UsageError("--no-baselines needs --ann (nothing would be compared)")
    index = _ann_settings(ann_settings)
    results = []
    for n in items or (10_000, 100_000, 1_000_000):
        results.append(foldin.run(items=n, factors=factors, events=events, k=k, ann=ann,
                                  shape=shape, baselines=baselines,  # type: ignore[arg-type]
                                  index_settings=index))
        if not as_json:
            click.echo(f"  {n:,} items done", err=True)
    out = results[0] if len(results) == 1 else {"runs": results}
    emit(out, as_json, foldin.table(results))


@bench.command("pipeline")
@click.option("--dataset", type=click.Choice(DATASETS), default="ml-100k",
              show_default=True)
@click.option("--path", type=click.Path(file_okay=False), envvar="REFOLD_ML100K",
              default="../shared/datasets/ml-100k", show_default=True,
              help="The ml-100k directory (env REFOLD_ML100K).")
@click.option("--events", type=int, help="Events to send [ml-100k: all; synth: 100000].")
@click.option("--partitions", type=int, help="Partitions of the events topic [6].")
@click.option("--batch-size", type=int, help="Events per micro-batch and transaction [500].")
@click.option("--factors", type=int, default=64, show_default=True,
              help="ALS factors, fitted on the events at start.")
@click.option("--rate", type=float, default=1000.0, show_default=True,
              help="Events/s sent during the latency measurement.")
@click.option("--latency-events", type=int, default=10_000, show_default=True,
              help="Events sent at --rate per consumer (after 100 warm-up events).")
@click.option("--repeat", type=int, default=3, show_default=True,
              help="Throughput runs per consumer; the best is reported.")
@click.option("--fold-in", "fold_in", multiple=True, metavar="KEY=VALUE",
              help="A FoldInConfig setting for the fit and the worker (repeatable), e.g. "
                   "--fold-in session_weight=0.")
@click.option("--profile", "profile_dir", type=click.Path(file_okay=False),
              help="Write each throughput run's cProfile stats here (slows the runs down).")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.pass_context
def bench_pipeline(ctx: click.Context, dataset: str, path: str, events: int | None,
                   partitions: int | None, batch_size: int | None, factors: int, rate: float,
                   latency_events: int, repeat: int, fold_in: tuple[str, ...],
                   profile_dir: str | None, as_json: bool) -> None:
    """End-to-end events/s and event→recommendation latency through the broker: refold's
    exactly-once worker next to a pass-through consumer (decode, re-produce) with the same
    Kafka settings and batch size, the Kafka-bound ceiling. Throwaway topics, deleted after."""
    from pathlib import Path

    from refold.bench import pipeline, pipeline_report
    from refold.broker import ensure_bootstrap
    from refold.cli import settings_from

    if dataset == "ml-100k" and not Path(path).is_dir():
        raise click.UsageError(f"no ml-100k directory at {path}: give --path")
    if min(repeat, latency_events) < 1 or rate <= 0:
        raise click.UsageError("--repeat and --latency-events must be >= 1, --rate > 0")
    settings = settings_from(ctx, events_partitions=partitions, batch_size=batch_size,
                             factors=factors)
    changes = fold_in_changes(fold_in, settings)
    ensure_bootstrap(settings)
    click.echo(f"fitting ALS ({factors} factors) on {dataset}...", err=True)
    workload = pipeline.load_workload(settings, dataset, path, events, fold_in=changes)
    if profile_dir:
        Path(profile_dir).mkdir(parents=True, exist_ok=True)
    result = pipeline.run(settings, workload, rate=rate, latency_events=latency_events,
                          repeat=repeat, profile_dir=Path(profile_dir) if profile_dir else None)
    emit(result, as_json, pipeline_report.table(result))


@bench.command("guarantee")
@click.option("--events", type=int, default=20_000, show_default=True,
              help="Synthetic events read once per guarantee per repeat (0: skip).")
@click.option("--partitions", type=int, help="Partitions of the events topic [6].")
@click.option("--batch-size", type=int, help="Events per micro-batch [500].")
@click.option("--repeat", type=int, default=3, show_default=True,
              help="Runs per guarantee, alternating; the medians are reported.")
@click.option("--restore-users", type=int, default=100_000, show_default=True,
              help="Users whose state is written to a changelog and restored (0: skip).")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.pass_context
def bench_guarantee(ctx: click.Context, events: int, partitions: int | None,
                    batch_size: int | None, repeat: int, restore_users: int,
                    as_json: bool) -> None:
    """The fold-in worker's events/s exactly once next to at least once, in the same run, and
    the time to restore users' state from the changelog. Throwaway topics, deleted after."""
    from refold.bench import guarantee
    from refold.broker import ensure_bootstrap
    from refold.cli import settings_from

    if repeat < 1 or min(events, restore_users) < 0:
        raise click.UsageError("--repeat must be >= 1, --events and --restore-users >= 0")
    settings = settings_from(ctx, events_partitions=partitions, batch_size=batch_size)
    ensure_bootstrap(settings)
    result = guarantee.run(settings, events, repeat, restore_users)
    emit(result, as_json, guarantee.table(result))


@bench.command("similar")
@click.option("--items", type=int, default=100_000, show_default=True, help="Catalog size.")
@click.option("--k", type=int, default=50, show_default=True, help="Neighbours per item.")
@click.option("--sample", type=int, default=2000, show_default=True,
              help="Items the exact scan is timed on (its cost is linear in them).")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def bench_similar(items: int, k: int, sample: int, as_json: bool) -> None:
    """Similar items of a large synthetic catalog: the graph index (HNSW) against the exact
    scan, CPU seconds side by side, with the graph's recall@k against exact."""
    from refold.bench import similar

    if min(items, k, sample) < 1 or k >= items:
        raise click.UsageError("--items, --k, --sample must be >= 1 and --k < --items")
    result = similar.run(items, k, sample)
    emit(result, as_json, similar.table(result))


@bench.command("state")
@click.option("--users", "users", type=int, multiple=True,
              help="Users held (repeatable) [1000000, 5000000, 10000000].")
@click.option("--events-per-user", type=int, default=5, show_default=True,
              help="Events in each user's history.")
@click.option("--tail", type=int, default=1000, show_default=True,
              help="Users who act between the restore and the restart.")
@click.option("--cache-users", type=int, default=100_000, show_default=True,
              help="The worker's bounded cache of users (state_cache_users).")
@click.option("--serve-events", type=int, default=200_000, show_default=True,
              help="Events of random users served after the restart (memory is read then).")
@click.option("--in-memory-max", type=int, default=1_000_000, show_default=True,
              help="Run the all-in-memory restore, for comparison, up to this many users.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.pass_context
def bench_state(ctx: click.Context, users: tuple[int, ...], events_per_user: int, tail: int,
                cache_users: int, serve_events: int, in_memory_max: int, as_json: bool) -> None:
    """A worker's state at scale: restart on the same disk, restore on a new disk (from the
    changelog), and resident memory through the bounded cache, per number of users held, next
    to the all-in-memory restore. Throwaway topics, deleted after."""
    from refold.bench import state
    from refold.broker import ensure_bootstrap
    from refold.cli import settings_from

    settings = settings_from(ctx)
    ensure_bootstrap(settings)
    result = state.run(settings, list(users) or [1_000_000, 5_000_000, 10_000_000],
                       events_per_user=events_per_user, tail=tail, cache_users=cache_users,
                       serve_events=serve_events, in_memory_max=in_memory_max,
                       progress=lambda text: click.echo(text, err=True))
    emit(result, as_json, state.table(result))


@bench.command("soak")
@click.option("--minutes", type=float, default=30.0, show_default=True)
@click.option("--rate", type=float, default=1000.0, show_default=True, help="Events/s sent.")
@click.option("--new-user-share", type=float, default=0.3, show_default=True,
              help="Share of events from a brand-new user (the population grows all along).")
@click.option("--cache-users", type=int, default=100_000, show_default=True,
              help="The worker's bounded cache of users (state_cache_users).")
@click.option("--sample-seconds", type=float, default=60.0, show_default=True,
              help="Memory, lag and latency are sampled this often.")
@click.option("--png", type=click.Path(dir_okay=False), default="soak.png", show_default=True,
              help="Where to draw the curves.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.pass_context
def bench_soak(ctx: click.Context, minutes: float, rate: float, new_user_share: float,
               cache_users: int, sample_seconds: float, png: str, as_json: bool) -> None:
    """A `refold consume` process under a steady stream with a growing user population:
    resident memory, lag and latency percentiles sampled every --sample-seconds, errors; the
    memory slope after the population passed the cache. Throwaway topics, deleted after."""
    from refold.bench import soak
    from refold.broker import ensure_bootstrap
    from refold.cli import settings_from

    settings = settings_from(ctx)
    ensure_bootstrap(settings)
    result = soak.run(settings, minutes=minutes, rate=rate, new_user_share=new_user_share,
                      cache_users=cache_users, sample_seconds=sample_seconds, png=png,
                      progress=lambda text: click.echo(text, err=True))
    emit(result, as_json, soak.table(result))
