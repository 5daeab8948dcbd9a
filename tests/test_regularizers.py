"""Weight penalties: values and gradients against the formula and finite differences."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import assert_close, eps, numeric_grad

import backprop as bp
from backprop import regularizers as R

H = 1e-6  # the step of conftest.numeric_grad
SHAPE = (4, 5)

CASES = [(0.3, 0.0), (0.0, 0.2), (0.05, 0.7)]
ids = ["l1", "l2", "l1_l2"]


def float_dtypes(backend) -> list[str]:
    return ["float32", "float64"] if backend.supports_float64 else ["float32"]


def weights(rng) -> np.ndarray:
    """Entries with |W| >= 0.1: sign(W) is constant within any central difference."""
    return rng.choice([-1.0, 1.0], SHAPE) * rng.uniform(0.1, 2.0, SHAPE)


@pytest.mark.parametrize(("l1", "l2"), CASES, ids=ids)
def test_penalty_and_gradient_match_formula(l1, l2, backend, rng):
    """R(W) = l1 sum|W| + l2 sum W^2 as a 0-d array on W's device; dR/dW of W's shape."""
    r = R.Regularizer(l1=l1, l2=l2)
    W_host = weights(rng)
    for dt in float_dtypes(backend):
        W = backend.asarray(W_host, dt)
        w = bp.to_numpy(W).astype(np.float64)
        penalty = r.penalty(W, backend.xp)
        expected = l1 * np.sum(np.abs(w)) + l2 * np.sum(w * w)
        # 20 terms of size < 4: 100 eps covers the summation
        assert_close(penalty, np.asarray(expected), backend, dtype=W.dtype)
        grad = r.gradient(W, backend.xp)
        assert_close(grad, l1 * np.sign(w) + 2 * l2 * w, backend, dtype=W.dtype)


@pytest.mark.parametrize(("l1", "l2"), CASES, ids=ids)
def test_gradient_matches_finite_differences(l1, l2, backend64, rng):
    b, xp = backend64, backend64.xp
    r = R.Regularizer(l1=l1, l2=l2)
    W_host = weights(rng)

    def f(w):
        return float(bp.to_numpy(r.penalty(b.asarray(w, "float64"), xp)))

    expected = numeric_grad(f, W_host, h=H)
    # rounding of f (~ eps * f) divided by 2H; 10 for the summation; truncation is 0 (degree 2)
    atol = 10 * eps("float64") * f(W_host) / H
    assert_close(r.gradient(b.asarray(W_host, "float64"), xp), expected, b, rtol=0, atol=atol)


def test_l1_l2_factories():
    r = R.L1()
    assert (r.l1, r.l2) == (0.01, 0.0)
    r = R.L2()
    assert (r.l1, r.l2) == (0.0, 0.01)
    assert (R.L1(0.5).l1, R.L2(0.25).l2) == (0.5, 0.25)
    W = np.array([[-2.0, 3.0]])
    xp = bp.backend.resolve("numpy").xp
    assert float(R.L1(0.5).penalty(W, xp)) == 2.5
    assert float(R.L2(0.25).penalty(W, xp)) == 3.25


@pytest.mark.parametrize(
    ("identifier", "l1", "l2"),
    [("l1", 0.01, 0.0), ("l2", 0.0, 0.01), ("L2", 0.0, 0.01), ("l1_l2", 0.01, 0.01)],
)
def test_get_by_name(identifier, l1, l2):
    r = R.get(identifier)
    assert (r.l1, r.l2) == (l1, l2)


def test_get_config_instance_none():
    r = R.Regularizer(l1=0.2, l2=0.3)
    assert R.get(r) is r
    assert R.get(None) is None
    again = R.get(r.get_config())
    assert (again.l1, again.l2) == (0.2, 0.3)
    assert again.get_config() == r.get_config()


def test_get_unknown_name_lists_names():
    with pytest.raises(ValueError, match="nope") as info:
        R.get("nope")
    for name in ("l1", "l2", "l1_l2"):
        assert f"'{name}'" in str(info.value)
    with pytest.raises(TypeError):
        R.get(3)


@pytest.mark.parametrize(("kw", "arg"), [({"l1": -0.1}, "l1"), ({"l2": "0.1"}, "l2")])
def test_bad_factors(kw, arg):
    with pytest.raises(ValueError, match=arg):
        R.Regularizer(**kw)
