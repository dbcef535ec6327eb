"""A worker process holds BLAS to one thread unless the environment sets a count."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

PROBE = """
from threadpoolctl import threadpool_info
import numpy
from consumers.assembly import one_blas_thread
done = one_blas_thread()
print(done, sorted({p["num_threads"] for p in threadpool_info() if p["user_api"] == "blas"}))
"""


def probe(env: dict[str, str]) -> str:
    clean = {k: v for k, v in os.environ.items()
             if k not in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")}
    out = subprocess.run([sys.executable, "-c", PROBE], env={**clean, **env}, check=True,
                         capture_output=True, text=True)
    return out.stdout.strip()


def test_a_worker_process_uses_one_blas_thread() -> None:
    assert probe({}) == "True [1]"


@pytest.mark.parametrize("name", ["OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS"])
def test_a_thread_count_in_the_environment_is_kept(name: str) -> None:
    assert probe({name: "2"}) == "False [2]"
