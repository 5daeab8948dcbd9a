"""PyTorch eager: ``nn.Sequential`` of ``Linear``/``ReLU``, Adam (default, or ``fused=True``).

The output layer gives logits: ``BCEWithLogitsLoss`` (one output) or ``CrossEntropyLoss``,
the fused, stable forms (as backprop's). Each epoch shuffles with one ``randperm`` gather,
then takes contiguous slices; each step is ``zero_grad(set_to_none=True)``, forward, loss,
``backward()``, ``step()``. ``torch.set_num_threads`` is the benchmark's thread count.
"""

from __future__ import annotations

import itertools
import re

import torch
from torch import nn

from bench.workloads import Workload


def _gemm_library() -> str:
    """Torch links its BLAS statically (threadpoolctl cannot see it): ask its build config."""
    config = torch.__config__.show()
    found = re.search(r"BLAS_INFO=(\w+)", config)
    blas = found.group(1) if found else "unknown"
    onednn = "oneDNN" if "MKL-DNN" in config or "oneDNN" in config else ""
    return f"torch's own: BLAS_INFO={blas}" + (f", {onednn}" if onednn else "")


class TorchRunner:
    fused: bool | None = None

    def __init__(self, wl: Workload, dtype: str, threads: int):
        torch.set_num_threads(threads)
        self.wl = wl
        self.dtype = getattr(torch, dtype)
        X, y = wl.data(dtype)
        self.X = torch.from_numpy(X)
        if wl.output == "sigmoid":
            self.Y = torch.from_numpy(y.reshape(-1, 1)).to(self.dtype)
            self.loss_fn = nn.BCEWithLogitsLoss()
        else:
            self.Y = torch.from_numpy(y)
            self.loss_fn = nn.CrossEntropyLoss()
        self.model = None

    def prepare(self) -> None:
        torch.manual_seed(0)
        mods = []
        sizes = self.wl.sizes
        for i, (n_in, n_out) in enumerate(itertools.pairwise(sizes)):
            mods.append(nn.Linear(n_in, n_out))
            if i < len(sizes) - 2:
                mods.append(nn.ReLU())
        self.model = nn.Sequential(*mods).to(self.dtype)
        kwargs = {} if self.fused is None else {"fused": self.fused}
        self.opt = torch.optim.Adam(self.model.parameters(), lr=1e-3, **kwargs)
        self.gen = torch.Generator().manual_seed(0)

    def run(self, epochs: int) -> None:
        model, opt, loss_fn = self.model, self.opt, self.loss_fn
        n, b = self.X.shape[0], self.wl.batch_size
        for _ in range(epochs):
            order = torch.randperm(n, generator=self.gen)
            X, Y = self.X[order], self.Y[order]
            for lo in range(0, n, b):
                xb, yb = X[lo : lo + b], Y[lo : lo + b]
                opt.zero_grad(set_to_none=True)
                loss = loss_fn(model(xb), yb)
                loss.backward()
                opt.step()

    def info(self) -> dict:
        return {
            "version": torch.__version__,
            "param_dtype": str(next(self.model.parameters()).dtype).replace("torch.", ""),
            "torch_threads": torch.get_num_threads(),
            "adam": "fused" if self.fused else "default (single-tensor loop on CPU)",
            "gemm_library": _gemm_library(),
        }


class TorchFusedRunner(TorchRunner):
    fused = True
