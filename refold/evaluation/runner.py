"""Prequential replay: every model sees the same events in the same order, test then train.

Protocol (`Protocol` holds its knobs):

1. The log is in event-time order, ties in file order (`InteractionLog` sorts stably), so a
   replay is deterministic. Users and items become dense indices (catalog items first).
2. Each event gets the worker's weight (`EventWeights`; by default every rating is a positive
   of weight 1, the "all ratings" protocol). An event is *positive* when its weight is > 0.
3. The first `warmup` share of events is the warm-up: models are fitted on it (and the
   hyper-parameter search, `--search`, sees nothing else); it is never scored.
4. Then, per event, in order: if it is positive and its item is not already excluded for the
   user (consumed: an event of a type in `FoldInConfig.exclude_types`, or dismissed), the model
   is asked for the user's top-K at the event's time, *before* learning it, and the list is
   scored against the event's item (`models.prequential`); then the model learns the event.
   Lists must not contain excluded items; the harness counts any that do (`violations`).
5. Compute seconds are the CPU time (all threads of the process: implicit's ALS runs on every
   core) spent inside each model's `fit`, `recommend` and `learn`, refits included; wall-clock
   seconds are recorded next to them. Models run one after another in one process.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
from tqdm import tqdm

from models import compiled
from models.baselines import Events, StreamModel
from models.prequential import PrequentialMetrics
from models.recommender import FoldInConfig
from models.weights import EventWeights
from refold.evaluation.clock import Clock
from refold.evaluation.contenders import (
    MODELS,
    OPTIONAL,
    REFOLD_FAMILY,
    Names,
    build,
    params_of,
)


@dataclass(frozen=True)
class Protocol:
    """The knobs of one evaluation (recorded in the report and in `--json`)."""

    warmup: float = 0.2
    window: int = 5000
    k: int = 10
    refit_every: int = 5000
    oracle_every: int = 1000
    seed: int = 0
    ratings_as_positive: bool = True
    fold_in: dict[str, Any] = field(default_factory=dict)
    """FoldInConfig overrides for the refold family (e.g. {"session_boost": 2.0})."""

    def __post_init__(self) -> None:
        if not 0 < self.warmup < 1:
            raise ValueError("warmup must be a share in (0, 1)")
        if min(self.window, self.k, self.refit_every, self.oracle_every) < 1:
            raise ValueError("window, k, refit_every and oracle_every must be at least 1")

    def fold_in_config(self) -> FoldInConfig:
        weights = EventWeights(ratings_as_positive=self.ratings_as_positive)
        return FoldInConfig.from_mapping({**self.fold_in, "weights": weights})


@dataclass(frozen=True)
class Dataset:
    """An encoded log: the events as indices, the ids behind them, and item categories."""

    name: str
    events: Events
    names: Names
    categories: np.ndarray | None
    """Boolean (n_items, n_categories), None when no item has a category."""
    excluding: np.ndarray
    """Per event, whether it excludes its item for its user from then on."""


def encode(log: Any, catalog: Sequence[Any], protocol: Protocol,
           profiles: Sequence[Any] = ()) -> Dataset:
    """Index an `InteractionLog` and its `Catalog` (items: catalog order, then first sight);
    items with text or tags, and users' declared `profiles`, reach refold's recommender."""
    cfg = protocol.fold_in_config()
    item_ids = list(dict.fromkeys([it.item_id for it in catalog] + log.item_ids.tolist()))
    user_ids = list(dict.fromkeys(log.user_ids.tolist()))
    item_of = {x: i for i, x in enumerate(item_ids)}
    user_of = {x: i for i, x in enumerate(user_ids)}
    cats_of = {it.item_id: list(it.categories) for it in catalog}
    item_cats = [cats_of.get(x, []) for x in item_ids]
    names = sorted({c for cs in item_cats for c in cs})
    categories = None
    if names:
        col = {c: j for j, c in enumerate(names)}
        categories = np.zeros((len(item_ids), len(names)), dtype=bool)
        for i, cs in enumerate(item_cats):
            categories[i, [col[c] for c in cs]] = True
    kinds = log.event_types
    values = log.values
    weights = np.array([cfg.weights.weight(kind, None if v != v else v)
                        for kind, v in zip(kinds.tolist(), values.tolist(), strict=True)])
    excluding = np.isin(kinds, sorted(cfg.exclude_types | {"dismiss"}))
    events = Events(
        np.fromiter(map(user_of.__getitem__, log.user_ids.tolist()), np.int64, len(log)),
        np.fromiter(map(item_of.__getitem__, log.item_ids.tolist()), np.int64, len(log)),
        weights, log.times, len(user_ids), len(item_ids), values, kinds, log.session_ids,
    )
    described = [it for it in catalog if getattr(it, "text", None) or getattr(it, "tags", None)]
    names_ = Names(user_ids, item_ids, item_cats, items=list(catalog) if described else (),
                   profiles=list(profiles))
    return Dataset(log.name or "log", events, names_, categories, excluding)


def replay(
    model: StreamModel, data: Dataset, start: int, protocol: Protocol,
    stop: int | None = None, progress: Callable[[int], None] | None = None,
) -> tuple[PrequentialMetrics, Clock, int]:
    """Fit `model` on events [0, start), then test-then-train on [start, stop).

    Returns the metrics, the time spent inside the model and the number of excluded items the
    model recommended (each is also scored as shown).
    """
    ev, k = data.events, protocol.k
    stop = len(ev) if stop is None else stop
    metrics = PrequentialMetrics(k, ev.n_items, data.categories, protocol.window)
    excluded: list[dict[int, None]] = [{} for _ in range(ev.n_users)]
    prior = [0] * ev.n_users
    rows, excl = ev.rows()[:stop], data.excluding[:stop].tolist()
    compiled.warm_up()  # compiling is not any one model's compute (nor the search's first trial)
    clock = Clock()
    with clock:
        model.fit(ev[:start])
    for j in range(start):
        _account(rows[j], excl[j], excluded, prior, metrics)
    violations = 0
    for j in range(start, stop):
        e = rows[j]
        ex = excluded[e.user]
        if e.weight > 0 and e.item not in ex:
            exclude = np.fromiter(ex, dtype=np.int64, count=len(ex))
            with clock:
                recs = model.recommend(e.user, k, exclude, e.t)
            violations += sum(1 for i in recs.tolist() if i in ex)
            metrics.score(e.user, recs, e.item, prior[e.user], j)
        with clock:
            model.learn(e)
        _account(e, excl[j], excluded, prior, metrics)
        if progress is not None and (j - start) % 1000 == 999:
            progress(1000)
    if progress is not None:
        progress((stop - start) % 1000)
    return metrics, clock, violations


def _account(e: Any, excluding: bool, excluded: list[dict[int, None]], prior: list[int],
             metrics: PrequentialMetrics) -> None:
    """After the model learned `e`: the harness's own bookkeeping."""
    prior[e.user] += 1
    if excluding:
        excluded[e.user][e.item] = None
    metrics.learned(e.user, e.item)


def evaluate(
    data: Dataset,
    protocol: Protocol,
    models: Sequence[str] = MODELS,
    tuned: Mapping[str, Mapping[str, Any]] | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Replay every model in `models`; the result is what `--json` prints, plus the series the
    report plots (`windowed`, `cold_curve`) under each model."""
    unknown = [m for m in models if m not in MODELS + OPTIONAL]
    if unknown:
        raise ValueError(f"unknown model(s) {', '.join(unknown)}; "
                         f"known: {', '.join(MODELS + OPTIONAL)}")
    n = len(data.events)
    start = round(protocol.warmup * n)
    if not 0 < start < n:
        raise ValueError(f"a warm-up of {protocol.warmup} leaves nothing to fit or to score")
    cfg = protocol.fold_in_config()
    out: dict[str, Any] = {}
    bar = tqdm(total=(n - start) * len(models), unit="ev", disable=not progress,
               desc="prequential", dynamic_ncols=True)
    with bar:
        for name in models:
            bar.set_postfix_str(name)
            params = params_of(name, tuned)
            if name in REFOLD_FAMILY:  # an explicit fold-in setting beats the model's default
                params.update({k: v for k, v in protocol.fold_in.items() if k in params})
            every = protocol.oracle_every if name == "oracle" else protocol.refit_every
            model = build(name, params, data.names, cfg, every, protocol.seed)
            metrics, clock, violations = replay(model, data, start, protocol,
                                                progress=bar.update)
            pos, win = metrics.windowed()
            out[name] = {
                **metrics.summary(), "seconds": clock.cpu, "wall_seconds": clock.wall,
                "violations": violations, "refits": getattr(model, "refits", 0),
                "refit_seconds": getattr(model, "refit_seconds", 0.0),
                "refit_wall_seconds": getattr(model, "refit_wall_seconds", 0.0), "params": params,
                "windowed": {"position": pos.tolist(), "recall": win.tolist()},
                "cold_curve": metrics.cold_curve(),
            }
    return {"models": out, "protocol": describe(protocol, data, start)}


def describe(protocol: Protocol, data: Dataset, start: int) -> dict[str, Any]:
    ev = data.events
    return {
        **asdict(protocol), "dataset": data.name, "events": len(ev), "users": ev.n_users,
        "items": ev.n_items, "warmup_events": start, "scored": "positive events after the warm-up"
        " whose item the user had not consumed", "order": "event time, ties in file order",
        "fold_in_config": {k: v for k, v in asdict(protocol.fold_in_config()).items()
                           if k not in ("weights", "exclude_types")},
        "exclude_types": sorted(protocol.fold_in_config().exclude_types),
    }
