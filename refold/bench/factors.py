"""Synthetic item factors and folded-in users for the retrieval benchmarks, in two shapes.

- `gaussian`: every row drawn from N(0, I/k): all items have about the same norm and no
  structure, the hardest case for an approximate index (the top 20 of a million barely stand
  out from the next thousand);
- `als`: the same directions, with norms spread the way implicit's ALS spreads them on
  MovieLens 100K (64 factors: the 1st to 99th percentile of item norms span ~19x, and the norm
  follows log popularity with correlation 0.96): a log-normal norm, exp(0.63 z), ranked by the
  item's popularity (lower index = more popular, as `zipf_items` draws them).

Users are folded in exactly (`models.foldin.fold_in_batch`) from a few long-tail items each.
`padded` grows a fitted model's catalog with `als`-shaped items (a worker on a large catalog
replaying a real dataset's events).

>>> Y = item_factors(1000, 8, "als", seed=0)
>>> norms = np.linalg.norm(Y, axis=1)
>>> Y.dtype.name, bool(norms[:100].mean() > norms[-100:].mean())
('float32', True)
>>> X, items = users(Y, 3, seed=0)
>>> X.shape, len(items)
((3, 8), 3)
>>> big = padded(ItemFactors(["a", "b"], Y[:2], version=1), 1000)
>>> len(big), big.item_ids[:3], big.version
(1000, ('a', 'b', 'synthetic-0'), 1)
"""

from __future__ import annotations

from typing import Literal

import numpy as np

from models.foldin import ItemFactors, fold_in_batch

Shape = Literal["gaussian", "als"]
SHAPES: tuple[Shape, ...] = ("gaussian", "als")
NORM_SIGMA = 0.63
"""log-normal spread of the `als` norms: ln(19) / (2 · 2.326), the 1-99 percentile span."""
NORM_POPULARITY_CORR = 0.96


def item_factors(n: int, k: int, shape: Shape = "gaussian", seed: int = 0) -> np.ndarray:
    """An (n, k) float32 matrix of item factors of the given shape (see the module docstring)."""
    rng = np.random.default_rng(seed)
    Y = rng.standard_normal((n, k), dtype=np.float32) / np.float32(np.sqrt(k))
    if shape == "gaussian":
        return Y
    if shape != "als":
        raise ValueError(f"unknown factor shape {shape!r}: expected one of {SHAPES}")
    Y /= np.linalg.norm(Y, axis=1, keepdims=True)
    z = -np.sort(-rng.standard_normal(n))  # index 0, the most popular, gets the largest
    c = NORM_POPULARITY_CORR
    z = c * z + np.sqrt(1 - c * c) * rng.standard_normal(n)
    Y *= np.exp(NORM_SIGMA * z).astype(np.float32)[:, None] * np.float32(0.25)
    return Y


def zipf_items(n_items: int, size: int | tuple[int, ...], rng: np.random.Generator
               ) -> np.ndarray:
    """Long-tailed item indices: low indices are the popular ones."""
    return (rng.zipf(1.3, size) - 1) % n_items


def users(Y: np.ndarray, n_users: int, per_user: int = 10, seed: int = 0,
          alpha: float = 2.0, regularization: float = 0.05
          ) -> tuple[np.ndarray, list[np.ndarray]]:
    """`n_users` user vectors folded in from `per_user` clicks (weight 0.3) each, and each
    user's items (which a ranking excludes)."""
    rng = np.random.default_rng(seed)
    items = [np.unique(zipf_items(len(Y), per_user, rng)) for _ in range(n_users)]
    Y64 = Y.astype(np.float64)
    gram = Y64.T @ Y64
    inv = np.linalg.inv(gram + regularization * np.eye(Y.shape[1]))
    X, _ = fold_in_batch(Y, gram, items, [np.full(len(i), 0.3) for i in items], alpha,
                         regularization, inv)
    return X, items


def padded(factors: ItemFactors, n: int, seed: int = 0) -> ItemFactors:
    """`factors` with `synthetic-<i>` items appended up to `n` items in all: `als`-shaped
    vectors scaled to the fitted items' median norm, no training interactions (`counts` 0);
    the fitted items keep their rows, `XtX`, mixer and idf."""
    extra = n - len(factors)
    if extra <= 0:
        return factors
    Y = item_factors(extra, factors.factors, "als", seed)
    Y *= np.float32(np.median(np.linalg.norm(factors.Y, axis=1))
                    / np.median(np.linalg.norm(Y, axis=1)))
    counts = None if factors.counts is None else np.concatenate([factors.counts,
                                                                 np.zeros(extra)])
    return ItemFactors([*factors.item_ids, *(f"synthetic-{i}" for i in range(extra))],
                       np.vstack([factors.Y, Y]), factors.version, XtX=factors.XtX,
                       counts=counts, mixer=factors.mixer, idf=factors.idf)
