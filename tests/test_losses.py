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
    else:  # regression; |p - y| >= 0.1 so MAE is differentiable within any finite difference
        y = rng.normal(size=(N, k))
        p = y + rng.choice([-1.0, 1.0], (N, k)) * rng.uniform(0.1, 1.0, (N, k))
    return y, p


CASES = [
    ("binary_crossentropy", "binary", ref_bce),
    ("categorical_crossentropy", "categorical", ref_cce),
    ("sparse_categorical_crossentropy", "categorical", ref_cce),
    ("mse", "regression", ref_mse),
    ("mae", "regression", ref_mae),
]
cases = pytest.mark.parametrize(("name", "kind", "ref"), CASES, ids=[c[0] for c in CASES])


# -- values -----------------------------------------------------------------------------------


@cases
def test_forward_matches_formula(name, kind, ref, backend, rng):
    """A 0-d array on the inputs' device and dtype, equal to the textbook formula.

    The sums have N*K = 20 terms of size < 3 (p in (0.05, 0.95)): 100 eps covers the roundings.
    """
    loss = L.get(name)
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
}


@needs_torch
@cases
def test_forward_and_gradient_match_torch(name, kind, ref, backend64, rng):
    """Value and dL/dy_hat against torch's losses and autograd (an independent oracle)."""
    b, xp = backend64, backend64.xp
    loss = L.get(name)
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
    loss = L.get(name)
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


@pytest.mark.parametrize("name", ["mse", "mae"])
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
