"""The Spark MLlib refit backend, in local mode: same problem, same snapshot, same gate."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp

from models.refit import Gate, RefitParams, recall_at_k, train
from models.snapshot import Snapshot
from models.store import TrainingData

pytest.importorskip("pyspark", reason="the spark extra is not installed")
ML100K = Path(os.environ.get(
    "REFOLD_ML100K", Path(__file__).resolve().parents[3] / "shared" / "datasets" / "ml-100k"))
PARAMS = RefitParams(factors=32, iterations=10, k=10, eval_users=2000)


@pytest.fixture(scope="module")
def spark_options():
    from models.spark_als import SparkOptions, stop_sessions

    yield SparkOptions(master="local[*]", conf={"spark.driver.memory": "1g"})
    stop_sessions()


def ml100k_split(seed: int = 0, share: float = 0.2) -> TrainingData:
    """ml-100k's ratings with `share` of each user's entries held out at random (a holdout on
    every user, so that recall@10 is measured on all 943 of them, not on the last few days')."""
    from producers.datasets import load_movielens

    log, _ = load_movielens(ML100K)
    users, u = np.unique(log.user_ids, return_inverse=True)
    items, i = np.unique(log.item_ids, return_inverse=True)
    full = sp.csr_matrix((np.ones(len(u), np.float32), (u, i)), shape=(len(users), len(items)))
    full.sum_duplicates()
    coo = full.tocoo()
    held = np.random.default_rng(seed).random(coo.nnz) < share
    keep = sp.csr_matrix((coo.data[~held], (coo.row[~held], coo.col[~held])), shape=full.shape)
    test = sp.csr_matrix((np.ones(int(held.sum()), np.float32), (coo.row[held], coo.col[held])),
                         shape=full.shape)
    return TrainingData(users.tolist(), items.tolist(), keep, test, full=keep)


@pytest.mark.slow
@pytest.mark.skipif(not ML100K.is_dir(), reason=f"no ml-100k at {ML100K}")
def test_spark_model_recalls_as_implicit_and_passes_the_gate(spark_options) -> None:
    data = ml100k_split()
    reference = train(data, PARAMS)
    cand = train(data, dataclasses.replace(PARAMS, backend="spark"))  # the refitter's way in

    assert cand.Y.shape == reference.Y.shape and cand.XtX.shape == (32, 32)
    assert list(cand.item_ids) == list(reference.item_ids)
    ours = recall_at_k(cand.item_ids, cand.Y, data, PARAMS)
    theirs = recall_at_k(reference.item_ids, reference.Y, data, PARAMS)
    assert theirs > 0.15  # a real model: popularity alone is ~0.10 here
    assert ours >= 0.95 * theirs, (ours, theirs)
    live = Snapshot.build(1, 0.0, reference.item_ids, reference.Y, XtX=reference.XtX)
    verdict = Gate(PARAMS).check(cand, live, data)
    assert verdict.passed, verdict.reason
    # the same snapshot format: workers cannot tell which backend ran
    snap = Snapshot.build(2, 0.0, cand.item_ids, cand.Y, XtX=cand.XtX)
    back = Snapshot.from_bytes(snap.to_bytes())
    assert np.array_equal(back.Y, cand.Y) and np.allclose(back.XtX, cand.XtX)


@pytest.mark.slow
def test_held_out_items_are_resolved_on_every_entry(spark_options) -> None:
    """An item seen only in the held-out entries gets a vector from its users, as with implicit
    (the Spark fit never saw it)."""
    from models.spark_als import train_spark

    rng = np.random.default_rng(1)
    dense = (rng.random((60, 12)) < 0.4).astype(np.float32)
    dense[:, 11] = 0
    dense[:20, 11] = 1.0  # item 11: only in the full matrix
    full = sp.csr_matrix(dense)
    matrix = full.copy().tolil()
    matrix[:, 11] = 0
    matrix = sp.csr_matrix(matrix)
    matrix.eliminate_zeros()
    data = TrainingData([f"u{u}" for u in range(60)], [f"i{i}" for i in range(12)], matrix,
                        sp.csr_matrix(full.shape, dtype=np.float32), full=full)
    params = RefitParams(factors=4, iterations=5, holdout_fraction=0.0)
    cand = train_spark(data, params, spark_options)
    assert np.abs(cand.Y[11]).sum() > 0
    assert np.isfinite(cand.Y).all()


def test_interactions_export_to_parquet(tmp_path: Path) -> None:
    pq = pytest.importorskip("pyarrow.parquet")
    from models.spark_als import export_parquet

    m = sp.csr_matrix(np.array([[0, 2.5], [1.0, 0]], dtype=np.float32))
    table = pq.read_table(export_parquet(m, tmp_path / "x.parquet")).to_pydict()
    assert sorted(zip(table["user"], table["item"], table["weight"], strict=True)) == \
        [(0, 1, 2.5), (1, 0, 1.0)]


def test_bpr_is_refused() -> None:
    from models.spark_als import train_spark
    from models.weights import ModelError

    with pytest.raises(ModelError, match="ALS only"):
        train_spark(TrainingData(["u"], ["i"], sp.csr_matrix(np.ones((1, 1), np.float32)),
                                 sp.csr_matrix((1, 1), dtype=np.float32)), RefitParams(model="bpr"))
