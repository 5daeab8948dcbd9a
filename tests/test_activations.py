"""Activations: forward against independent references, backward against finite differences.

References are written here in host NumPy (float64) from the textbook formulas, and cross-checked
against ``torch.nn.functional`` where torch is installed.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from conftest import HAS_CUPY, assert_close, eps, numeric_grad

import backprop as bp
from backprop import activations as A

try:
    import torch
    import torch.nn.functional as F
except ImportError:  # pragma: no cover - torch is optional
    torch = None

needs_torch = pytest.mark.skipif(torch is None, reason="torch is not installed")

H = 1e-6  # the step of conftest.numeric_grad

# One shape for every test: JAX compiles each (op, shape, dtype) once, so sharing it keeps the
# module fast on JAX.
SHAPE = (4, 5)


def fd_atol(scale: float) -> float:
    """Absolute error bound of a float64 central difference with step H.

    Rounding: each evaluation of f is off by a few eps * scale (scale = sum of |terms| of f),
    and the difference quotient divides that by 2H; 10 covers the few roundings per term. The
    truncation error H^2 |f'''| / 6 is ~1e-13 here, negligible next to it.
    """
    return 10 * eps("float64") * scale / H


def float_dtypes(backend) -> list[str]:
    return ["float32", "float64"] if backend.supports_float64 else ["float32"]


# -- independent references (host NumPy, float64) ---------------------------------------------


def ref_sigmoid(z):
    z = np.asarray(z, dtype=np.float64)
    # exp of a non-positive number only: no overflow warning for any z
    e = np.exp(-np.abs(z))
    return np.where(z >= 0, 1.0 / (1.0 + e), e / (1.0 + e))


def ref_gelu_tanh(z):
    return 0.5 * z * (1.0 + np.tanh(math.sqrt(2.0 / math.pi) * (z + 0.044715 * z**3)))


def ref_softmax(z):
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


# (id, activation instance, reference forward on host float64)
ELEMENTWISE = [
    ("linear", A.Linear(), lambda z: z),
    ("relu", A.ReLU(), lambda z: np.maximum(z, 0.0)),
    ("leaky_relu", A.LeakyReLU(), lambda z: np.where(z > 0, z, 0.01 * z)),
    ("leaky_relu_0.3", A.LeakyReLU(0.3), lambda z: np.where(z > 0, z, 0.3 * z)),
    ("elu", A.ELU(), lambda z: np.where(z > 0, z, np.exp(np.minimum(z, 0)) - 1.0)),
    ("elu_0.5", A.ELU(0.5), lambda z: np.where(z > 0, z, 0.5 * (np.exp(np.minimum(z, 0)) - 1))),
    ("gelu", A.GELU(), ref_gelu_tanh),
    ("sigmoid", A.Sigmoid(), ref_sigmoid),
    ("tanh", A.Tanh(), np.tanh),
]
ALL = [*ELEMENTWISE, ("softmax", A.Softmax(), ref_softmax)]


def by_id(cases):
    return pytest.mark.parametrize(
        ("act", "ref"), [(c[1], c[2]) for c in cases], ids=[c[0] for c in cases]
    )


def away_from_kinks(rng, shape, low=-3.0, high=3.0, gap=0.05):
    """Uniform draws with |z| >= gap, so that no central difference straddles the kink at 0."""
    z = rng.uniform(low, high, shape)
    return np.where(np.abs(z) < gap, np.sign(z + 1e-300) * gap + z, z)


# -- forward ----------------------------------------------------------------------------------


@by_id(ALL)
def test_forward_matches_reference(act, ref, backend, rng):
    """Forward values equal the formula, on the input's namespace/device and in its dtype.

    With |z| <= 4 every intermediate has magnitude below ~10, so each of the few roundings
    contributes an absolute error of about eps * 10: 100 eps absolute and relative covers it.
    """
    z_host = rng.uniform(-4.0, 4.0, SHAPE)
    for dt in float_dtypes(backend):
        z = backend.asarray(z_host, dt)
        # the reference sees exactly the (possibly float32-rounded) input the backend sees
        expected = ref(bp.to_numpy(z).astype(np.float64))
        tol = 100 * eps(dt)
        y = act.forward(z, backend.xp)
        assert_close(y, expected, backend, rtol=tol, atol=tol, dtype=z.dtype)
        # __call__ finds the namespace itself
        assert_close(act(z), expected, backend, rtol=tol, atol=tol, dtype=z.dtype)


TORCH_REFS = {
    "relu": lambda t: F.relu(t),
    "leaky_relu": lambda t: F.leaky_relu(t),  # torch's default negative_slope is 0.01 too
    "leaky_relu_0.3": lambda t: F.leaky_relu(t, negative_slope=0.3),
    "elu": lambda t: F.elu(t),
    "elu_0.5": lambda t: F.elu(t, alpha=0.5),
    "gelu": lambda t: F.gelu(t, approximate="tanh"),
    "sigmoid": lambda t: torch.sigmoid(t),
    "tanh": lambda t: torch.tanh(t),
    "softmax": lambda t: F.softmax(t, dim=-1),
}


@needs_torch
@pytest.mark.parametrize("name", sorted(TORCH_REFS))
def test_forward_matches_torch(name, backend64, rng):
    act = {c[0]: c[1] for c in ALL}[name]
    z_host = rng.uniform(-5.0, 5.0, SHAPE)
    expected = TORCH_REFS[name](torch.from_numpy(z_host)).numpy()
    z = backend64.asarray(z_host, "float64")
    tol = 100 * eps("float64")
    assert_close(act.forward(z, backend64.xp), expected, backend64, rtol=tol, atol=tol)


def test_default_alphas():
    assert A.leaky_relu.alpha == 0.01
    assert A.LeakyReLU().alpha == 0.01
    assert A.elu.alpha == 1.0


# -- backward ---------------------------------------------------------------------------------


@by_id(ALL)
def test_backward_matches_finite_differences(act, ref, backend64, rng):
    """Backward(dy) is the gradient of sum(forward(z) * dy), by float64 central differences."""
    b, xp = backend64, backend64.xp
    z_host = away_from_kinks(rng, SHAPE)
    dy_host = rng.normal(size=SHAPE)

    def f(zh):
        return float(np.sum(bp.to_numpy(act.forward(b.asarray(zh, "float64"), xp)) * dy_host))

    expected = numeric_grad(f, z_host, h=H)
    z = b.asarray(z_host, "float64")
    y = act.forward(z, xp)
    dz = act.backward(b.asarray(dy_host, "float64"), z, y, xp)
    scale = float(np.sum(np.abs(bp.to_numpy(y) * dy_host)))
    assert_close(dz, expected, b, rtol=0, atol=fd_atol(scale), dtype=z.dtype)


@by_id(ELEMENTWISE)
def test_derivative_agrees_with_backward(act, ref, backend, rng):
    """For elementwise g, backward(dy) == dy * g'(z) and g'(z) has z's shape, dtype, device."""
    z_host = away_from_kinks(rng, SHAPE)
    dy_host = rng.normal(size=SHAPE)
    xp = backend.xp
    for dt in float_dtypes(backend):
        z, dy = backend.asarray(z_host, dt), backend.asarray(dy_host, dt)
        y = act.forward(z, xp)
        d = act.derivative(z, y, xp)
        assert_close(d, bp.to_numpy(d), backend, dtype=z.dtype)  # namespace/device/dtype/shape
        expected = bp.to_numpy(dy).astype(np.float64) * bp.to_numpy(d).astype(np.float64)
        assert_close(act.backward(dy, z, y, xp), expected, backend, dtype=z.dtype)


@by_id(ELEMENTWISE)
def test_derivative_matches_finite_differences(act, ref, backend64, rng):
    """g'(z) against central differences of the *reference* g, independently of backward."""
    z_host = away_from_kinks(rng, SHAPE)
    expected = (ref(z_host + H) - ref(z_host - H)) / (2 * H)
    z = backend64.asarray(z_host, "float64")
    d = act.derivative(z, act.forward(z, backend64.xp), backend64.xp)
    scale = float(np.max(np.abs(ref(z_host)))) + 1.0
    assert_close(d, expected, backend64, rtol=0, atol=fd_atol(scale))


def test_relu_gradient_is_zero_at_the_kink(backend):
    z_host = np.linspace(-2.0, 2.0, 20).reshape(SHAPE)
    z_host[0, :2] = 0.0
    z = backend.asarray(z_host, "float32")
    xp = backend.xp
    y = A.relu.forward(z, xp)
    assert_close(A.relu.derivative(z, y, xp), (z_host > 0).astype(np.float64), backend)
    dy = backend.asarray(np.full(SHAPE, 5.0), "float32")
    assert_close(A.relu.backward(dy, z, y, xp), np.where(z_host > 0, 5.0, 0.0), backend)


def test_softmax_has_no_elementwise_derivative(backend):
    z = backend.asarray(np.zeros(SHAPE), "float32")
    with pytest.raises(NotImplementedError, match="backward"):
        A.softmax.derivative(z, A.softmax.forward(z, backend.xp), backend.xp)


# -- numerical stability ----------------------------------------------------------------------

_BIG = [1000.0, 500.0, 100.0, 80.0, 50.0, 20.0, 5.0, 1.0, 1e-3]
EXTREMES = np.array([-v for v in _BIG] + [0.0, 0.0] + _BIG[::-1]).reshape(SHAPE)  # sorted


def test_sigmoid_is_stable_for_huge_inputs(backend):
    """No overflow (warnings are errors here), no nan, and the exact limits 0 and 1."""
    xp = backend.xp
    for dt in float_dtypes(backend):
        z = backend.asarray(EXTREMES, dt)
        y = A.sigmoid.forward(z, xp)
        host = bp.to_numpy(y)
        assert np.all(np.isfinite(host))
        assert host.flat[0] == 0.0
        assert host.flat[-1] == 1.0
        assert np.all((host >= 0.0) & (host <= 1.0))
        assert np.all(np.diff(host.ravel()) >= 0)  # monotone
        # where the float32 result is a normal number (|z| <= 50), it matches the formula
        keep = np.abs(EXTREMES) <= 50 if dt == "float32" else slice(None)
        np.testing.assert_allclose(host[keep], ref_sigmoid(EXTREMES)[keep], rtol=100 * eps(dt))
        d = bp.to_numpy(A.sigmoid.derivative(z, y, xp))
        assert np.all(np.isfinite(d))
        assert d.flat[0] == 0.0
        assert d.flat[-1] == 0.0


@by_id(ELEMENTWISE)
def test_elementwise_finite_for_huge_inputs(act, ref, backend):
    """|z| = 1000 overflows nothing: forward and derivative are finite, no warning is raised."""
    xp = backend.xp
    for dt in float_dtypes(backend):
        z = backend.asarray(EXTREMES, dt)
        y = act.forward(z, xp)
        assert np.all(np.isfinite(bp.to_numpy(y)))
        assert np.all(np.isfinite(bp.to_numpy(act.derivative(z, y, xp))))


def test_softmax_rows_sum_to_one_and_shift_invariant(backend, rng):
    """Softmax(z + c) == softmax(z) for c up to 1e4, with no overflow.

    The base logits are multiples of 0.5 in [-4, 4]: adding +-1e4 is then exact in float32 and
    float64, so the shifted rows must give the same result up to the rounding of exp/sum.
    """
    xp = backend.xp
    base = rng.integers(-8, 9, size=SHAPE) * 0.5
    expected = ref_softmax(base)
    for dt in float_dtypes(backend):
        for shift in (0.0, 1e4, -1e4):
            z = backend.asarray(base + shift, dt)
            y = A.softmax.forward(z, xp)
            assert_close(y, expected, backend, dtype=z.dtype)
            sums = bp.to_numpy(xp.sum(y, axis=-1))
            np.testing.assert_allclose(sums, 1.0, rtol=10 * base.shape[1] * eps(dt))


def test_softmax_extreme_row(backend):
    xp = backend.xp
    z_host = np.full(SHAPE, -1e4)
    z_host[0] = [1e4, 0.0, -1e4, -1e4, 5e3]  # one dominant logit; row 1..3: all equal
    expected = np.full(SHAPE, 1 / SHAPE[1])
    expected[0] = [1.0, 0.0, 0.0, 0.0, 0.0]
    for dt in float_dtypes(backend):
        z = backend.asarray(z_host, dt)
        assert_close(A.softmax.forward(z, xp), expected, backend, dtype=z.dtype)


# -- lookup -----------------------------------------------------------------------------------


def test_names_are_the_documented_set():
    assert set(A.names()) == {
        "elu",
        "gelu",
        "leaky_relu",
        "linear",
        "relu",
        "sigmoid",
        "softmax",
        "tanh",
    }


def test_get_unknown_name_lists_valid_names():
    with pytest.raises(ValueError, match="nope") as info:
        A.get("nope")
    for name in A.names():
        assert name in str(info.value)
    with pytest.raises(ValueError, match="nope"):
        A.get({"name": "nope"})


@pytest.mark.parametrize("name", A.names())
def test_get_by_name_and_config_roundtrip(name):
    act = A.get(name)
    assert act.name == name
    assert A.get(name.upper()).name == name
    again = A.get(act.get_config())
    assert type(again) is type(act)
    assert again.get_config() == act.get_config()


def test_get_config_keeps_custom_alpha():
    act = A.get({"name": "leaky_relu", "alpha": 0.2})
    assert isinstance(act, A.LeakyReLU)
    assert act.alpha == 0.2
    z = np.array([-2.0, 3.0])
    np.testing.assert_array_equal(act(z), [-0.4, 3.0])
    again = A.get(act.get_config())
    assert again.alpha == 0.2
    assert A.get(A.ELU(0.7).get_config()).alpha == 0.7


def test_get_instance_none_and_bad_type():
    act = A.LeakyReLU(0.1)
    assert A.get(act) is act
    assert isinstance(A.get(None), A.Linear)
    with pytest.raises(TypeError, match="activation"):
        A.get(3)


@pytest.mark.parametrize("cls", [A.LeakyReLU, A.ELU])
@pytest.mark.parametrize("alpha", [-0.1, "0.2", True])
def test_bad_alpha(cls, alpha):
    with pytest.raises(ValueError, match="alpha"):
        cls(alpha)


@pytest.mark.gpu
@pytest.mark.skipif(not HAS_CUPY, reason="needs CuPy and a CUDA GPU")
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_the_fused_cupy_relu_backward_equals_the_portable_one(monkeypatch, dtype):
    from backprop import backend as B

    b = B.resolve("cupy")
    rng = np.random.default_rng(0)
    z = rng.normal(size=(64, 33))
    z[0, :4] = [0.0, -0.0, np.nan, np.inf]
    dy = rng.normal(size=(64, 33))
    dy[1, :3] = [np.inf, -np.inf, np.nan]
    Z, DY = b.asarray(z, b.dtype(dtype)), b.asarray(dy, b.dtype(dtype))
    relu = bp.activations.get("relu")
    results = []
    for fuse in (True, False):
        monkeypatch.setattr(B, "FUSE", fuse)
        results.append(b.to_numpy(relu.backward(DY, Z, None, b.xp)))
    assert ("relu_backward", False) in B._COMPILED
    np.testing.assert_array_equal(results[0], results[1])  # NaN where the portable gives NaN
