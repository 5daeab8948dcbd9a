"""The hand-written NumPy loop (``bench/numpy_loop.py``): the "no library" baseline."""

from __future__ import annotations

import numpy as np

from bench.numpy_loop import NumpyMLP
from bench.workloads import Workload


class NumpyLoopRunner:
    def __init__(self, wl: Workload, dtype: str, threads: int):
        self.wl, self.dtype = wl, dtype
        self.X, self.y = wl.data(dtype)
        self.mlp = None

    def prepare(self) -> None:
        self.mlp = NumpyMLP(self.wl.sizes, self.dtype, seed=0)
        self.rng = np.random.default_rng(0)

    def run(self, epochs: int) -> None:
        self.mlp.fit(self.X, self.y, epochs, self.wl.batch_size, self.rng)

    def info(self) -> dict:
        return {"version": np.__version__, "param_dtype": str(self.mlp.params[0].dtype)}
