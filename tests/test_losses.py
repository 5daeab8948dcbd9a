"""Losses: values against independent formulas (and torch), gradients against finite differences,
the fused logit forms (also saturated), target preparation and lookup."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import assert_close, eps, numeric_grad

import backprop as bp
from backprop import activations as A
from backprop import losses as L

try:
    import torch
    import torch.nn.functional as F
except ImportError:  # pragma: no cover - torch is optional
    torch = None

needs_torch = pytest.mark.skipif(torch is None, reason="torch is not installed")

H = 1e-6  # the step of conftest.numeric_grad
N, K = 4, 5  # one batch shape everywhere: JAX compiles each (op, shape, dtype) once


def fd_atol(scale: float) -> float:
    """Absolute error bound of a float64 central difference with step H.

    Each evaluation of f is off by a few eps * scale (scale = sum of |terms| of f), the
    difference quotient divides that by 2H; 10 covers the few roundings per term. Truncation,
    H^2 |f'''| / 6, is ~1e-12 * |f'''| and negligible for the smooth, moderate inputs used here.
    """
    return 10 * eps("float64") * scale / H


def float_dtypes(backend) -> list[str]:
    return ["float32", "float64"] if backend.supports_float64 else ["float32"]


def to64(a) -> np.ndarray:
    return bp.to_numpy(a).astype(np.float64)


# -- independent references (host NumPy, float64, no clipping needed for p in (0.05, 0.95)) ----


def ref_bce(y, p):
    return -np.mean(y * np.log(p) + (1 - y) * np.log(1 - p))


def ref_cce(y, p):
    return -np.sum(y * np.log(p)) / p.shape[0]


def ref_mse(y, p):
    return np.mean((p - y) ** 2)


def ref_mae(y, p):
    return np.mean(np.abs(p - y))


def ref_softmax(z):
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def ref_sigmoid(z):
    e = np.exp(-np.abs(z))
    return np.where(z >= 0, 1 / (1 + e), e / (1 + e))


def make_case(kind: str, rng, k: int = K):
    """(y, y_hat) on the host for one kind of loss: prepared (n, k) targets, moderate y_hat."""
    if kind == "binary":
        y = rng.integers(0, 2, (N, k)).astype(np.float64)
        p = rng.uniform(0.05, 0.95, (N, k))
    elif kind == "categorical":
        y = np.eye(k)[rng.integers(0, k, N)]
        p = ref_softmax(rng.normal(size=(N, k)))
    elif kind == "distribution":  # soft labels, all > 0 (torch's kl_div counts 0 log 0 as 0)
        y = ref_softmax(rng.normal(size=(N, k)))
        p = ref_softmax(rng.normal(size=(N, k)))
    elif kind == "counts":
        y = rng.integers(0, 5, (N, k)).astype(np.float64)
        p = rng.uniform(0.2, 4.0, (N, k))
    elif kind in ("signs", "zero_one"):  # margins 1 - y p at least 0.1 away from the kink
        y = rng.choice([-1.0, 1.0], (N, k))
        p = y * (1.0 + rng.choice([-1.0, 1.0], (N, k)) * rng.uniform(0.1, 1.5, (N, k)))
        if kind == "zero_one":
            y = (y + 1.0) / 2.0
    elif kind == "wide":  # errors from 0.1 to 3: both sides of a Huber delta of 1 or 0.5
        y = rng.normal(size=(N, k))
        p = y + rng.choice([-1.0, 1.0], (N, k)) * rng.uniform(0.1, 3.0, (N, k))
        p[np.abs(np.abs(p - y) - 0.5) < 0.01] += 0.05  # no finite difference across a kink
        p[np.abs(np.abs(p - y) - 1.0) < 0.01] += 0.05
    else:  # regression; |p - y| >= 0.1 so MAE is differentiable within any finite difference
        y = rng.normal(size=(N, k))
        p = y + rng.choice([-1.0, 1.0], (N, k)) * rng.uniform(0.1, 1.0, (N, k))
    return y, p


def ref_huber(y, p, delta=1.0):
    e = np.abs(p - y)
    return np.mean(np.where(e <= delta, 0.5 * e**2, delta * e - 0.5 * delta**2))


def ref_log_cosh(y, p):
    return np.mean(np.log(np.cosh(p - y)))


def ref_kld(y, p):
    q, r = np.clip(y, 1e-7, 1.0), np.clip(p, 1e-7, 1.0)
    return np.sum(q * np.log(q / r)) / p.shape[0]


def ref_poisson(y, p):
    return np.mean(p - y * np.log(p + 1e-7))


def to_signs(y):
    """Keras's rule: labels all 0 or 1 become -1/1, anything else is kept."""
    return 2.0 * y - 1.0 if np.all((y == 0) | (y == 1)) else y


def ref_hinge(y, p):
    return np.mean(np.maximum(1.0 - to_signs(y) * p, 0.0))


def ref_squared_hinge(y, p):
    return np.mean(np.maximum(1.0 - to_signs(y) * p, 0.0) ** 2)


def ref_normalize(x):
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-7)


def ref_cosine(y, p):
    return -np.mean(np.sum(ref_normalize(y) * ref_normalize(p), axis=-1))


CASES = [
    ("binary_crossentropy", "binary", ref_bce),
    ("categorical_crossentropy", "categorical", ref_cce),
    ("sparse_categorical_crossentropy", "categorical", ref_cce),
    ("mse", "regression", ref_mse),
    ("mae", "regression", ref_mae),
    ("huber", "wide", ref_huber),
    ("huber_0.5", "wide", lambda y, p: ref_huber(y, p, 0.5)),
    ("log_cosh", "wide", ref_log_cosh),
    ("kl_divergence", "distribution", ref_kld),
    ("poisson", "counts", ref_poisson),
    ("hinge", "signs", ref_hinge),
    ("hinge_0/1", "zero_one", ref_hinge),
    ("squared_hinge", "signs", ref_squared_hinge),
    ("squared_hinge_0/1", "zero_one", ref_squared_hinge),
    ("cosine_similarity", "wide", ref_cosine),
]
cases = pytest.mark.parametrize(("name", "kind", "ref"), CASES, ids=[c[0] for c in CASES])


def make_loss(case_id: str) -> L.Loss:
    """The loss of a case id: a name for get(), or a name with its setting after "_"."""
    if case_id == "huber_0.5":
        return L.Huber(delta=0.5)
    return L.get(case_id.removesuffix("_0/1"))


# -- values -----------------------------------------------------------------------------------


@cases
def test_forward_matches_formula(name, kind, ref, backend, rng):
    """A 0-d array on the inputs' device and dtype, equal to the textbook formula.

    The sums have N*K = 20 terms of size < 3 (p in (0.05, 0.95)): 100 eps covers the roundings.
    """
    loss = make_loss(name)
    y_host, p_host = make_case(kind, rng)
    for dt in float_dtypes(backend):
        y, p = backend.asarray(y_host, dt), backend.asarray(p_host, dt)
        value = loss.forward(y, p, backend.xp)
        assert_close(value, np.asarray(ref(y_host, to64(p))), backend, dtype=p.dtype)


TORCH_LOSSES = {
    "binary_crossentropy": lambda y, p: F.binary_cross_entropy(p, y),
    "categorical_crossentropy": lambda y, p: -torch.sum(y * torch.log(p)) / p.shape[0],
    "sparse_categorical_crossentropy": lambda y, p: F.nll_loss(torch.log(p), y.argmax(-1)),
    "mse": lambda y, p: F.mse_loss(p, y),
    "mae": lambda y, p: F.l1_loss(p, y),
    "huber": lambda y, p: F.huber_loss(p, y, delta=1.0),
    "huber_0.5": lambda y, p: F.huber_loss(p, y, delta=0.5),
    "log_cosh": lambda y, p: torch.mean(torch.log(torch.cosh(p - y))),
    "kl_divergence": lambda y, p: F.kl_div(torch.log(p), y, reduction="batchmean"),
    "poisson": lambda y, p: F.poisson_nll_loss(p, y, log_input=False, eps=1e-7),
    "hinge": lambda y, p: torch.clamp(1.0 - y * p, min=0.0).mean(),
    "hinge_0/1": lambda y, p: torch.clamp(1.0 - (2.0 * y - 1.0) * p, min=0.0).mean(),
    "squared_hinge": lambda y, p: (torch.clamp(1.0 - y * p, min=0.0) ** 2).mean(),
    "squared_hinge_0/1": lambda y, p: (torch.clamp(1.0 - (2 * y - 1) * p, min=0.0) ** 2).mean(),
    "cosine_similarity": lambda y, p: (
        -(F.normalize(y, dim=-1, eps=1e-7) * F.normalize(p, dim=-1, eps=1e-7)).sum(-1).mean()
    ),
}


@needs_torch
@cases
def test_forward_and_gradient_match_torch(name, kind, ref, backend64, rng):
    """Value and dL/dy_hat against torch's losses and autograd (an independent oracle)."""
    b, xp = backend64, backend64.xp
    loss = make_loss(name)
    y_host, p_host = make_case(kind, rng)
    p_t = torch.tensor(p_host, requires_grad=True)
    value_t = TORCH_LOSSES[name](torch.tensor(y_host), p_t)
    value_t.backward()
    y, p = b.asarray(y_host, "float64"), b.asarray(p_host, "float64")
    assert_close(loss.forward(y, p, xp), value_t.detach().numpy(), b)
    assert_close(loss.gradient(y, p, xp), p_t.grad.numpy(), b)


@cases
def test_gradient_matches_finite_differences(name, kind, ref, backend64, rng):
    b, xp = backend64, backend64.xp
    loss = make_loss(name)
    y_host, p_host = make_case(kind, rng)
    y = b.asarray(y_host, "float64")

    def f(ph):
        return float(bp.to_numpy(loss.forward(y, b.asarray(ph, "float64"), xp)))

    expected = numeric_grad(f, p_host, h=H)
    grad = loss.gradient(y, b.asarray(p_host, "float64"), xp)
    # the terms of these losses are at most |log 0.05| = 3 or (|p - y| <= 4)^2 each
    assert_close(grad, expected, b, rtol=0, atol=fd_atol(N * K * 16.0), dtype=xp.float64)


def test_bce_clips_probabilities_and_stops_their_gradient(backend):
    """y_hat = 0 or 1 gives the finite loss -log(EPS) for a wrong label; no gradient flows
    where the clip is flat (documented), and nothing warns (divide by zero)."""
    xp = backend.xp
    y_host = np.zeros((N, 1))
    y_host[:2] = 1.0
    p_host = np.array([[0.0], [1.0], [1.0], [0.0]])  # wrong, right, wrong, right
    for dt in float_dtypes(backend):
        y, p = backend.asarray(y_host, dt), backend.asarray(p_host, dt)
        value = L.binary_crossentropy.forward(y, p, xp)
        # the clip bounds [1e-7, 1 - 1e-7] as the working dtype represents them
        lo, hi = (float(np.asarray(v, dtype=dt)) for v in (1e-7, 1 - 1e-7))
        # rows: y=1 p=0 (wrong), y=1 p=1 (right), y=0 p=1 (wrong), y=0 p=0 (right)
        expected = -(np.log(lo) + np.log(hi) + np.log1p(-hi) + np.log1p(-lo)) / N
        assert_close(value, np.asarray(expected), backend, dtype=p.dtype)
        assert_close(L.binary_crossentropy.gradient(y, p, xp), np.zeros((N, 1)), backend)


def test_cce_gradient_is_zero_where_probability_underflows(backend):
    xp = backend.xp
    y_host = np.eye(K)[[0, 1, 2, 3]]
    p_host = np.full((N, K), 0.25)
    p_host[:, 4] = 0.0  # a class with probability 0 and label 0
    p_host[0] = [0.0, 0.5, 0.25, 0.25, 0.0]  # the labelled class has probability 0
    for dt in float_dtypes(backend):
        y, p = backend.asarray(y_host, dt), backend.asarray(p_host, dt)
        value = to64(L.categorical_crossentropy.forward(y, p, xp))
        expected = (-np.log(1e-7) - 3 * np.log(0.25)) / N
        np.testing.assert_allclose(value, expected, rtol=1e-6 if dt == "float32" else 1e-14)
        g = to64(L.categorical_crossentropy.gradient(y, p, xp))
        assert np.all(np.isfinite(g))
        assert g[0, 0] == 0.0  # the clip is flat there
        np.testing.assert_allclose(g[1:, 1:4].max(), 0.0)  # unlabelled classes get no gradient
        np.testing.assert_allclose(g[1, 1], -1.0 / (0.25 * N), rtol=100 * eps(dt))


# -- fused forms --------------------------------------------------------------------------------

FUSED = [
    ("binary_crossentropy", "binary", A.sigmoid),
    ("categorical_crossentropy", "categorical", A.softmax),
    ("sparse_categorical_crossentropy", "categorical", A.softmax),
]
fused = pytest.mark.parametrize(("name", "kind", "act"), FUSED, ids=[f[0] for f in FUSED])


def moderate_logits(rng):
    """Logits in [-3, 3]: probabilities in [0.047, 0.953], far from the clip at 1e-7."""
    return rng.uniform(-3.0, 3.0, (N, K))


@fused
def test_from_logits_matches_forward_on_probabilities(name, kind, act, backend, rng):
    """L(y, g(z)) by the fused form equals forward(y, g(z)), and dL/dz = (g(z) - y) / size.

    The unfused value takes log(1 - p) with p <= 0.953: that amplifies the rounding of p by at
    most 1 / (1 - p) ~ 21, so a few roundings stay within 100 eps.
    """
    loss, xp = L.get(name), backend.xp
    assert loss.fused_activation == act.name
    y_host, _ = make_case(kind, rng)
    z_host = moderate_logits(rng)
    for dt in float_dtypes(backend):
        y, z = backend.asarray(y_host, dt), backend.asarray(z_host, dt)
        y_hat = act.forward(z, xp)
        value, dz = loss.from_logits(y, z, y_hat, xp)
        assert_close(value, to64(loss.forward(y, y_hat, xp)), backend, dtype=z.dtype)
        # chain rule: dL/dz = g'(z)^T dL/dy_hat, with the activation's own backward
        chained = act.backward(loss.gradient(y, y_hat, xp), z, y_hat, xp)
        assert_close(dz, to64(chained), backend, dtype=z.dtype)


@fused
def test_from_logits_gradient_matches_finite_differences(name, kind, act, backend64, rng):
    b, xp = backend64, backend64.xp
    loss = L.get(name)
    y_host, _ = make_case(kind, rng)
    z_host = moderate_logits(rng)
    y = b.asarray(y_host, "float64")

    def f(zh):
        z = b.asarray(zh, "float64")
        return float(bp.to_numpy(loss.from_logits(y, z, act.forward(z, xp), xp)[0]))

    expected = numeric_grad(f, z_host, h=H)
    z = b.asarray(z_host, "float64")
    _, dz = loss.from_logits(y, z, act.forward(z, xp), xp)
    # each term is at most |z| + log(K) ~ 5
    assert_close(dz, expected, b, rtol=0, atol=fd_atol(N * K * 5.0), dtype=xp.float64)


@needs_torch
def test_fused_forms_match_torch(backend64, rng):
    b, xp = backend64, backend64.xp
    z_host = rng.normal(scale=4.0, size=(N, K))
    # sigmoid + BCE against binary_cross_entropy_with_logits
    y_host = rng.integers(0, 2, (N, K)).astype(np.float64)
    z_t = torch.tensor(z_host, requires_grad=True)
    F.binary_cross_entropy_with_logits(z_t, torch.tensor(y_host)).backward()
    z, y = b.asarray(z_host, "float64"), b.asarray(y_host, "float64")
    value, dz = L.binary_crossentropy.from_logits(y, z, A.sigmoid.forward(z, xp), xp)
    expected = F.binary_cross_entropy_with_logits(torch.tensor(z_host), torch.tensor(y_host))
    assert_close(value, expected.numpy(), b)
    assert_close(dz, z_t.grad.numpy(), b)
    # softmax + CCE against cross_entropy on class indices
    labels = rng.integers(0, K, N)
    z_t = torch.tensor(z_host, requires_grad=True)
    F.cross_entropy(z_t, torch.tensor(labels)).backward()
    y = b.asarray(np.eye(K)[labels], "float64")
    value, dz = L.categorical_crossentropy.from_logits(y, z, A.softmax.forward(z, xp), xp)
    assert_close(value, F.cross_entropy(torch.tensor(z_host), torch.tensor(labels)).numpy(), b)
    assert_close(dz, z_t.grad.numpy(), b)


def test_bce_from_saturated_logits(backend):
    """|z| from 50 to 1000: finite, exact loss (|z| per wrong answer, ~0 per right one)."""
    xp = backend.xp
    mags = np.array([1000.0, 500.0, 100.0, 50.0])
    z_host = np.stack([mags, -mags, mags, -mags, mags], axis=1)  # (N, K)
    y_host = np.stack([0 * mags, 1 + 0 * mags, 1 + 0 * mags, 0 * mags, 0 * mags], axis=1)
    # softplus(z) - z y with logaddexp: an independent, overflow-free reference
    expected = np.mean(np.logaddexp(0.0, z_host) - z_host * y_host)
    expected_dz = (ref_sigmoid(z_host) - y_host) / (N * K)
    for dt in float_dtypes(backend):
        z, y = backend.asarray(z_host, dt), backend.asarray(y_host, dt)
        value, dz = L.binary_crossentropy.from_logits(y, z, A.sigmoid.forward(z, xp), xp)
        assert np.isfinite(to64(value))
        assert_close(value, np.asarray(expected), backend, dtype=z.dtype)
        # entries of size <= 1 / (N K); those like e^-500 / (N K) are below float32's range
        assert_close(dz, expected_dz, backend, atol=eps(dt) / (N * K), dtype=z.dtype)


def test_bce_from_logits_single_saturated_output(backend):
    """The brief's example: z = 1000 with y = 0 costs ~1000 / n."""
    xp = backend.xp
    z_host = np.zeros((N, 1))
    z_host[0] = 1000.0
    y_host = np.zeros((N, 1))
    for dt in float_dtypes(backend):
        z, y = backend.asarray(z_host, dt), backend.asarray(y_host, dt)
        value, dz = L.binary_crossentropy.from_logits(y, z, A.sigmoid.forward(z, xp), xp)
        # three z = 0 outputs cost log 2 each
        assert_close(value, np.asarray((1000.0 + 3 * np.log(2.0)) / N), backend)
        assert_close(dz, np.array([[1.0], [0.5], [0.5], [0.5]]) / N, backend)


def test_cce_from_saturated_logits(backend):
    xp = backend.xp
    z_host = np.array(
        [
            [1000.0, 0.0, -1000.0, 0.0, 0.0],
            [-1000.0, 1000.0, 0.0, 0.0, 0.0],
            [50.0, -50.0, 0.0, 0.0, 0.0],
            [0.0, 0.0, 0.0, 0.0, 0.0],
        ]
    )
    labels = np.array([1, 0, 0, 3])  # wrong, wrong, right, uniform
    y_host = np.eye(K)[labels]
    lse = np.logaddexp.reduce(z_host, axis=1)
    expected = np.mean(lse - z_host[np.arange(N), labels])  # 1000, 2000, ~0, log 5
    expected_dz = (ref_softmax(z_host) - y_host) / N
    for dt in float_dtypes(backend):
        z, y = backend.asarray(z_host, dt), backend.asarray(y_host, dt)
        value, dz = L.categorical_crossentropy.from_logits(y, z, A.softmax.forward(z, xp), xp)
        assert np.isfinite(to64(value))
        assert_close(value, np.asarray(expected), backend, dtype=z.dtype)
        assert_close(dz, expected_dz, backend, atol=10 * eps(dt), dtype=z.dtype)


NEW = ["huber", "log_cosh", "kl_divergence", "poisson", "hinge", "squared_hinge",
       "cosine_similarity"]  # fmt: skip


@pytest.mark.parametrize("name", ["mse", "mae", *NEW])
def test_no_fused_form_for_regression_losses(name, backend):
    z = backend.asarray(np.zeros((N, K)), "float32")
    with pytest.raises(NotImplementedError, match=name):
        L.get(name).from_logits(z, z, z, backend.xp)


# -- targets and the convenience call ----------------------------------------------------------


def test_bce_prepare_targets_reshapes_and_casts(backend):
    xp = backend.xp
    labels = np.array([1, 0, 0, 1])
    for dt in float_dtypes(backend):
        dtype = backend.dtype(dt)
        y = backend.asarray(labels, backend.int_dtype)
        prepared = L.binary_crossentropy.prepare_targets(y, 1, dtype, xp)
        assert_close(prepared, labels.reshape(-1, 1).astype(np.float64), backend, dtype=dtype)
        # already prepared: kept as is
        y2 = backend.asarray(labels.reshape(-1, 1), dt)
        assert_close(L.binary_crossentropy.prepare_targets(y2, 1, dtype, xp), y2, backend)


@pytest.mark.parametrize("shape", [(N,), (N, 1)], ids=["1d", "column"])
def test_sparse_prepare_targets_is_one_hot_on_device(shape, backend):
    xp = backend.xp
    labels = np.array([0, 4, 2, 4])
    for dt in float_dtypes(backend):
        dtype = backend.dtype(dt)
        y = backend.asarray(labels.reshape(shape), backend.int_dtype)
        one_hot = L.sparse_categorical_crossentropy.prepare_targets(y, K, dtype, xp)
        assert_close(one_hot, np.eye(K)[labels], backend, dtype=dtype)


def test_sparse_loss_equals_categorical_on_one_hot(backend, rng):
    labels = rng.integers(0, K, N)
    p_host = ref_softmax(rng.normal(size=(N, K)))
    for dt in float_dtypes(backend):
        p = backend.asarray(p_host, dt)
        sparse = L.sparse_categorical_crossentropy(backend.asarray(labels, backend.int_dtype), p)
        dense = L.categorical_crossentropy(backend.asarray(np.eye(K)[labels], dt), p)
        assert_close(sparse, np.asarray(ref_cce(np.eye(K)[labels], to64(p))), backend)
        assert_close(dense, to64(sparse), backend)


def test_call_with_column_predictions(backend, rng):
    """Loss(y, y_hat) prepares the targets: labels (n,) against predictions (n, 1)."""
    labels = rng.integers(0, 2, N)
    p_host = rng.uniform(0.05, 0.95, (N, 1))
    for dt in float_dtypes(backend):
        p = backend.asarray(p_host, dt)
        value = L.binary_crossentropy(backend.asarray(labels, backend.int_dtype), p)
        expected = ref_bce(labels.reshape(-1, 1).astype(np.float64), to64(p))
        assert_close(value, np.asarray(expected), backend, dtype=p.dtype)


@pytest.mark.parametrize(
    ("name", "ref"),
    [("bce", ref_bce), ("mse", ref_mse), ("mae", ref_mae)],
    ids=["bce", "mse", "mae"],
)
def test_call_with_1d_targets_and_predictions(name, ref, backend):
    """Loss(y, y_hat) with y and y_hat both of shape (n,), as in the module's doctest.

    The value is the mean over the n samples; it must not broadcast (n, 1) against (n,)
    into an (n, n) matrix of every label against every prediction.
    """
    y_host = np.array([1.0, 0.0, 1.0, 0.0])
    p_host = np.array([0.9, 0.1, 0.8, 0.3])
    for dt in float_dtypes(backend):
        p = backend.asarray(p_host, dt)
        value = L.get(name)(backend.asarray(y_host, dt), p)
        assert_close(value, np.asarray(ref(y_host, to64(p))), backend, dtype=p.dtype)


# -- lookup -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("alias", "cls"),
    [
        ("binary_crossentropy", L.BinaryCrossentropy),
        ("bce", L.BinaryCrossentropy),
        ("BCE", L.BinaryCrossentropy),
        ("categorical_crossentropy", L.CategoricalCrossentropy),
        ("cce", L.CategoricalCrossentropy),
        ("sparse_categorical_crossentropy", L.SparseCategoricalCrossentropy),
        ("mse", L.MeanSquaredError),
        ("mean_squared_error", L.MeanSquaredError),
        ("MAE", L.MeanAbsoluteError),
        ("mean_absolute_error", L.MeanAbsoluteError),
        ({"name": "mse"}, L.MeanSquaredError),
        ("huber", L.Huber),
        ("huber_loss", L.Huber),
        ("log_cosh", L.LogCosh),
        ("logcosh", L.LogCosh),
        ("kl_divergence", L.KLDivergence),
        ("kld", L.KLDivergence),
        ("KLD", L.KLDivergence),
        ("kullback_leibler_divergence", L.KLDivergence),
        ("poisson", L.Poisson),
        ("hinge", L.Hinge),
        ("squared_hinge", L.SquaredHinge),
        ("cosine_similarity", L.CosineSimilarity),
        ({"name": "huber_loss", "delta": 2.0}, L.Huber),
    ],
)
def test_get_names_and_aliases(alias, cls):
    loss = L.get(alias)
    assert type(loss) is cls
    assert type(L.get(loss.get_config())) is cls
    assert L.get(loss) is loss


def test_kinds_and_fused_activations():
    assert (L.binary_crossentropy.kind, L.binary_crossentropy.fused_activation) == (
        "binary",
        "sigmoid",
    )
    assert L.categorical_crossentropy.kind == "categorical"
    assert L.sparse_categorical_crossentropy.kind == "sparse"
    assert L.sparse_categorical_crossentropy.fused_activation == "softmax"
    assert L.mse.kind == L.mae.kind == "regression"
    assert L.mse.fused_activation is None


def test_get_unknown_name_lists_valid_names():
    with pytest.raises(ValueError, match="nope") as info:
        L.get("nope")
    for name in L.names():
        assert name in str(info.value)
    assert {"bce", "mse", "binary_crossentropy"} <= set(L.names())


def test_get_bad_type():
    with pytest.raises(TypeError, match="loss"):
        L.get(3)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_logits_of_ten_thousand_give_finite_losses_and_gradients(dtype, backend):
    """Sigmoid/softmax + cross-entropy from logits of +-1e4: finite, and the right limits."""
    if not backend.supports_float64 and dtype == "float64":
        pytest.skip("no float64 on this device")
    xp = backend.xp
    z = backend.asarray(np.array([[1e4], [-1e4], [1e4], [-1e4]]), dtype)
    y = backend.asarray(np.array([[1.0], [0.0], [0.0], [1.0]]), dtype)
    p = A.sigmoid.forward(z, xp)
    loss, dz = L.BinaryCrossentropy().from_logits(y, z, p, xp)
    host_loss, host_dz = float(bp.to_numpy(loss)), bp.to_numpy(dz)
    assert np.isfinite(host_loss) and np.all(np.isfinite(host_dz))
    assert host_loss == pytest.approx(2e4 / 4, rel=1e-6)  # two right (0), two wrong (1e4 each)
    np.testing.assert_allclose(host_dz.ravel(), [0, 0, 0.25, -0.25], atol=1e-7)
    zc = backend.asarray(np.array([[1e4, -1e4, 0.0], [-1e4, 1e4, 0.0]]), dtype)
    yc = backend.asarray(np.array([[1.0, 0, 0], [1.0, 0, 0]]), dtype)
    pc = A.softmax.forward(zc, xp)
    loss, dz = L.CategoricalCrossentropy().from_logits(yc, zc, pc, xp)
    assert float(bp.to_numpy(loss)) == pytest.approx(2e4 / 2, rel=1e-6)
    assert np.all(np.isfinite(bp.to_numpy(dz)))


# -- the losses taken from Keras 3 (issue 21) ---------------------------------------------------


def test_new_kinds_and_configs():
    """KL divergence takes rows of probabilities (as categorical labels); the others real
    values. Settings survive get_config -> get."""
    assert L.kl_divergence.kind == "categorical"
    for name in ["huber", "log_cosh", "poisson", "hinge", "squared_hinge", "cosine_similarity"]:
        assert L.get(name).kind == "regression"
    for name in NEW:
        assert L.get(name).fused_activation is None
    assert L.Huber().delta == 1.0
    assert L.get({"name": "huber", "delta": 2.5}).delta == 2.5
    assert L.Huber(0.5).get_config() == {"name": "huber", "delta": 0.5}
    assert L.get(L.Huber(0.5).get_config()).delta == 0.5
    assert L.CosineSimilarity().get_config() == {"name": "cosine_similarity", "axis": -1}
    assert repr(L.Huber(2.0)) == "Huber(delta=2.0)"
    assert repr(L.mse) == "MeanSquaredError()"


@pytest.mark.parametrize("delta", [0, -1.0, float("inf"), float("nan"), "1", True])
def test_huber_delta_must_be_a_positive_number(delta):
    with pytest.raises(ValueError, match="delta"):
        L.Huber(delta)


@pytest.mark.parametrize("axis", [0, 2, True, None])
def test_cosine_similarity_axis_is_the_outputs(axis):
    with pytest.raises(ValueError, match="axis"):
        L.CosineSimilarity(axis=axis)
    assert L.CosineSimilarity(axis=1).axis == 1


def test_a_config_with_an_argument_the_loss_lacks_is_refused():
    with pytest.raises(TypeError, match=r"'mse' takes no arguments.*\['delta'\]"):
        L.get({"name": "mse", "delta": 1.0})
    with pytest.raises(TypeError, match=r"\['delta'\].*\['alpha'\]"):
        L.get({"name": "huber", "alpha": 1.0})


def test_log_cosh_is_exact_for_tiny_and_huge_errors(backend64):
    """log cosh e = e^2 / 2 (1 - e^2 / 6 ...) near 0, |e| - log 2 + e^-2|e| far out: no
    overflow at e = 1000, no loss of the e^2 / 2 at e = 1e-8 (log(cosh e) gives 0 there)."""
    b, xp = backend64, backend64.xp
    e = np.array([[1e-8, -1e-8, 1e-3, 0.5, 1.0], [2.0, -20.0, 100.0, -1000.0, 1e300]])
    y = np.zeros_like(e)
    small, a = np.minimum(np.abs(e), 1e-2), np.maximum(np.abs(e), 1e-2)
    expected = np.where(
        np.abs(e) < 1e-2,
        small**2 / 2 - small**4 / 12 + small**6 / 45 - 17 * small**8 / 2520,  # Taylor
        a - np.log(2.0) + np.log1p(np.exp(-2 * a)),
    )
    for i in range(e.size):  # each entry alone: a mean would hide the small ones
        yi, pi = (b.asarray(a.reshape(-1)[i : i + 1].reshape(1, 1), "float64") for a in (y, e))
        value = L.log_cosh.forward(yi, pi, xp)
        assert_close(value, np.asarray(expected.reshape(-1)[i]), b)
        g = to64(L.log_cosh.gradient(yi, pi, xp))
        np.testing.assert_allclose(g, np.tanh(e.reshape(-1)[i]), rtol=100 * eps("float64"))


def test_kl_divergence_clips_as_keras(backend):
    """y and y_hat are clipped to [eps, 1]: y_hat = 0 costs y log(y / eps), a label 0 adds
    eps log(eps / y_hat), and the gradient is 0 where the clip of y_hat is flat."""
    xp = backend.xp
    # (N, K) = (4, 5), the suite's one shape (JAX compiles each op once per shape)
    y_host = np.array(
        [[1.0, 0, 0, 0, 0], [0.5, 0.5, 0, 0, 0], [0, 0, 1.0, 0, 0], [0.2, 0.3, 0.1, 0.2, 0.2]]
    )
    p_host = np.array(
        [[0.0, 0.5, 0.5, 0, 0], [0.5, 0.5, 0, 0, 0], [0, 0, 1.0, 0, 0], [0.2, 0.3, 0.1, 0.2, 0.2]]
    )
    for dt in float_dtypes(backend):
        y, p = backend.asarray(y_host, dt), backend.asarray(p_host, dt)
        f = np.float64 if dt == "float64" else np.float32
        lo = float(f(1e-7))  # the clip bound as the dtype holds it
        q, r = np.clip(y_host, lo, 1.0), np.clip(p_host, lo, 1.0)
        expected = np.sum(q * np.log(q / r)) / 4
        assert expected > 3.0  # row 0 alone: log(1 / eps) = 16.1, over 4 rows
        assert_close(
            L.kl_divergence.forward(y, p, xp), np.asarray(expected), backend, dtype=p.dtype
        )
        g = to64(L.kl_divergence.gradient(y, p, xp))
        assert np.all(np.isfinite(g))
        assert g[0, 0] == 0.0 and g[1, 2] == 0.0  # y_hat = 0: the clip is flat
        np.testing.assert_allclose(g[3], -y_host[3] / p_host[3] / 4, rtol=100 * eps(dt))


def test_poisson_at_zero_rate_is_finite(backend):
    xp = backend.xp
    y_host = np.array([[2.0], [0.0], [1.0], [3.0]])
    p_host = np.array([[0.0], [0.0], [1.0], [3.0]])
    for dt in float_dtypes(backend):
        y, p = backend.asarray(y_host, dt), backend.asarray(p_host, dt)
        expected = np.mean(p_host - y_host * np.log(p_host + 1e-7))  # 2 log(1e7) in row 0
        assert_close(L.poisson.forward(y, p, xp), np.asarray(expected), backend, rtol=1e-6)
        g = to64(L.poisson.gradient(y, p, xp))
        # 1 - y / (y_hat + eps) at y = y_hat is 1e-7, which float32 rounds to 0 or 1.2e-7
        want = (1 - y_host / (p_host + 1e-7)).ravel() / 4
        np.testing.assert_allclose(g.ravel(), want, rtol=1e-6, atol=eps(dt))


def test_hinge_converts_zero_one_labels_per_batch_as_keras(backend):
    """A batch of 0/1 labels is read as -1/1; one holding -1 (or 2) is taken as it is, and a
    batch of all-1 labels means the same either way."""
    xp = backend.xp
    rng = np.random.default_rng(2)
    p_host = rng.normal(size=(N, K))
    signs = rng.choice([-1.0, 1.0], (N, K))
    for loss, ref in ((L.hinge, ref_hinge), (L.squared_hinge, ref_squared_hinge)):
        for y_host in (signs, (signs + 1) / 2, np.ones((N, K)), signs * 2, signs.clip(0, None) * 2):
            for dt in float_dtypes(backend):
                y, p = backend.asarray(y_host, dt), backend.asarray(p_host, dt)
                assert_close(loss.forward(y, p, xp), np.asarray(ref(y_host, p_host)), backend)
        zero_one = loss.forward(
            backend.asarray((signs + 1) / 2, "float32"), backend.asarray(p_host, "float32"), xp
        )
        as_signs = loss.forward(
            backend.asarray(signs, "float32"), backend.asarray(p_host, "float32"), xp
        )
        assert float(bp.to_numpy(zero_one)) == float(bp.to_numpy(as_signs))


def test_cosine_similarity_at_zero_huge_and_tiny_rows(backend64):
    """A zero row: loss 0 and the gradient -yn / eps / n (finite). Rows of 1e200 (whose
    squares overflow) or 1e-5 entries: the same cosines as rows of 1 (Keras's eps only
    changes rows shorter than 1e-7)."""
    b, xp = backend64, backend64.xp
    rng = np.random.default_rng(5)
    y_host = rng.normal(size=(N, K))
    p_host = rng.normal(size=(N, K))
    loss = L.cosine_similarity
    expected = ref_cosine(y_host, p_host)
    for scale in (1.0, 1e200, 1e-5):
        for sy in (1.0, scale):
            y, p = b.asarray(y_host * sy, "float64"), b.asarray(p_host * scale, "float64")
            assert_close(loss.forward(y, p, xp), np.asarray(expected), b)
            g = to64(loss.gradient(y, p, xp))
            # the gradient of a scale-free function scales as 1 / scale
            g1 = to64(loss.gradient(b.asarray(y_host, "float64"), b.asarray(p_host, "float64"), xp))
            np.testing.assert_allclose(g * scale, g1, rtol=100 * eps("float64"))
    zero = p_host.copy()
    zero[1] = 0.0
    y, p = b.asarray(y_host, "float64"), b.asarray(zero, "float64")
    expected = -np.sum(ref_normalize(y_host)[[0, 2, 3]] * ref_normalize(zero)[[0, 2, 3]]) / N
    assert_close(loss.forward(y, p, xp), np.asarray(expected), b)
    g = to64(loss.gradient(y, p, xp))
    np.testing.assert_allclose(g[1], -ref_normalize(y_host)[1] / 1e-7 / N, rtol=1e-14)


# One small model per new loss, with an output activation that suits it: gradcheck (float64
# central differences through the whole model), then save and load with the loss's settings.
MODEL_LOSSES = [
    (L.Huber(delta=0.5), "linear", "wide"),
    ("log_cosh", "linear", "wide"),
    ("kl_divergence", "softmax", "distribution"),
    ("poisson", "exponential", "counts"),
    ("hinge", "tanh", "signs"),
    ("hinge", "linear", "zero_one"),
    ("squared_hinge", "linear", "signs"),
    ("cosine_similarity", "linear", "wide"),
]


@pytest.mark.parametrize(("loss", "out", "kind"), MODEL_LOSSES, ids=lambda v: str(v))
def test_a_model_with_each_new_loss_passes_gradcheck_and_saves(loss, out, kind, tmp_path):
    rng = np.random.default_rng(11)
    X = rng.normal(scale=0.5, size=(N, 3))
    y, _ = make_case(kind, rng)
    model = bp.Sequential(
        [bp.layers.Dense(6, "tanh", input_dim=3), bp.layers.Dense(K, out)], dtype="float64", seed=2
    )
    model.compile(loss=loss, optimizer="sgd")
    assert bp.gradcheck(model, X, y) < 1e-6
    model.save(tmp_path / "m.npz")
    loaded = bp.load(tmp_path / "m.npz")
    assert loaded.loss.get_config() == model.loss.get_config()
    assert loaded.evaluate(X, y, verbose=0) == model.evaluate(X, y, verbose=0)


# -- per-sample losses and sample weights -------------------------------------------------------


@cases
def test_per_sample_is_each_rows_loss_and_weighted_sums_over_the_batch(
    name, kind, ref, backend64, rng
):
    """Row i's per-sample loss is the formula on row i alone; ``weighted`` is sum w_i L_i / n."""
    b, xp = backend64, backend64.xp
    loss = make_loss(name)
    y_host, p_host = make_case(kind, rng)
    y, p = b.asarray(y_host, "float64"), b.asarray(p_host, "float64")
    per = loss.per_sample(y, p, xp)
    assert tuple(per.shape) == (y_host.shape[0],)
    if kind != "zero_one":  # there the 0/1 -> -1/1 mapping is decided over the whole batch
        rows = np.array([ref(y_host[i : i + 1], p_host[i : i + 1]) for i in range(len(y_host))])
        assert_close(per, rows, b)
    assert_close(xp.mean(per), bp.to_numpy(loss.forward(y, p, xp)), b)
    w_host = rng.uniform(0.0, 2.0, size=y_host.shape[0])
    w = b.asarray(w_host, "float64")
    expected = np.sum(w_host * bp.to_numpy(per)) / y_host.shape[0]
    assert_close(loss.weighted(y, p, w, xp), np.asarray(expected), b)


@pytest.mark.parametrize(
    "name,act", [("binary_crossentropy", ref_sigmoid), ("categorical_crossentropy", ref_softmax)]
)
def test_per_sample_from_logits_matches_the_probabilities(name, act, backend64, rng):
    b, xp = backend64, backend64.xp
    loss = L.get(name)
    z_host = rng.normal(size=(N, K))
    p_host = act(z_host)
    y_host = make_case("binary" if name.startswith("binary") else "categorical", rng)[0]
    y, z = b.asarray(y_host, "float64"), b.asarray(z_host, "float64")
    rows = loss.per_sample(y, b.asarray(p_host, "float64"), xp)
    assert_close(loss.per_sample_from_logits(y, z, xp), bp.to_numpy(rows), b)
    w = b.asarray(rng.uniform(0.0, 2.0, size=N), "float64")
    assert_close(
        loss.weighted(y, b.asarray(p_host, "float64"), w, xp, z),
        bp.to_numpy(loss.weighted(y, b.asarray(p_host, "float64"), w, xp)),
        b,
    )


def test_a_loss_without_a_per_sample_form_says_what_to_define():
    class Custom(L.Loss):
        def forward(self, y, y_hat, xp):
            return xp.mean(y_hat)

    with pytest.raises(NotImplementedError, match="per_sample"):
        Custom().per_sample(np.ones((2, 1)), np.ones((2, 1)), np)
