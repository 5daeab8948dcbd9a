"""JAX: one ``jax.jit``-ed training step (forward, loss, ``value_and_grad``, Adam) per batch.

Adam is written by hand (optax is not a dependency), in Keras's form as backprop's. The step
takes the epoch's shuffled arrays and the batch's start index (traced) and slices inside the
compiled function, so each step is one dispatch; the batch size is static (a short last batch
compiles once more, during the warm-up). Parameters and optimizer state are donated. The
timed region ends with ``block_until_ready``. float64 runs with ``jax_enable_x64``.
With one thread, ``XLA_FLAGS`` disables Eigen's thread pool (set by the worker before import).
"""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np

from bench.numpy_loop import glorot_uniform
from bench.workloads import Workload

jax.config.update("jax_enable_x64", True)


def _loss(params, x, y, sigmoid: bool):
    a = x
    for W, b in params[:-1]:
        a = jax.nn.relu(a @ W + b)
    W, b = params[-1]
    z = a @ W + b
    if sigmoid:
        return jnp.mean(jnp.maximum(z, 0) - z * y + jnp.log1p(jnp.exp(-jnp.abs(z))))
    return -jnp.sum(y * jax.nn.log_softmax(z, axis=-1)) / z.shape[0]


@partial(jax.jit, static_argnums=(5, 6), donate_argnums=(0, 1))
def _step(params, state, X, Y, start, size, sigmoid):
    x = jax.lax.dynamic_slice_in_dim(X, start, size)
    y = jax.lax.dynamic_slice_in_dim(Y, start, size)
    loss, grads = jax.value_and_grad(_loss)(params, x, y, sigmoid)
    m, v, t = state
    t = t + 1
    b1, b2, lr, eps = 0.9, 0.999, 1e-3, 1e-7
    m = jax.tree_util.tree_map(lambda m, g: b1 * m + (1 - b1) * g, m, grads)
    v = jax.tree_util.tree_map(lambda v, g: b2 * v + (1 - b2) * (g * g), v, grads)
    lr_t = lr * jnp.sqrt(1 - b2**t) / (1 - b1**t)
    params = jax.tree_util.tree_map(
        lambda p, m, v: p - (lr_t * m / (jnp.sqrt(v) + eps)).astype(p.dtype), params, m, v
    )
    return params, (m, v, t), loss


class JaxRunner:
    def __init__(self, wl: Workload, dtype: str, threads: int):
        self.wl, self.dtype = wl, dtype
        X, y = wl.data(dtype)
        self.sigmoid = wl.output == "sigmoid"
        Y = y.reshape(-1, 1).astype(dtype) if self.sigmoid else np.eye(wl.sizes[-1], dtype=dtype)[y]
        self.X, self.Y = jnp.asarray(X), jnp.asarray(Y)

    def prepare(self) -> None:
        rng = np.random.default_rng(0)
        params = []
        for n_in, n_out in zip(self.wl.sizes[:-1], self.wl.sizes[1:], strict=True):
            W = jnp.asarray(glorot_uniform(rng, n_in, n_out), dtype=self.dtype)
            params.append((W, jnp.zeros(n_out, dtype=self.dtype)))
        zeros = jax.tree_util.tree_map(jnp.zeros_like, params)
        self.params = params
        self.state = (
            zeros,
            jax.tree_util.tree_map(jnp.zeros_like, params),
            jnp.zeros((), self.dtype),
        )
        self.rng = np.random.default_rng(0)

    def run(self, epochs: int) -> None:
        n, b = self.X.shape[0], self.wl.batch_size
        params, state = self.params, self.state
        for _ in range(epochs):
            order = jnp.asarray(self.rng.permutation(n))
            X, Y = jnp.take(self.X, order, axis=0), jnp.take(self.Y, order, axis=0)
            for lo in range(0, n, b):
                size = min(b, n - lo)
                params, state, _ = _step(params, state, X, Y, lo, size, self.sigmoid)
        jax.block_until_ready(params)
        self.params, self.state = params, state

    def info(self) -> dict:
        return {
            "version": jax.__version__,
            "param_dtype": str(self.params[0][0].dtype),
            "devices": [str(d) for d in jax.devices()],
            "gemm_library": "XLA's own CPU kernels (not NumPy's BLAS)",
        }
