"""Hyper-parameter search on the warm-up only: the same small search for every model.

The warm-up (events [0, W)) is split in time: models are fitted on [0, F) with F = `fit_share`·W
and replayed test-then-train on [F, W), exactly as in the evaluation. Per model, coordinate
search starts from its defaults and tries each listed value of one parameter at a
time, keeping a value only if it raises validation recall@10 (ties keep the earlier value); a
second pass runs if the first changed anything. Every model gets a comparable number of trials,
and nothing after W is ever read.
`foldin_only` and `oracle` use the parameters found for `refold`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

from refold.evaluation.contenders import MODELS, REFOLD_FAMILY, build, params_of
from refold.evaluation.runner import Dataset, Protocol, replay

_ALS_GRID = {
    "factors": [16, 32, 64],
    "regularization": [0.05, 1.0, 5.0, 20.0, 50.0],
    "alpha": [1.0, 2.0, 5.0],
}
_RIVER_GRID = {
    "target": ["rating", "implicit"],
    "lr": [0.005, 0.01, 0.02, 0.05, 0.1, 0.2],
    "n_factors": [2, 5, 10, 20],
    "negatives": [1, 2, 4],
    "l2": [0.0, 0.01],
}
GRIDS: dict[str, dict[str, list[Any]]] = {
    "popularity": {},
    "trending": {"half_life": [3600.0, 6 * 3600.0, 86400.0, 3 * 86400.0, 7 * 86400.0,
                               30 * 86400.0, 90 * 86400.0]},
    "river_funkmf": _RIVER_GRID,
    "river_biasedmf": _RIVER_GRID,
    "static_als": _ALS_GRID,
    "oryx_rank1": {**_ALS_GRID, "strength": [0.5, 1.0, 3.0]},
    "refold": {**_ALS_GRID, "half_life_events": [2.0, 5.0, 10.0, 20.0],
               "full_events": [1, 5, 20], "trending_half_life_seconds": [86400.0, 7 * 86400.0],
               "session_weight": [0.0, 0.5, 1.0, 2.0], "session_window": [5, 10, 20],
               "session_decay": [0.6, 0.8, 1.0], "session_items": [5, 10, 20],
               "session_half_life": [1.0, 2.0, 5.0]},
}
"""The values tried per parameter, in the order the parameters are visited."""


def search(
    data: Dataset,
    protocol: Protocol,
    models: Sequence[str] = MODELS,
    fit_share: float = 0.75,
    passes: int = 2,
    log: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Tune each model of `models` (the refold family once, as `refold`) on the warm-up.

    Returns {"models": {name: {"best", "recall", "trials", "seconds"}}, "fit_events",
    "warmup_events"}; pass `{name: r["best"]}` as `tuned` to `runner.evaluate`.
    """
    warm = round(protocol.warmup * len(data.events))
    fit_end = round(fit_share * warm)
    if not 0 < fit_end < warm:
        raise ValueError("the warm-up is too short to split into fit and validation")
    keys = list(dict.fromkeys("refold" if m in REFOLD_FAMILY else m for m in models))
    out: dict[str, Any] = {}
    for key in keys:
        t0 = time.perf_counter()
        best = params_of(key)
        trials: list[dict[str, Any]] = []
        best_recall = _trial(key, best, data, protocol, fit_end, warm, trials)
        for _ in range(passes):
            start = best
            for param, values in GRIDS[key].items():
                for v in values:
                    cand = {**best, param: v}
                    if any(t["params"] == cand for t in trials):
                        continue
                    r = _trial(key, cand, data, protocol, fit_end, warm, trials)
                    if r > best_recall:
                        best, best_recall = cand, r
            if best == start:
                break
        out[key] = {"best": best, "recall": best_recall, "trials": trials,
                    "seconds": time.perf_counter() - t0}
        if log:
            log(f"search {key}: {best} (validation recall@10 {best_recall:.4f}, "
                f"{len(trials)} trials)")
    return {"models": out, "fit_events": fit_end, "warmup_events": warm}


def tuned(result: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The chosen parameters per model key, for `runner.evaluate(tuned=...)`."""
    return {k: v["best"] for k, v in result["models"].items()}


def _trial(key: str, params: dict[str, Any], data: Dataset, protocol: Protocol, fit_end: int,
           stop: int, trials: list[dict[str, Any]]) -> float:
    model = build(key, params, data.names, protocol.fold_in_config(), protocol.refit_every,
                  protocol.seed)
    metrics, _, _ = replay(model, data, fit_end, protocol, stop=stop)
    recall = float(metrics.summary()["recall_at_10"])
    recall = recall if recall == recall else 0.0  # nothing scored counts as nothing found
    trials.append({"params": params, "recall": recall})
    return recall
