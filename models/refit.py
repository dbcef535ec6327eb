"""One refit, without Kafka: train a candidate (warm-started), measure it, and gate it.

`train` fits implicit ALS (or BPR) through `models.als` on the store's training split, warm
starting from the live snapshot's vectors where item ids persist. Items touched by the held-out
(most recent) entries are then re-solved once against the full matrix, so the published factors
cover every event at the cost of a fraction of one iteration.

`Gate.check` refuses a candidate with NaN/inf factors, wrong dimensions, or a holdout recall@K below
the live snapshot's by more than `max_recall_drop`. Both are scored the way the worker serves: users
folded in against the item factors (the fold-in's exact solve), the training items excluded.

>>> import scipy.sparse as sp
>>> from models.store import TrainingData
>>> m = sp.csr_matrix(np.array([[1, 1, 0], [0, 1, 1], [1, 0, 1]], dtype=np.float32))
>>> data = TrainingData(["u0", "u1", "u2"], ["a", "b", "c"], m, m * 0, full=m)
>>> c = train(data, RefitParams(factors=2, iterations=3, holdout_fraction=0.0))
>>> c.Y.shape, sorted(c.metrics)
((3, 2), ['fit_seconds', 'iterations', 'nnz', 'train_loss', 'users'])
>>> g = Gate(RefitParams(factors=2))
>>> g.check(c, None, data).passed, g.check(Candidate(c.item_ids, c.Y[:, :1]), None, data).reason
(True, 'wrong dimensions: Y is (3, 1), expected (3, 2)')
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import scipy.sparse as sp
from implicit.cpu import _als
from threadpoolctl import threadpool_limits

from models import als, defaults
from models.errors import ModelError
from models.snapshot import Snapshot
from models.store import TrainingData
from models.topk import topk_batch

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RefitParams:
    """Hyper-parameters of a refit and of its gate (published in each snapshot's header)."""

    model: Literal["als", "bpr"] = "als"
    backend: Literal["implicit", "spark"] = "implicit"
    """Who trains ALS: implicit in this process, or Spark MLlib (`models.spark_als`)."""
    device: Literal["auto", "cpu", "gpu"] = "auto"
    """implicit's device: `auto` uses its CUDA fit when a GPU is present (`models.als`)."""
    spark_master: str = "local[*]"
    """Spark's master URL for the Spark backend (a cluster's in production)."""
    factors: int = defaults.FACTORS
    regularization: float = defaults.REGULARIZATION
    alpha: float = defaults.ALPHA
    iterations: int = defaults.ITERATIONS
    learning_rate: float = 0.01
    random_state: int | None = 0
    holdout_fraction: float = 0.02
    k: int = defaults.K
    max_recall_drop: float = 0.02
    """Refuse a candidate whose recall@K is below the live one's by more than this (absolute)."""
    eval_users: int = 1000

    def __post_init__(self) -> None:
        choices = {"backend": ("implicit", "spark"), "device": ("auto", "cpu", "gpu")}
        for name, allowed in choices.items():
            if getattr(self, name) not in allowed:
                raise ModelError(f"unknown refit {name} {getattr(self, name)!r}: expected one of "
                                 f"{', '.join(allowed)}")

    @property
    def dims(self) -> int:
        """Columns of Y: implicit's BPR adds an item-bias column."""
        return self.factors + (1 if self.model == "bpr" else 0)


@dataclass
class Candidate:
    """A trained, not yet published model: item ids, Y, XᵀX and its training metrics."""

    item_ids: Sequence[str]
    Y: np.ndarray
    XtX: np.ndarray | None = None
    metrics: dict[str, float] = field(default_factory=dict)


IterationCallback = Callable[[int, float, float | None], None]


def warm_rows(previous: Snapshot | None, item_ids: Sequence[str], dims: int,
              seed: int | None) -> np.ndarray | None:
    """Initial Y: the previous vectors of items it knows, small random ones for new items."""
    if previous is None or previous.factors != dims:
        return None
    Y = np.random.default_rng(seed).random((len(item_ids), dims), dtype=np.float32) * 0.01
    row = {x: i for i, x in enumerate(previous.item_ids)}
    rows = np.fromiter((row.get(x, -1) for x in item_ids), np.int64, len(item_ids))
    Y[rows >= 0] = previous.Y[rows[rows >= 0]]
    return Y


def train(data: TrainingData, params: RefitParams, warm: Snapshot | None = None,
          callback: IterationCallback | None = None) -> Candidate:
    """Fit on `data.matrix`, then re-solve the items of the held-out entries on `data.full`."""
    if params.backend == "spark":
        from models.spark_als import SparkOptions, train_spark

        return train_spark(data, params, SparkOptions(master=params.spark_master))
    t0 = time.perf_counter()
    if params.model == "bpr":
        m = als.train_bpr(data.matrix, params.factors, params.learning_rate,
                          params.regularization, params.iterations, params.random_state)
        X, Y = np.asarray(m.user_factors), np.asarray(m.item_factors)
        return Candidate(data.item_ids, Y, X.T.astype(np.float64) @ X, {
            "fit_seconds": time.perf_counter() - t0, "iterations": params.iterations,
            "users": data.matrix.shape[0], "nnz": data.full.nnz})
    init = warm_rows(warm, data.item_ids, params.dims, params.random_state)
    model = als.train_als(data.matrix, params.factors, params.regularization, params.alpha,
                          params.iterations, params.random_state, init, callback=callback,
                          device=params.device)
    Y = np.array(model.item_factors, dtype=np.float32)
    touched = np.unique((data.full - data.matrix).tocoo().col)
    if len(touched):  # the model's own solver (CG from the current vectors): cheap and close
        Ciu = (data.full.T.tocsr()[touched] * params.alpha).astype(np.float32).tocsr()
        Yt = np.ascontiguousarray(Y[touched])
        with threadpool_limits(1, "blas"):
            model.solver(Ciu, Yt, model.user_factors, params.regularization, num_threads=0)
        Y[touched] = Yt
    X = np.asarray(model.user_factors, dtype=np.float64)
    Cui = (data.matrix * params.alpha).astype(np.float32).tocsr()
    loss = float(_als.calculate_loss(Cui, model.user_factors, model.item_factors,
                                     params.regularization, num_threads=0))
    return Candidate(data.item_ids, Y, X.T @ X, {
        "fit_seconds": time.perf_counter() - t0, "iterations": params.iterations,
        "train_loss": loss, "users": data.matrix.shape[0], "nnz": data.full.nnz})


def recall_at_k(item_ids: Sequence[str], Y: np.ndarray, data: TrainingData, params: RefitParams,
                rows: np.ndarray | None = None) -> float:
    """Mean recall@K on `data.holdout` of users folded in from their `data.matrix` rows.

    Users are solved exactly against `Y` (the fold-in's closed form, with implicit's own solver)
    and their training items excluded. `rows` (user rows to evaluate) defaults to a seeded sample
    of `eval_users` users with a held-out positive; a held-out item unknown to `item_ids` counts
    as a miss.
    """
    rows = eval_rows(data, params) if rows is None else rows
    if len(rows) == 0:
        return float("nan")
    if item_ids is data.item_ids:  # a candidate trained on `data`: columns are its rows
        col = np.arange(len(item_ids), dtype=np.int64)
    else:
        pos = {x: i for i, x in enumerate(item_ids)}
        col = np.fromiter((pos.get(x, -1) for x in data.item_ids), np.int64, len(data.item_ids))
    Y = np.ascontiguousarray(Y, dtype=np.float32)
    if not Y.flags.writeable:  # a loaded snapshot's view; implicit's solver wants writable
        Y = Y.copy()
    train, held = _in_model(data.matrix[rows], col, len(Y)), _in_model(data.holdout[rows], col,
                                                                       len(Y))
    X = np.zeros((len(rows), Y.shape[1]), dtype=np.float32)
    with threadpool_limits(1, "blas"):
        _als.least_squares((train * params.alpha).tocsr(), X, Y, params.regularization, 0)
    # Like the fold-in, a user without a positive known item has no vector: no hits.
    solved = np.diff((train > 0).tocsr().indptr) > 0
    denom = np.maximum(1, np.minimum(params.k, np.diff(data.holdout[rows].indptr)))
    k, hits = min(params.k, len(Y) - 1), 0.0
    step = max(1, (1 << 22) // max(1, len(Y)))
    for s in range(0, len(rows), step):
        scores = X[s: s + step] @ Y.T
        seen = train[s: s + step].tocoo()
        scores[seen.row, seen.col] = -np.inf
        top = topk_batch(scores, k)[0]  # a sampled select: ~8x argpartition's speed here
        got = np.bincount(_in_top(held[s: s + step], top), minlength=len(scores))
        hits += (got * solved[s: s + step] / denom[s: s + step]).sum()
    return float(hits / len(rows))


def _in_top(held: sp.csr_matrix, top: np.ndarray) -> np.ndarray:
    """The rows of the entries of `held` whose column is in that row of `top` (sparse: no dense
    mask of users × items is built; -1 in `top` is no item)."""
    n = held.shape[1]
    keys = np.sort((np.arange(len(top))[:, None] * n + top)[top >= 0])
    h = held.tocoo()
    want = h.row.astype(np.int64) * n + h.col
    pos = np.minimum(np.searchsorted(keys, want), len(keys) - 1)
    return h.row[keys[pos] == want]


def _in_model(m: sp.csr_matrix, col: np.ndarray, n: int) -> sp.csr_matrix:
    """`m` with its columns mapped to model rows (`col`), columns unknown to the model dropped."""
    m = m.tocoo()
    c = col[m.col]
    keep = c >= 0
    return sp.csr_matrix((m.data[keep].astype(np.float32), (m.row[keep], c[keep])),
                         shape=(m.shape[0], n))


def eval_rows(data: TrainingData, params: RefitParams) -> np.ndarray:
    """Users with a held-out positive and a training row, at most `eval_users` (seeded)."""
    has_test = np.diff(data.holdout.indptr) > 0
    has_train = np.diff(data.matrix.indptr) > 0
    rows = np.flatnonzero(has_test & has_train)
    if len(rows) > params.eval_users:
        rng = np.random.default_rng(0)
        rows = np.sort(rng.choice(rows, params.eval_users, replace=False))
    return rows


@dataclass(frozen=True)
class Verdict:
    passed: bool
    reason: str
    metrics: dict[str, float]


class Gate:
    """Validation gate; counters are plain attributes (metrics wire them later)."""

    def __init__(self, params: RefitParams) -> None:
        self.params = params
        self.checked = 0
        self.passed = 0
        self.refused = 0
        self.refused_nonfinite = 0
        self.refused_dimensions = 0
        self.refused_recall = 0
        self.last_reason = ""

    def check(self, cand: Candidate, live: Snapshot | None, data: TrainingData,
              live_recall: float | None = None) -> Verdict:
        """Pass or refuse `cand`; `metrics` carry recall@K of the candidate and the live model
        (`live_recall`, if given, is `live_recall_of(live, data)` computed beforehand)."""
        self.checked += 1
        expected = (len(cand.item_ids), self.params.dims)
        if cand.Y.ndim != 2 or cand.Y.shape != expected:
            return self._refuse("dimensions", f"wrong dimensions: Y is {cand.Y.shape}, "
                                f"expected {expected}")
        if cand.XtX is not None and cand.XtX.shape != (expected[1],) * 2:
            return self._refuse("dimensions", f"wrong dimensions: XtX is {cand.XtX.shape}")
        if not np.isfinite(cand.Y).all() or (cand.XtX is not None
                                             and not np.isfinite(cand.XtX).all()):
            return self._refuse("nonfinite", "factors contain NaN or infinity")
        metrics: dict[str, float] = {}
        rows = eval_rows(data, self.params)
        if len(rows):
            metrics["recall_at_k"] = recall_at_k(cand.item_ids, cand.Y, data, self.params, rows)
            metrics["eval_users"] = float(len(rows))
            if live is not None and live.factors == self.params.dims:
                if live_recall is None:
                    live_recall = self.live_recall_of(live, data)
                metrics["live_recall_at_k"] = live_recall
                if metrics["recall_at_k"] < live_recall - self.params.max_recall_drop:
                    return self._refuse("recall", f"recall@{self.params.k} "
                                        f"{metrics['recall_at_k']:.4f} < live {live_recall:.4f} - "
                                        f"{self.params.max_recall_drop}", metrics)
        self.passed += 1
        return Verdict(True, "passed", metrics)

    def live_recall_of(self, live: Snapshot | None, data: TrainingData) -> float | None:
        """The live model's recall@K on `data`'s holdout, as `check` scores it (None: no live
        model of these dimensions). It needs no candidate: a refit computes it while training."""
        if live is None or live.factors != self.params.dims:
            return None
        return recall_at_k(live.item_ids, live.Y, data, self.params, eval_rows(data, self.params))

    def _refuse(self, kind: str, reason: str, metrics: dict[str, Any] | None = None) -> Verdict:
        self.refused += 1
        setattr(self, f"refused_{kind}", getattr(self, f"refused_{kind}") + 1)
        self.last_reason = reason
        log.warning("gate refused a candidate: %s", reason)
        return Verdict(False, reason, dict(metrics or {}))
