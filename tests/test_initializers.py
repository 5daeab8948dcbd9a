"""Initializers: shapes, uniform limits, normal variances, truncation, seeding and lookup."""

from __future__ import annotations

import math

import numpy as np
import pytest

from backprop import initializers as I

# A large sample (200,000 draws) for the statistical checks.
FAN_IN, FAN_OUT = 400, 500
BIG = (FAN_IN, FAN_OUT)
N = FAN_IN * FAN_OUT


def unit_truncated_std(a: float = 2.0) -> float:
    """Std of a standard normal truncated to [-a, a]: var = 1 - 2 a phi(a) / (2 Phi(a) - 1)."""
    phi = math.exp(-a * a / 2) / math.sqrt(2 * math.pi)
    mass = math.erf(a / math.sqrt(2))
    return math.sqrt(1 - 2 * a * phi / mass)


def variance_tolerance(kurtosis: float = 3.0) -> float:
    """Relative tolerance on a sample variance of N draws: 5 standard errors.

    The standard error of a sample variance is sigma^2 sqrt((kurtosis - 1) / N); a normal has
    kurtosis 3, a truncated normal and a uniform less (2.4 and 1.8), so 3 bounds all of them.
    Five standard errors (~1.6% here) fail by chance with probability < 1e-6; the seed is fixed
    anyway, so the check is deterministic.
    """
    return 5 * math.sqrt((kurtosis - 1) / N)


# name -> (target variance, uniform limit or None), from Keras's formulas
TARGETS = {
    "glorot_uniform": (2 / (FAN_IN + FAN_OUT), math.sqrt(6 / (FAN_IN + FAN_OUT))),
    "he_uniform": (2 / FAN_IN, math.sqrt(6 / FAN_IN)),
    "lecun_uniform": (1 / FAN_IN, math.sqrt(3 / FAN_IN)),
    "glorot_normal": (2 / (FAN_IN + FAN_OUT), None),
    "he_normal": (2 / FAN_IN, None),
    "lecun_normal": (1 / FAN_IN, None),
}


def test_registry_names():
    assert set(I.names()) == {
        "constant",
        "glorot_normal",
        "glorot_uniform",
        "he_normal",
        "he_uniform",
        "lecun_normal",
        "lecun_uniform",
        "ones",
        "random_normal",
        "random_uniform",
        "variance_scaling",
        "zeros",
    }


@pytest.mark.parametrize("name", I.names())
@pytest.mark.parametrize("shape", [(3, 7), (6,)], ids=["matrix", "vector"])
def test_shape_and_dtype(name, shape):
    W = I.get(name)(shape, np.random.default_rng(0))
    assert isinstance(W, np.ndarray)
    assert W.shape == shape
    assert W.dtype == np.float64
    assert np.all(np.isfinite(W))


@pytest.mark.parametrize("name", [n for n, (_, limit) in TARGETS.items() if limit])
def test_uniform_limits_and_variance(name):
    variance, limit = TARGETS[name]
    W = I.get(name)(BIG, np.random.default_rng(1))
    assert np.abs(W).max() <= limit
    # the limit is reached: P(all 200k draws inside 0.999 limit) = 0.999^200000 ~ e^-200
    assert np.abs(W).max() > 0.999 * limit
    assert abs(W.var() / variance - 1) < variance_tolerance()
    # mean within 5 standard errors of 0
    assert abs(W.mean()) < 5 * math.sqrt(variance / N)


@pytest.mark.parametrize("name", [n for n, (_, limit) in TARGETS.items() if limit is None])
def test_truncated_normal_variance_and_truncation(name):
    variance, _ = TARGETS[name]
    W = I.get(name)(BIG, np.random.default_rng(2))
    assert abs(W.var() / variance - 1) < variance_tolerance()
    assert abs(W.mean()) < 5 * math.sqrt(variance / N)
    # drawn from N(0, s^2) truncated at 2 s, with s chosen so the result has the target variance
    s = math.sqrt(variance) / unit_truncated_std(2.0)
    assert np.abs(W).max() <= 2 * s * (1 + 1e-12)
    # ... and really truncated there, not narrower: ~0.2% of the draws lie in [1.98 s, 2 s]
    assert np.abs(W).max() > 1.98 * s


def test_truncated_std_constant():
    assert math.isclose(I._TRUNCATED_STD, unit_truncated_std(2.0), rel_tol=1e-15)


def test_fans_of_a_vector():
    """A 1-D shape uses its length as both fans (Keras)."""
    W = I.VarianceScaling(1.0, "fan_avg", "uniform")((50_000,), np.random.default_rng(3))
    limit = math.sqrt(3 / 50_000)
    assert np.abs(W).max() <= limit
    assert np.abs(W).max() > 0.999 * limit


@pytest.mark.parametrize("mode", ["fan_in", "fan_out", "fan_avg"])
def test_fans_of_a_convolution_kernel_count_the_receptive_field(mode):
    """A kernel (kh, kw, c_in, c_out): fan_in = kh*kw*c_in, fan_out = kh*kw*c_out (Keras)."""
    shape = (3, 5, 4, 6)
    fan = {"fan_in": 3 * 5 * 4, "fan_out": 3 * 5 * 6, "fan_avg": 3 * 5 * (4 + 6) / 2}[mode]
    W = I.VarianceScaling(1.0, mode, "uniform")(shape, np.random.default_rng(3))
    limit = math.sqrt(3 / fan)
    assert np.abs(W).max() <= limit
    # ... and reached: the largest of 18,000 draws lies within 1% of it (P(miss) = 0.99^18000)
    W = I.VarianceScaling(1.0, mode, "uniform")((3, 5, 4, 6 * 50), np.random.default_rng(3))
    big_fan = {"fan_in": 60, "fan_out": 3 * 5 * 300, "fan_avg": 3 * 5 * 304 / 2}[mode]
    assert np.abs(W).max() > 0.99 * math.sqrt(3 / big_fan)
    assert np.abs(W).max() <= math.sqrt(3 / big_fan)
    assert I._fans(shape) == (60, 90)


@pytest.mark.parametrize(
    ("mode", "fan"), [("fan_in", FAN_IN), ("fan_out", FAN_OUT), ("fan_avg", (FAN_IN + FAN_OUT) / 2)]
)
@pytest.mark.parametrize("distribution", ["uniform", "normal"])
def test_variance_scaling(mode, fan, distribution):
    scale = 3.0
    W = I.VarianceScaling(scale, mode, distribution)(BIG, np.random.default_rng(4))
    assert abs(W.var() / (scale / fan) - 1) < variance_tolerance()
    if distribution == "uniform":
        assert np.abs(W).max() <= math.sqrt(3 * scale / fan)


def test_random_normal_and_uniform():
    W = I.RandomNormal(mean=1.0, stddev=0.5)(BIG, np.random.default_rng(5))
    assert abs(W.mean() - 1.0) < 5 * 0.5 / math.sqrt(N)
    assert abs(W.var() / 0.25 - 1) < variance_tolerance()
    W = I.RandomUniform(-0.2, 0.3)(BIG, np.random.default_rng(6))
    assert W.min() >= -0.2
    assert W.max() < 0.3
    assert abs(W.mean() - 0.05) < 5 * math.sqrt(0.5**2 / 12 / N)
    assert (I.RandomNormal().mean, I.RandomNormal().stddev) == (0.0, 0.05)
    assert (I.RandomUniform().minval, I.RandomUniform().maxval) == (-0.05, 0.05)


def test_constants():
    rng = np.random.default_rng(0)
    np.testing.assert_array_equal(I.get("zeros")((2, 3), rng), np.zeros((2, 3)))
    np.testing.assert_array_equal(I.get("ones")((4,), rng), np.ones(4))
    np.testing.assert_array_equal(I.Constant(2.5)((2, 2), rng), np.full((2, 2), 2.5))
    np.testing.assert_array_equal(I.get({"name": "constant", "value": -1})((3,), rng), -np.ones(3))


RANDOM = [n for n in I.names() if n not in ("zeros", "ones", "constant")]


@pytest.mark.parametrize("name", RANDOM)
def test_seeding(name):
    init = I.get(name)
    a = init((5, 6), np.random.default_rng(123))
    b = init((5, 6), np.random.default_rng(123))
    c = init((5, 6), np.random.default_rng(124))
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


@pytest.mark.parametrize("name", I.names())
def test_get_config_roundtrip(name):
    init = I.get(name)
    assert init.name == name
    again = I.get(init.get_config())
    assert type(again) is type(init)
    assert again.get_config() == init.get_config()
    np.testing.assert_array_equal(
        init((3, 4), np.random.default_rng(9)), again((3, 4), np.random.default_rng(9))
    )


def test_get_custom_config_and_callable():
    init = I.VarianceScaling(scale=0.5, mode="fan_out", distribution="uniform")
    again = I.get(init.get_config())
    assert (again.scale, again.mode, again.distribution) == (0.5, "fan_out", "uniform")
    assert isinstance(I.get("He_Normal"), I.HeNormal)
    assert I.get(init) is init

    def custom(shape, rng):
        return np.full(shape, 7.0)

    assert I.get(custom) is custom


def test_get_unknown_name_lists_names():
    with pytest.raises(ValueError, match="nope") as info:
        I.get("nope")
    for name in I.names():
        assert name in str(info.value)
    with pytest.raises(TypeError, match="initializer"):
        I.get(3)


@pytest.mark.parametrize(
    ("kw", "arg"), [({"mode": "fan"}, "mode"), ({"distribution": "cauchy"}, "distribution")]
)
def test_variance_scaling_bad_arguments(kw, arg):
    with pytest.raises(ValueError, match=arg):
        I.VarianceScaling(**kw)


@pytest.mark.parametrize("scale", [0, -1.0])
def test_variance_scaling_scale_must_be_positive(scale):
    with pytest.raises(ValueError, match="scale must be a positive number"):
        I.VarianceScaling(scale=scale)


def test_a_subclass_with_its_own_name_is_found_by_it_and_no_other():
    """What lets a layer's config name a user's initializer (issue 19.4); it used to be an
    unknown name."""

    class Halves(I.Initializer):
        name = "halves_for_test_initializers"

        def __call__(self, shape, rng):
            return np.full(shape, 0.5)

    class Nameless(I.Initializer):
        def __call__(self, shape, rng):
            return np.zeros(shape)

    assert isinstance(I.get({"name": "halves_for_test_initializers"}), Halves)
    assert isinstance(I.get("Halves_For_Test_Initializers"), Halves)
    assert "initializer" not in I._known()  # the base class's name belongs to no subclass
    assert I._known()["constant"] is I.Constant
    with pytest.raises(ValueError, match="Unknown initializer 'initializer'"):
        I.get("initializer")
