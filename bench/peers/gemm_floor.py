"""The GEMM floor: only the matrix products one epoch of training must do, with NumPy.

Per step and per Dense layer ``(n_in -> n_out)`` on a batch of ``b`` rows: the forward product
``x @ W`` ``(b, n_in) @ (n_in, n_out)`` and the two backward ones, ``x.T @ dz`` (for ``dW``) and
``dz @ W.T`` (for ``dx``), on the batch sizes an epoch really has (the last one may be short).
The outputs are preallocated (``out=``), so this is the BLAS time alone: no elementwise work,
no allocation, no Python beyond the calls. No framework can train the network faster on the
same BLAS and thread count, up to the elementwise work it must also do.
"""

from __future__ import annotations

import numpy as np

from bench.workloads import Workload


def step_shapes(wl: Workload, batch: int) -> list[tuple[tuple[int, int], tuple[int, int]]]:
    """The ``(a.shape, b.shape)`` of each product in one step, as ``a @ b``."""
    shapes = []
    for n_in, n_out in zip(wl.sizes[:-1], wl.sizes[1:], strict=True):
        shapes.append(((batch, n_in), (n_in, n_out)))  # z = x @ W
        shapes.append(((n_in, batch), (batch, n_out)))  # dW = x.T @ dz
        shapes.append(((batch, n_out), (n_out, n_in)))  # dx = dz @ W.T
    return shapes


def step_flops(wl: Workload, batch: int) -> int:
    return sum(2 * a[0] * a[1] * b[1] for a, b in step_shapes(wl, batch))


class GemmFloorRunner:
    def __init__(self, wl: Workload, dtype: str, threads: int):
        self.wl, self.dtype = wl, np.dtype(dtype)
        n, b = wl.n_samples(), wl.batch_size
        self.batches = [min(b, n - lo) for lo in range(0, n, b)]
        rng = np.random.default_rng(0)
        self.products = {}
        for size in set(self.batches):
            ops = []
            for n_in, n_out in zip(wl.sizes[:-1], wl.sizes[1:], strict=True):
                x = rng.standard_normal((size, n_in)).astype(self.dtype)
                W = rng.standard_normal((n_in, n_out)).astype(self.dtype)
                dz = rng.standard_normal((size, n_out)).astype(self.dtype)
                z = np.empty((size, n_out), self.dtype)
                dW = np.empty((n_in, n_out), self.dtype)
                dx = np.empty((size, n_in), self.dtype)
                # the transposes are views, as in every framework: BLAS reads them in place
                ops += [(x, W, z), (x.T, dz, dW), (dz, W.T, dx)]
            self.products[size] = ops

    def prepare(self) -> None:
        pass

    def run(self, epochs: int) -> None:
        matmul = np.matmul
        for _ in range(epochs):
            for size in self.batches:
                for a, b, out in self.products[size]:
                    matmul(a, b, out=out)

    def info(self) -> dict:
        return {
            "version": np.__version__,
            "flops_per_full_step": step_flops(self.wl, self.wl.batch_size),
        }
