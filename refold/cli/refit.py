"""`refold refit` runs the background refitter; `refold bench refit` measures one refit cycle."""

from __future__ import annotations

from pathlib import Path

import click

from refold.cli import cli, setting_help, settings_from
from refold.cli.bench import bench, emit

ML100K = Path(__file__).resolve().parents[2].parent / "shared" / "datasets" / "ml-100k"


@cli.command("refit")
@click.option("--once", is_flag=True,
              help="Read the events topic to its end, refit, publish, exit.")
@click.option("--every-events", type=int, default=100_000, show_default=True,
              help="Refit when the live model is this many events behind (0: off).")
@click.option("--every-seconds", type=float, default=3600.0, show_default=True,
              help="Refit this often when there are new events (0: off).")
@click.option("--checkpoint-seconds", type=float, default=300.0, show_default=True,
              help="Write the store's checkpoint this often (and on exit).")
@click.option("--window-days", type=float, default=0.0, show_default=True,
              help="Train on the last N days of event time (0: all).")
@click.option("--half-life-days", type=float, default=0.0, show_default=True,
              help="Exponential decay of interactions in event time (0: none).")
@click.option("--max-users", type=int, default=1_000_000, show_default=True)
@click.option("--max-items", type=int, default=1_000_000, show_default=True)
@click.option("--max-nnz", type=int, default=20_000_000, show_default=True,
              help="Bounds of the store; the oldest are evicted beyond them.")
@click.option("--model", type=click.Choice(["als", "bpr"]), default="als", show_default=True)
@click.option("--factors", type=int, help=setting_help("factors", "Latent factors."))
@click.option("--iterations", type=int, help=setting_help("iterations", "Training iterations."))
@click.option("--regularization", type=float,
              help=setting_help("regularization", "ALS lambda, in training and in the fold-in."))
@click.option("--alpha", type=float,
              help=setting_help("alpha", "Confidence per unit of event weight."))
@click.option("--holdout", type=float, default=0.02, show_default=True,
              help="Share of the most recent interactions held out for the gate's recall@K.")
@click.option("--max-recall-drop", type=float, default=0.02, show_default=True,
              help="Refuse a model whose recall@K is this much below the live one's.")
@click.option("--keep-versions", type=int, default=3, show_default=True,
              help="Versions kept on the snapshots topic (older records are deleted).")
@click.option("--chunk-bytes", type=int, default=900_000, show_default=True)
@click.option("--metrics-port", type=int, help=(
    "Serve /metrics, /healthz and /ready on this port; 0: a free one [9401] (env "
    "REFOLD_METRICS_PORT)."))
@click.option("--flush-every", type=int, default=64, show_default=True,
              help="Chunks between delivery waits (and progress log lines).")
@click.option("--publish-pause", type=float, default=0.0, show_default=True,
              help="Throttle: seconds to wait after each --flush-every chunks.")
@click.option("--similar-k", type=int, default=50, show_default=True,
              help="Neighbours per item published to the similar-items topic after each refit "
                   "(0: publish none).")
@click.pass_context
def refit(ctx: click.Context, once: bool, every_events: int, every_seconds: float,
          checkpoint_seconds: float, window_days: float, half_life_days: float, max_users: int,
          max_items: int, max_nnz: int, model: str, factors: int | None, iterations: int | None,
          regularization: float | None, alpha: float | None, holdout: float,
          max_recall_drop: float, keep_versions: int, chunk_bytes: int, metrics_port: int | None,
          flush_every: int, publish_pause: float, similar_k: int) -> None:
    """Retrain the item factors from the events topic and publish versioned snapshots.

    Consumes the events topic in its own group (read_committed) into a bounded interaction
    store, refits implicit ALS on triggers (warm-started from the live snapshot), refuses models
    that fail the validation gate, and publishes the others to the snapshots topic in chunks,
    then each item's nearest neighbours to the similar-items topic. SIGTERM or Ctrl-C stops a
    training in progress, checkpoints the store and exits 0.
    """
    from consumers.assembly import RefitterOptions, assemble_refitter
    from consumers.refitter import Triggers
    from consumers.similar_publisher import SimilarParams
    from models.store import StoreConfig
    from refold.broker import ensure_bootstrap

    settings = settings_from(ctx, factors=factors, iterations=iterations,
                             regularization=regularization, alpha=alpha, metrics_port=metrics_port)
    ensure_bootstrap(settings)
    store = StoreConfig(window_seconds=window_days * 86400, half_life_seconds=half_life_days
                        * 86400, max_users=max_users, max_items=max_items, max_nnz=max_nnz)
    options = RefitterOptions(
        model=model, holdout=holdout, max_recall_drop=max_recall_drop, store=store,
        triggers=Triggers(every_events, every_seconds, checkpoint_seconds),
        keep_versions=keep_versions, chunk_bytes=chunk_bytes, flush_every=flush_every,
        publish_pause=publish_pause,
        similar=SimilarParams(k=similar_k) if similar_k > 0 else None)
    refitter = assemble_refitter(settings, options)
    refitter.stop_on_signals()
    code = refitter.run(once=once)
    live = f"v{refitter.live.version}" if refitter.live is not None else "none"
    click.echo(f"refit: {refitter.refits} refit(s), {refitter.published} published, "
               f"{refitter.refused} refused, {refitter.failed} failed; live snapshot {live}")
    ctx.exit(code)


@bench.command("refit")
@click.option("--path", type=click.Path(file_okay=False), default=str(ML100K),
              show_default=True, help="A MovieLens directory (unless --events).")
@click.option("--events", "--synth-events", "synth_events", type=int,
              help="Use the synthetic world with N events instead (e.g. 1000000).")
@click.option("--factors", type=int, default=64, show_default=True)
@click.option("--iterations", type=int, default=15, show_default=True)
@click.option("--publish-items", type=int, default=200_000, show_default=True,
              help="Items of the snapshot used for publish/load throughput.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.pass_context
def bench_refit(ctx: click.Context, path: str, synth_events: int | None, factors: int,
                iterations: int, publish_items: int, as_json: bool) -> None:
    """One refit cycle next to a bare implicit fit; snapshot publish/load MB/s; swap pause."""
    from refold.bench import refit as bench_refit_mod
    from refold.broker import ensure_bootstrap

    settings = settings_from(ctx, factors=factors, iterations=iterations)
    ensure_bootstrap(settings)
    if synth_events:
        from producers.synth import SynthConfig, generate

        log = generate(SynthConfig(n_events=synth_events, n_users=max(2000, synth_events // 50),
                                   n_items=max(1000, synth_events // 100)))[0]
    else:
        from producers.datasets import load_movielens

        log = load_movielens(path)[0]
    result = bench_refit_mod.run(settings, log, publish_items)
    emit(result, as_json, bench_refit_mod.table(result))


@bench.command("swap")
@click.option("--items", type=int, default=200_000, show_default=True)
@click.option("--factors", type=int, default=64, show_default=True)
@click.option("--users", type=int, default=2000, show_default=True)
@click.option("--rate", type=float, default=100.0, show_default=True, help="Events/s sent.")
@click.option("--batch-size", type=int, default=100, show_default=True)
@click.option("--swaps", type=int, default=6, show_default=True)
@click.option("--interval", type=float, default=6.0, show_default=True,
              help="Quiet seconds before each publication.")
@click.option("--inline", is_flag=True,
              help="Build the new version's layout between batches (the swap as it was).")
@click.option("--ann", is_flag=True,
              help="Build each version's candidate index too (off: the catalog is scanned).")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.pass_context
def bench_swap(ctx: click.Context, items: int, factors: int, users: int, rate: float,
               batch_size: int, swaps: int, interval: float, inline: bool, ann: bool,
               as_json: bool) -> None:
    """Event latency during model swaps against without, under a steady rate, through the
    broker: a worker process follows the snapshots topic while new versions are published."""
    from refold.bench import swap
    from refold.broker import ensure_bootstrap

    if min(items, factors, users, batch_size, swaps) < 1 or rate <= 0 or interval < 0:
        raise click.UsageError("sizes and counts must be >= 1, --rate > 0, --interval >= 0")
    settings = settings_from(ctx)
    ensure_bootstrap(settings)
    result = swap.run(settings, items=items, factors=factors, users=users, rate=rate,
                      batch_size=batch_size, swaps=swaps, interval=interval, inline=inline,
                      ann=ann)
    emit(result, as_json, swap.table(result))
