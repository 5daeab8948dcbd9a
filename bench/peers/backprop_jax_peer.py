"""backprop on the JAX backend: ``bp.Sequential(..., backend="jax")``, the same model and ``fit``.

The model is ``backprop_peer.build_model`` with ``backend="jax"``; ``fit`` compiles each whole
epoch into one ``jax.jit`` program (the shuffle, ``lax.scan`` over the steps, the short last
batch, the epoch's loss and metric sums) and reads the epoch's sums back to the host, so the
timed ``fit`` returns when the work is done. float64 runs with ``jax_enable_x64`` (the backend
turns it on). With one thread, ``XLA_FLAGS`` disables XLA's Eigen thread pool, as for the JAX
peer (the worker sets it before anything imports JAX).

The compiled program belongs to the model: a fresh model compiles again in its first ``fit``
(about a second, a one-time cost per model, like the JAX peer's ``jax.jit``). So the model is
built once, in the warm-up, which also compiles; each sample then starts from the same initial
weights (``set_weights``) and a fresh optimizer (``iterations = 0``, empty ``state``, rebuilt
with zeros by ``fit``), which keeps the compiled epoch. Only the shuffle order differs from a
fresh model's (the model's random stream goes on): no effect on time. ``info()["first_fit_s"]``
records the warm-up's first ``fit`` (compilation included).
"""

from __future__ import annotations

import os
import time

import jax

from bench.peers.backprop_peer import BackpropRunner, build_model


class BackpropJaxRunner(BackpropRunner):
    def __init__(self, wl, dtype: str, threads: int):
        super().__init__(wl, dtype, threads)
        self.initial = None
        self.first_fit_s = None

    def prepare(self) -> None:
        if self.model is None:
            self.model = build_model(self.wl, self.dtype, backend="jax")
            self.initial = self.model.get_weights()
            return
        self.model.set_weights(self.initial)
        opt = self.model.optimizer
        opt.iterations, opt.state = 0, []

    def run(self, epochs: int) -> None:
        t0 = time.perf_counter()
        super().run(epochs)
        if self.first_fit_s is None:
            self.first_fit_s = time.perf_counter() - t0

    def info(self) -> dict:
        return {
            **super().info(),
            "backend": self.model.backend.name if self.model is not None else "jax",
            "jax_version": jax.__version__,
            "devices": [str(d) for d in jax.devices()],
            "xla_flags": os.environ.get("XLA_FLAGS"),
            "first_fit_s": self.first_fit_s,
            "gemm_library": "XLA's own CPU kernels (not NumPy's BLAS)",
        }
