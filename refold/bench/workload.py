"""The event logs the benchmarks replay: ml-100k in time order (each user's ratings come in
runs: ~1 list per 36 events), or the synthetic world (`producers.synth`), whose users interleave
as a live shop's do (~1 list per 5 events), so the per-list work weighs more there.

>>> log, catalog = event_log("synth", events=200)
>>> len(log), len(catalog) > 0
(200, True)
"""

from __future__ import annotations

from pathlib import Path

from producers.datasets import load_movielens
from producers.interactions import Catalog, InteractionLog
from producers.synth import SynthConfig, generate
from refold.bench import DATASETS


def event_log(dataset: str, path: str | Path | None = None, events: int | None = None,
              seed: int = 0) -> tuple[InteractionLog, Catalog]:
    """ml-100k from `path` (its first `events`; None: all) or the synthetic world of `events`
    events (None: 100,000) drawn with `seed`; with its catalog."""
    if dataset == "ml-100k":
        if path is None:
            raise ValueError("ml-100k needs a path")
        log, catalog = load_movielens(path)
        return (log if events is None else log[:events]), catalog
    if dataset == "synth":
        log, catalog, _ = generate(SynthConfig(n_events=100_000 if events is None else events,
                                               seed=seed))
        return log, catalog
    raise ValueError(f"unknown dataset {dataset!r}: one of {', '.join(DATASETS)}")
