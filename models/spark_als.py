"""Implicit ALS on Apache Spark (MLlib): the refit backend for data beyond one machine.

`train_spark` takes the same `TrainingData` and `RefitParams` as `models.refit.train` and returns
the same `Candidate` (item ids, Y, XᵀX), so the gate and the snapshot do not know which backend
ran. The interactions go to Spark as Parquet (`export_parquet`: user, item, weight; on a cluster,
point `staging_dir` at storage its executors read), and the item factors come back as Parquet
written by Spark. Nothing of size users × k reaches this process and no Python runs on the
executors: XᵀX is summed in the JVM, and only the users of the held-out entries' items are read
back (to re-solve those items against every entry, as `train` does).

The objective matches implicit's, with two differences of formulation:

- Spark's confidence is 1 + alpha·r where implicit's is alpha·r (r: summed weight; p = [r > 0]
  in both), so an observed item weighs one unit more;
- Spark scales λ by each user's (and item's) number of entries (ALS-WR), implicit does not:
  `regParam` = `regularization` / `reg_scale`, where `reg_scale` defaults to the mean entries per
  user of the data (measured on ml-100k: the holdout recall@10 is then within 1% of implicit's).

Spark ALS cannot start from given factors, so every Spark refit is a cold fit (no warm start).

>>> SparkOptions().master
'local[*]'
"""

from __future__ import annotations

import logging
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp

from models.errors import ModelError
from models.foldin import fold_in_batch
from models.refit import Candidate, RefitParams
from models.store import TrainingData

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SparkOptions:
    """Where Spark runs and how; `conf` is passed through as `spark.*` settings."""

    master: str = "local[*]"
    app_name: str = "refold-refit"
    conf: Mapping[str, str] = field(default_factory=dict)
    staging_dir: str | None = None
    """Where the interactions and factors are exchanged as Parquet (default: a temp dir)."""
    blocks: int | None = None
    """ALS user and item blocks (default: Spark's default parallelism)."""
    reg_scale: float | None = None
    """λ divisor for Spark's per-entry-scaled regularization (default: mean entries per user)."""


_sessions: dict[tuple[str, str, tuple[tuple[str, str], ...]], Any] = {}


def session(options: SparkOptions) -> Any:
    """A SparkSession for `options`, started once per process (a JVM start takes seconds)."""
    key = (options.master, options.app_name, tuple(sorted(options.conf.items())))
    spark = _sessions.get(key)
    if spark is None:
        try:
            from pyspark.sql import SparkSession
        except ImportError as exc:
            raise ModelError("the Spark backend needs pyspark: pip install 'refold[spark]'") \
                from exc
        builder = SparkSession.builder.master(options.master).appName(options.app_name)
        defaults = {"spark.ui.enabled": "false", "spark.ui.showConsoleProgress": "false",
                    "spark.sql.shuffle.partitions": "8"}
        for k, v in {**defaults, **options.conf}.items():
            builder = builder.config(k, v)
        spark = _sessions[key] = builder.getOrCreate()
        spark.sparkContext.setLogLevel("ERROR")
    return spark


def stop_sessions() -> None:
    """Stop every session `session` started (tests, process exit)."""
    while _sessions:
        _sessions.popitem()[1].stop()


def export_parquet(matrix: sp.spmatrix, path: str | Path) -> Path:
    """`matrix` (users × items) as a Parquet file of (user int32, item int32, weight float32)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    coo = matrix.tocoo()
    table = pa.table({"user": coo.row.astype(np.int32), "item": coo.col.astype(np.int32),
                      "weight": coo.data.astype(np.float32)})
    path = Path(path)
    pq.write_table(table, path)
    return path


def train_spark(data: TrainingData, params: RefitParams,
                options: SparkOptions | None = None) -> Candidate:
    """Fit Spark's implicit ALS on `data.matrix`; re-solve the held-out entries' items on
    `data.full` (see the module docstring)."""
    if params.model != "als":
        raise ModelError(f"the Spark backend trains ALS only, not {params.model!r}")
    options = options or SparkOptions()
    spark = session(options)
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(dir=options.staging_dir, prefix="refold-spark-") as tmp:
        model = _fit(spark, data.matrix, params, options, Path(tmp))
        Y = _item_factors(model, Path(tmp) / "items", data.matrix.shape[1], params.factors)
        XtX = _gramian(model)
        touched = np.unique((data.full - data.matrix).tocoo().col)
        if len(touched):
            _resolve_items(spark, model, data.full, touched, Y, XtX, params)
    if not np.isfinite(Y).all() or not np.isfinite(XtX).all():
        raise ModelError("Spark ALS gave NaN or infinite factors: raise regularization")
    return Candidate(data.item_ids, Y, XtX, {
        "fit_seconds": time.perf_counter() - t0, "iterations": params.iterations,
        "users": data.matrix.shape[0], "nnz": data.full.nnz})


def _fit(spark: Any, matrix: sp.csr_matrix, params: RefitParams, options: SparkOptions,
         tmp: Path) -> Any:
    from pyspark.ml.recommendation import ALS

    path = export_parquet(matrix, tmp / "interactions.parquet")
    ratings = spark.read.parquet(str(path))
    per_user = matrix.nnz / max(1, int((np.diff(matrix.indptr) > 0).sum()))
    scale = options.reg_scale or per_user
    blocks = options.blocks or spark.sparkContext.defaultParallelism
    als = ALS(rank=params.factors, maxIter=params.iterations,
              regParam=params.regularization / scale, alpha=params.alpha, implicitPrefs=True,
              userCol="user", itemCol="item", ratingCol="weight", nonnegative=False,
              numUserBlocks=blocks, numItemBlocks=blocks, coldStartStrategy="nan",
              seed=params.random_state if params.random_state is not None else 0)
    log.info("Spark ALS on %s: %d x %d, nnz %d, regParam %.3g (λ / %.1f)", options.master,
             *matrix.shape, matrix.nnz, params.regularization / scale, scale)
    return als.fit(ratings)


def _item_factors(model: Any, path: Path, n_items: int, k: int) -> np.ndarray:
    """Y (n_items, k) float32; items without an entry to train on get zeros."""
    import pyarrow.parquet as pq

    model.itemFactors.write.parquet(str(path))
    table = pq.read_table(path)
    ids = table.column("id").to_numpy()
    feats = table.column("features").combine_chunks()
    flat = feats.values.to_numpy(zero_copy_only=False).astype(np.float32)
    Y = np.zeros((n_items, k), dtype=np.float32)
    Y[ids] = flat.reshape(len(ids), k)
    return Y


def _gramian(model: Any) -> np.ndarray:
    """XᵀX of the user factors, summed on the executors (in the JVM: no Python workers)."""
    from pyspark.ml.functions import array_to_vector
    from pyspark.mllib.linalg.distributed import RowMatrix
    from pyspark.mllib.util import MLUtils

    rows = model.userFactors.select(array_to_vector("features").alias("x"))
    return RowMatrix(MLUtils.convertVectorColumnsFromML(rows, "x")).computeGramianMatrix() \
        .toArray()


def _resolve_items(spark: Any, model: Any, full: sp.csr_matrix, touched: np.ndarray,
                   Y: np.ndarray, XtX: np.ndarray, params: RefitParams) -> None:
    """Y[touched] re-solved against all their entries in `full`, users fixed (in place)."""
    cols = full.tocsc()[:, touched]
    users = np.unique(cols.indices)
    wanted = spark.createDataFrame([(int(u),) for u in users.tolist()], ["id"])
    rows = model.userFactors.join(wanted, "id").collect()
    X = np.zeros((full.shape[0], params.factors), dtype=np.float32)
    for r in rows:
        X[r.id] = r.features
    items = [cols.indices[cols.indptr[j]:cols.indptr[j + 1]] for j in range(len(touched))]
    weights = [cols.data[cols.indptr[j]:cols.indptr[j + 1]] for j in range(len(touched))]
    Yt, ok = fold_in_batch(X, XtX, items, weights, params.alpha, params.regularization)
    Y[touched[ok]] = Yt[ok]
