"""`refold bench pace`: a newcomer's first list, adaptive trending against fixed half-lives."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import click

from refold.cli.bench import bench, emit


@bench.command("pace")
@click.option("--seeds", type=int, default=3, show_default=True, help="Seeds 0..N-1.")
@click.option("--path", type=click.Path(file_okay=False), envvar="REFOLD_ML100K",
              default="../shared/datasets/ml-100k", show_default=True,
              help="The ml-100k directory (env REFOLD_ML100K); absent: synthetic logs only.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def bench_pace(seeds: int, path: str, as_json: bool) -> None:
    """First-list recall@10 on a slow log (5 years), a fast one (6 hours) and ml-100k: all-time
    popularity, a week's and 90 days' half-life, and adaptive trending; per log, adaptive
    trending against the best baseline list by list, pooled over the seeds with a 95% CI."""
    from producers.synth_pace import fast_log, slow_log
    from refold.bench import pace

    rows = []
    movielens = Path(path).is_dir()
    with click.progressbar(length=2 * seeds + movielens, label="logs",
                           file=sys.stderr) as bar:
        if movielens:
            from producers.movielens import load_movielens

            rows.append(("ml-100k", 0, pace.run_log(load_movielens(path)[0])))
            bar.update(1)
        for name, make in (("slow", slow_log), ("fast", fast_log)):
            for seed in range(seeds):
                rows.append((name, seed, pace.run(make(seed))))
                bar.update(1)
    flat = [{"log": n, "seed": s, **r} for n, s, r in rows]
    result = {"rows": flat, "pooled": [pace.pooled([r for r in flat if r["log"] == log])
                                       for log in dict.fromkeys(r["log"] for r in flat)],
              "loadavg": os.getloadavg()}
    emit(result, as_json, pace.table(rows))
