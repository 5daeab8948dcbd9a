"""Activations: forward against independent references, backward against finite differences.

References are written here in host NumPy (float64) from the textbook formulas, and cross-checked
against ``torch.nn.functional`` where torch is installed.
"""

from __future__ import annotations

import hashlib
import json
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


def ref_gelu_tanh_stable(z):
    """The tanh form as z sigmoid(2u): 1 + tanh(u) cancels for negative z, this does not."""
    return z * ref_sigmoid(2.0 * math.sqrt(2.0 / math.pi) * (z + 0.044715 * z**3))


def ref_gelu(z):
    """z Phi(z) with Phi(z) = erfc(-z / sqrt 2) / 2 from the standard library's erfc."""
    z = np.asarray(z, dtype=np.float64)
    phi = np.vectorize(lambda v: 0.5 * math.erfc(-v / math.sqrt(2.0)))(z)
    return z * phi


SELU_ALPHA, SELU_SCALE = 1.6732632423543772848170429916717, 1.0507009873554804934193349852946


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
    ("gelu", A.GELU(), ref_gelu),
    ("gelu_tanh", A.GELU(approximate=True), ref_gelu_tanh),
    ("silu", A.SiLU(), lambda z: z * ref_sigmoid(z)),
    ("softplus", A.Softplus(), lambda z: np.logaddexp(0.0, z)),
    ("softsign", A.Softsign(), lambda z: z / (1.0 + np.abs(z))),
    (
        "selu",
        A.SELU(),
        lambda z: SELU_SCALE * np.where(z > 0, z, SELU_ALPHA * np.expm1(np.minimum(z, 0))),
    ),
    ("hard_sigmoid", A.HardSigmoid(), lambda z: np.clip(z + 3.0, 0.0, 6.0) / 6.0),
    ("exponential", A.Exponential(), np.exp),
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
    "gelu": lambda t: F.gelu(t),  # torch's default is the exact form too
    "gelu_tanh": lambda t: F.gelu(t, approximate="tanh"),
    "silu": lambda t: F.silu(t),
    "softplus": lambda t: F.softplus(t, threshold=1000.0),  # no linear cut-off at z > 20
    "softsign": lambda t: F.softsign(t),
    "selu": lambda t: F.selu(t),
    "hard_sigmoid": lambda t: F.hardsigmoid(t),
    "exponential": lambda t: torch.exp(t),
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


# e^z overflows beyond z ~ 709 (float64) / 88 (float32): tested on its own below
BOUNDED_AT_EXTREMES = [c for c in ELEMENTWISE if c[0] != "exponential"]


@by_id(BOUNDED_AT_EXTREMES)
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
        "exponential",
        "gelu",
        "hard_sigmoid",
        "leaky_relu",
        "linear",
        "relu",
        "selu",
        "sigmoid",
        "silu",
        "softmax",
        "softplus",
        "softsign",
        "swish",
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
    canonical = {"swish": "silu"}.get(name, name)  # Keras's alias, saved as "silu" as Keras does
    assert act.name == canonical
    assert A.get(name.upper()).name == canonical
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


# -- the activations taken from Keras 3 (issue 21) --------------------------------------------

NEW = ["gelu", "gelu_tanh", "silu", "softplus", "softsign", "selu", "hard_sigmoid", "exponential"]
NEW_CASES = [c for c in ELEMENTWISE if c[0] in NEW]
# torch's hardsigmoid backward multiplies by 1/6 rounded to float32 (3e-8 off in float64):
# autograd of the definition instead
AUTOGRAD_REFS = {**TORCH_REFS, "hard_sigmoid": lambda t: torch.clamp(t + 3.0, 0.0, 6.0) / 6.0}


@needs_torch
@by_id(NEW_CASES)
def test_backward_matches_torch_autograd(act, ref, backend64, rng):
    """dz = dy * g'(z) against torch autograd of the same function, to rtol 1e-9.

    z spans [-6, 6] (hard_sigmoid's kinks at +-3 and 0 are avoided by the draws' gap), where
    both sides carry a few eps of rounding; 1e-9 leaves room only for torch's exact GELU,
    which takes 1 + erf(z / sqrt 2) and so loses ~eps / Phi(z) relative for negative z.
    """
    b, xp = backend64, backend64.xp
    name = next(c[0] for c in NEW_CASES if c[1] is act)
    z_host = away_from_kinks(rng, SHAPE, -6.0, 6.0)
    z_host = np.where(np.abs(np.abs(z_host) - 3.0) < 0.05, z_host + 0.1, z_host)
    dy_host = rng.normal(size=SHAPE)
    z_t = torch.tensor(z_host, requires_grad=True)
    AUTOGRAD_REFS[name](z_t).backward(torch.tensor(dy_host))
    z = b.asarray(z_host, "float64")
    y = act.forward(z, xp)
    assert_close(y, AUTOGRAD_REFS[name](torch.tensor(z_host)).numpy(), b, rtol=1e-9, atol=0)
    dz = act.backward(b.asarray(dy_host, "float64"), z, y, xp)
    assert_close(dz, z_t.grad.numpy(), b, rtol=1e-9, atol=0, dtype=z.dtype)


def ref_gelu_mp(z):
    """z Phi(z) in 100-bit arithmetic: math.erfc(-z / sqrt 2) rounds its argument first, which
    costs ~2 eps u^2 relative (1e-13 at z = -20); mpmath comes with torch (through sympy)."""
    mpmath = pytest.importorskip("mpmath")
    with mpmath.workprec(100):
        return np.array([float(mpmath.mpf(v) * mpmath.ncdf(v)) for v in z.ravel()]).reshape(z.shape)


@by_id(NEW_CASES)
def test_new_activations_keep_their_limits_at_extremes(act, ref, backend64):
    """At |z| up to 1000 (up to 700 for e^z): the float64 value of the formula, to 100 eps
    relative, where each reference is itself overflow-free and cancellation-free (logaddexp,
    expm1 of min, GELU's Phi in extended precision)."""
    xp = backend64.xp
    host = np.clip(EXTREMES, None, 700.0) if act.name == "exponential" else EXTREMES
    if act.name == "gelu":
        ref = ref_gelu_tanh_stable if act.approximate else ref_gelu_mp
    z = backend64.asarray(host, "float64")
    y = act.forward(z, xp)
    assert_close(y, ref(host), backend64, rtol=100 * eps("float64"), atol=0)
    d = bp.to_numpy(act.derivative(z, y, xp))
    assert np.all(np.isfinite(d))


def test_exponential_overflows_only_where_e_to_the_z_does(backend):
    """e^z is finite up to log(max float) and +inf beyond, as the number is; never NaN."""
    xp = backend.xp
    for dt in float_dtypes(backend):
        top = math.log(float(np.finfo(dt).max))
        host = np.linspace(-1000.0, 0.999 * top, 20).reshape(SHAPE)
        z = backend.asarray(host, dt)
        y = A.exponential.forward(z, xp)
        assert np.all(np.isfinite(bp.to_numpy(y)))
        assert_close(A.exponential.derivative(z, y, xp), bp.to_numpy(y), backend)


def test_gelu_is_exact_by_default_as_in_keras():
    """gelu is Keras's exact form; approximate=True keeps the tanh form (backprop's old gelu)."""
    z = np.linspace(-4.0, 4.0, 41)
    np.testing.assert_allclose(A.get("gelu")(z), ref_gelu(z), rtol=1e-15, atol=1e-16)
    np.testing.assert_allclose(A.gelu(z), ref_gelu(z), rtol=1e-15, atol=1e-16)
    tanh_form = A.get({"name": "gelu", "approximate": True})
    np.testing.assert_allclose(tanh_form(z), ref_gelu_tanh_stable(z), rtol=1e-15, atol=1e-16)
    # the two forms differ by ~5e-4 at most: a test that told them apart is meaningful
    assert 1e-4 < np.max(np.abs(ref_gelu(z) - ref_gelu_tanh(z))) < 1e-3
    assert A.GELU().get_config() == {"name": "gelu", "approximate": False}
    assert A.GELU(approximate=True).get_config() == {"name": "gelu", "approximate": True}
    assert repr(A.GELU(True)) == "GELU(approximate=True)"


@pytest.mark.parametrize("bad", ["tanh", 1, None])
def test_gelu_approximate_must_be_a_bool(bad):
    with pytest.raises(TypeError, match="approximate"):
        A.GELU(approximate=bad)


def test_a_gelu_config_without_approximate_is_the_old_tanh_form():
    """{"name": "gelu"} is what a file saved before GELU took approximate holds."""
    old = A.get({"name": "gelu"})
    assert old.approximate is True
    assert A.get({"name": "GELU"}).approximate is True
    assert A.get("gelu").approximate is False  # a name is Keras's gelu


def _documented_checksum(config: dict, arrays: dict) -> str:
    """docs/file-format.md's version-2 checksum, written here independently of backprop/io.py."""
    body = {k: v for k, v in config.items() if k != "checksum"}
    h = hashlib.sha256()
    h.update(json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode())
    h.update(b"\n")
    for name in config["arrays"]:
        a = np.ascontiguousarray(arrays[name])
        h.update(f"{name}|{a.dtype.str}|{a.shape}|".encode())
        h.update(a.tobytes())
    return "sha256:" + h.hexdigest()


def test_a_file_saved_with_the_old_gelu_loads_the_tanh_form(tmp_path):
    """A model file whose gelu config is {"name": "gelu"} (the old writer's) predicts as the
    tanh form did; a new file keeps whichever form it was saved with."""
    X = np.random.default_rng(0).normal(size=(6, 3))
    model = bp.Sequential(
        [bp.layers.Dense(5, A.GELU(approximate=True), input_dim=3), bp.layers.Dense(1)], seed=0
    )
    model.save(tmp_path / "new.npz")
    with np.load(tmp_path / "new.npz", allow_pickle=False) as f:
        arrays = {k: f[k] for k in f.files}
    config = json.loads(str(arrays.pop("__config__")))
    activation = config["model"]["layers"][0]["config"]["activation"]
    assert activation == {"name": "gelu", "approximate": True}
    del activation["approximate"]  # as the old writer wrote it
    config["checksum"] = _documented_checksum(config, arrays)
    np.savez(tmp_path / "old.npz", __config__=np.array(json.dumps(config)), **arrays)
    expected = model.predict(X)
    for name in ("old.npz", "new.npz"):
        loaded = bp.load(tmp_path / name)
        assert loaded.layers[0].activation.approximate is True
        np.testing.assert_array_equal(loaded.predict(X), expected)
    exact = bp.Sequential([bp.layers.Dense(5, "gelu", input_dim=3), bp.layers.Dense(1)], seed=0)
    exact.save(tmp_path / "exact.npz")
    assert bp.load(tmp_path / "exact.npz").layers[0].activation.approximate is False


def test_swish_is_silu():
    assert type(A.get("swish")) is A.SiLU
    assert A.get("swish").get_config() == {"name": "silu"}
    assert A.swish is A.silu


# Each new activation in a small model: gradcheck (float64 central differences on the whole
# model), then save and load to the same predictions. hard_sigmoid's inputs stay inside its
# linear part (|z| < 3): finite differences across a kink measure nothing.
MODEL_ACTIVATIONS = ["gelu", "silu", "swish", "softplus", "softsign", "selu", "hard_sigmoid",
                     "exponential"]  # fmt: skip


@pytest.mark.parametrize("name", MODEL_ACTIVATIONS)
def test_a_model_with_each_new_activation_passes_gradcheck_and_saves(name, tmp_path):
    rng = np.random.default_rng(3)
    X = rng.normal(scale=0.5, size=(8, 3))
    y = rng.normal(size=(8, 2))
    model = bp.Sequential(
        [bp.layers.Dense(4, name, input_dim=3), bp.layers.Dense(2, name)],
        dtype="float64",
        seed=1,
    )
    model.compile(loss="mse", optimizer="sgd")
    assert bp.gradcheck(model, X, y) < 1e-6
    model.save(tmp_path / "m.npz")
    loaded = bp.load(tmp_path / "m.npz")
    assert [layer.activation.get_config() for layer in loaded.layers] == [
        layer.activation.get_config() for layer in model.layers
    ]
    np.testing.assert_array_equal(loaded.predict(X), model.predict(X))


# -- erf ----------------------------------------------------------------------------------------


def _erf_grid() -> np.ndarray:
    """The whole line, in blocks of SHAPE: each of Cody's intervals, their borders, tiny and
    huge |x|. (JAX compiles each op once per shape: SHAPE's are compiled already.)"""
    rng = np.random.default_rng(7)
    edges = [0.0, 1e-300, 1e-20, 1e-8, 0.46875, 0.46876, 4.0, 4.0000001, 5.9, 26.5, 27.2, 1e300]
    x = np.concatenate(
        [
            rng.uniform(-0.5, 0.5, 100),
            rng.uniform(-4.5, 4.5, 160),
            rng.uniform(-30.0, 30.0, 128),
            edges,
            -np.array(edges[1:]),
            [-0.0, 0.2, 0.3, 1.0, 2.0, 3.0, 8.0, 12.0, 20.0],
        ]
    )
    return x.reshape(-1, *SHAPE)


def _blockwise(f, x, backend, dt) -> np.ndarray:
    return np.stack([bp.to_numpy(f(backend.asarray(block, dt))) for block in x]).astype(float)


def test_erf_and_erfc_match_the_standard_library(backend):
    """erf within 1e-15 relative of math.erf on the whole line, erfc of math.erfc wherever it
    is a normal number (below that, within the smallest normal: a subnormal has fewer bits,
    and XLA flushes them to 0); float32 within 8 eps. Measured in float64: 6.4e-16 (erf),
    8.7e-16 (erfc), of which math's own error is ~2e-16."""
    for dt in float_dtypes(backend):
        big = float(np.finfo(dt).max) / 10  # 1e300 is out of float32's range
        x = np.clip(_erf_grid(), -big, big).astype(dt).astype(np.float64)  # as the backend sees
        want_erf = np.vectorize(math.erf)(x)
        want_erfc = np.vectorize(math.erfc)(x)
        got_erf = _blockwise(A.erf, x, backend, dt)
        got_erfc = _blockwise(lambda a: A.erfc(a, xp=backend.xp), x, backend, dt)
        block = backend.asarray(x[0], dt)
        assert_close(A.erf(block), got_erf[0], backend, dtype=block.dtype)  # where, dtype
        assert_close(A.erfc(block), got_erfc[0], backend, dtype=block.dtype)
        rtol = 1e-15 if dt == "float64" else 8 * eps(dt)
        tiny = float(np.finfo(dt).tiny)
        np.testing.assert_allclose(got_erf, want_erf, rtol=rtol, atol=0)
        normal = want_erfc >= tiny
        np.testing.assert_allclose(got_erfc[normal], want_erfc[normal], rtol=rtol, atol=0)
        np.testing.assert_allclose(got_erfc[~normal], want_erfc[~normal], rtol=0, atol=tiny)


def test_erf_special_values(backend):
    """+-inf, NaN and the sign of zero, in one block of SHAPE."""
    xp = backend.xp
    host = np.zeros(SHAPE)
    host.flat[:5] = [np.inf, -np.inf, np.nan, 0.0, -0.0]
    for dt in float_dtypes(backend):
        x = backend.asarray(host, dt)
        got = bp.to_numpy(A.erf(x, xp=xp)).ravel()[:5]
        np.testing.assert_array_equal(got[:2], [1.0, -1.0])
        assert np.isnan(got[2])
        assert got[3] == 0.0 and not np.signbit(got[3]) and np.signbit(got[4])
        got = bp.to_numpy(A.erfc(x)).ravel()[:5]
        np.testing.assert_array_equal(got[[0, 1, 3, 4]], [0.0, 2.0, 1.0, 1.0])
        assert np.isnan(got[2])
