"""implicit's device choice: its CUDA fit when a GPU is present, the CPU fit otherwise."""

from __future__ import annotations

import implicit.gpu
import numpy as np
import pytest

from models.als import csr_from, gpu_available, train_als
from refold.core.errors import ModelError

X = csr_from(np.array([0, 0, 1, 2, 2, 3]), np.array([0, 1, 1, 0, 2, 2]), np.ones(6), (4, 3))


def test_gpu_available_is_what_implicit_sees() -> None:
    assert gpu_available() is bool(implicit.gpu.HAS_CUDA)


@pytest.mark.skipif(gpu_available(), reason="a GPU is present: the CUDA fit runs instead")
def test_auto_fits_on_the_cpu_without_a_gpu_and_gpu_is_refused() -> None:
    auto = train_als(X, 2, 0.1, 2.0, 3, 0, device="auto")
    cpu = train_als(X, 2, 0.1, 2.0, 3, 0, device="cpu")
    assert np.array_equal(auto.item_factors, cpu.item_factors)
    with pytest.raises(ModelError, match="no CUDA GPU"):
        train_als(X, 2, 0.1, 2.0, 3, 0, device="gpu")


@pytest.mark.skipif(not gpu_available(), reason="no CUDA GPU on this machine")
def test_gpu_fit_comes_back_to_the_cpu() -> None:
    warm = np.full((3, 2), 0.1, dtype=np.float32)
    model = train_als(X, 2, 0.1, 2.0, 3, 0, warm_items=warm, device="gpu")
    assert isinstance(model.item_factors, np.ndarray) and model.item_factors.shape == (3, 2)
    assert np.isfinite(model.user_factors).all()


def test_unknown_backend_or_device_is_refused() -> None:
    from models.refit import RefitParams

    with pytest.raises(ModelError, match="backend 'sparky'"):
        RefitParams(backend="sparky")  # type: ignore[arg-type]
    with pytest.raises(ModelError, match="device 'tpu'"):
        RefitParams(device="tpu")  # type: ignore[arg-type]
