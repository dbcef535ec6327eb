"""The classic offline protocol, to compare with published ml-100k tables.

Every rating is an implicit positive. Each user's ratings are shuffled (seeded) and split 75/25
into train and test (a random stratified split per user, like Microsoft Recommenders'
`python_stratified_split`); models train on train, and each user's top-10 over all items, train
items excluded, is scored against their test items. Metrics follow Recommenders'
`python_evaluation` (binary relevance, means over users with a test item):

- precision@10 = hits / 10; recall@10 = hits / |test|;
- NDCG@10 = Σ_hits 1/log(1 + rank) / Σ_{r ≤ min(|test|, 10)} 1/log(1 + r) (rank from 1; the log
  base cancels, so their natural log and log2 agree);
- MAP = Σ_hits (hits so far / rank) / |test|: their `map` (called `map_at_k` in the versions their
  published ml-100k tables used); `map_at_10` divides by min(|test|, 10) instead (their current
  `map_at_k`).

ALS is refold's `models.als` with hyper-parameters chosen on a second 75/25 split of the train
set only (coordinate search, like `refold.evaluation.search`), users' vectors as fitted.
Popularity ranks items by their train count. The published row is Recommenders' cornac BPR on
ml-100k with the same split ratio (their seed, so a different split).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from scipy.sparse import csr_matrix

from models.als import csr_from, train_als
from models.topk import topk_batch

ALS_GRID = {"factors": [32, 64, 128, 200], "regularization": [0.01, 0.1, 1.0, 10.0],
            "alpha": [1.0, 5.0, 20.0, 50.0], "iterations": [15, 30]}
ALS_START = {"factors": 64, "regularization": 0.1, "alpha": 5.0, "iterations": 15}
PUBLISHED = {"bpr (Recommenders, cornac)": {"precision_at_10": 0.388, "recall_at_10": 0.213,
                                            "ndcg_at_10": 0.442}}


def stratified_split(
    users: np.ndarray, ratio: float = 0.75, seed: int = 0
) -> np.ndarray:
    """A boolean train mask: per user, round(ratio · n) of their rows drawn at random."""
    rng = np.random.default_rng(seed)
    key = rng.random(len(users))
    order = np.lexsort((key, users))  # by user, shuffled within each user
    u = users[order]
    starts = np.flatnonzero(np.r_[True, u[1:] != u[:-1]])
    counts = np.diff(np.r_[starts, len(u)])
    rank = np.arange(len(u)) - np.repeat(starts, counts)
    train = np.zeros(len(users), dtype=bool)
    train[order] = rank < np.repeat(np.round(ratio * counts), counts)
    return train


def ranking_metrics(
    scores_of: Callable[[np.ndarray], np.ndarray], train: csr_matrix, test: csr_matrix, k: int = 10
) -> dict[str, float]:
    """Recommenders' ranking metrics of top-k lists; `scores_of(users)` gives (B, n_items)."""
    users = np.flatnonzero(np.diff(test.indptr) > 0)
    sums = dict.fromkeys(("precision_at_10", "recall_at_10", "ndcg_at_10", "map", "map_at_10"),
                         0.0)
    disc = 1.0 / np.log2(np.arange(2, k + 2))
    for lo in range(0, len(users), 256):
        batch = users[lo : lo + 256]
        S = np.asarray(scores_of(batch), dtype=np.float64)
        seen = [train.indices[train.indptr[u] : train.indptr[u + 1]] for u in batch]
        idx, _ = topk_batch(S, k, seen)
        for b, u in enumerate(batch):
            truth = test.indices[test.indptr[u] : test.indptr[u + 1]]
            hit = np.isin(idx[b], truth)
            n_rel, n_hit = len(truth), int(hit.sum())
            ap = float((np.cumsum(hit) / np.arange(1, k + 1))[hit].sum())
            sums["precision_at_10"] += n_hit / k
            sums["recall_at_10"] += n_hit / n_rel
            sums["ndcg_at_10"] += float(disc[hit].sum() / disc[: min(n_rel, k)].sum())
            sums["map"] += ap / n_rel
            sums["map_at_10"] += ap / min(n_rel, k)
    return {m: v / len(users) for m, v in sums.items()}


def _als_scores(train: csr_matrix, params: dict[str, Any], seed: int) -> Callable:
    m = train_als(train, params["factors"], params["regularization"], params["alpha"],
                  params["iterations"], seed)
    X, Y = np.asarray(m.user_factors), np.asarray(m.item_factors)
    return lambda users: X[users] @ Y.T


def tune_als(train_rows: tuple[np.ndarray, np.ndarray], shape: tuple[int, int], seed: int,
             log: Callable[[str], None] | None = None) -> tuple[dict[str, Any], list]:
    """Coordinate search on an inner 75/25 split of the train rows; by precision@10."""
    users, items = train_rows
    inner = stratified_split(users, 0.75, seed + 1)
    fit = csr_from(users[inner], items[inner], np.ones(int(inner.sum())), shape)
    val = csr_from(users[~inner], items[~inner], np.ones(int((~inner).sum())), shape)
    trials: list[dict[str, Any]] = []

    def score(p: dict[str, Any]) -> float:
        done = [t["precision_at_10"] for t in trials if t["params"] == p]
        if done:
            return done[0]
        r = ranking_metrics(_als_scores(fit, p, seed), fit, val)["precision_at_10"]
        trials.append({"params": p, "precision_at_10": r})
        if log:
            log(f"offline ALS {p}: validation precision@10 {r:.4f}")
        return r

    best = dict(ALS_START)
    best_p = score(best)
    for name, values in ALS_GRID.items():
        for v in values:
            if v != best[name]:
                cand = {**best, name: v}
                p = score(cand)
                if p > best_p:
                    best, best_p = cand, p
    return best, trials


def run(log_: Any, seed: int = 0, tune: bool = True,
        log: Callable[[str], None] | None = None) -> dict[str, Any]:
    """The offline comparison on an `InteractionLog` (all events are positives)."""
    _, users = np.unique(log_.user_ids, return_inverse=True)
    _, items = np.unique(log_.item_ids, return_inverse=True)
    shape = (int(users.max()) + 1, int(items.max()) + 1)
    mask = stratified_split(users, 0.75, seed)
    train = csr_from(users[mask], items[mask], np.ones(int(mask.sum())), shape)
    train.data[:] = 1.0  # repeated events are one positive
    test = csr_from(users[~mask], items[~mask], np.ones(int((~mask).sum())), shape)
    params, trials = (tune_als((users[mask], items[mask]), shape, seed, log) if tune
                      else (dict(ALS_START), []))
    pop = np.asarray(train.sum(axis=0)).ravel()
    models = {
        "popularity": ranking_metrics(lambda u: np.tile(pop, (len(u), 1)), train, test),
        "refold ALS": ranking_metrics(_als_scores(train, params, seed), train, test),
    }
    return {"models": models, "als_params": params, "published": PUBLISHED,
            "als_trials": trials, "split": {"train": int(mask.sum()), "test": int((~mask).sum()),
                                            "ratio": 0.75, "seed": seed}}


def table(result: dict[str, Any]) -> str:
    cols = ("precision_at_10", "recall_at_10", "ndcg_at_10", "map", "map_at_10")
    lines = ["| model | P@10 | R@10 | NDCG@10 | MAP | MAP@10 |", "|---" * 6 + "|"]
    rows = {**result["models"], **result["published"]}
    for name, m in rows.items():
        cells = [f"{m[c]:.3f}" if c in m else "–" for c in cols]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)
