"""Optimizers: golden steps against update rules written here in plain NumPy, Keras's defaults,
clipping, schedules, immutability, argument checks and a real minimisation."""

from __future__ import annotations

import math

import numpy as np
import pytest
from conftest import HAS_CUPY, HAS_JAX, HAS_TORCH, assert_close, eps

import backprop as bp
from backprop import optimizers as O
from backprop import schedules as S
from backprop.backend import resolve

SHAPES = [(4, 5), (5,)]  # a Dense layer's W and b


def float_dtypes(backend) -> list[str]:
    return ["float32", "float64"] if backend.supports_float64 else ["float32"]


def golden_rtol(dt: str) -> float:
    """Float64: the brief's 1e-12 (the same equations, a handful of roundings per step).

    Float32: 3 steps of ~10 roundings each on O(1) quantities, against a float64 reference.
    """
    return 1e-12 if dt == "float64" else 100 * eps("float32")


# -- the update rules, written from the docstrings / papers / Keras, in host float64 -----------


def reference(kind: str, hp: dict, params, grad_steps, lrs):
    """The parameters after each step of ``grad_steps`` (a list of lists of arrays).

    Keras 3's update rules (keras/src/optimizers/*.py), written out directly: Keras's own
    operation order where it matters (``m += (g - m) * (1 - beta_1)``) and Nadam's
    ``u_product`` kept in a variable, multiplied by ``u_t`` before each step.
    """
    params = [np.array(W, dtype=np.float64) for W in params]
    state = [{} for _ in params]
    history = []
    u_product = 1.0
    for t, (grads, lr) in enumerate(zip(grad_steps, lrs, strict=True), start=1):
        if kind == "nadam":  # Keras's _backend_update_step: once per step, before the updates
            u_product *= hp["beta_1"] * (1.0 - 0.5 * 0.96**t)
        new = []
        for W, g, s in zip(params, grads, state, strict=True):
            g = np.asarray(g, dtype=np.float64)
            if hp.get("weight_decay"):  # Keras 3's _apply_weight_decay, before the update
                W = W - W * hp["weight_decay"] * lr
            if kind == "sgd":
                mom, nesterov = hp.get("momentum", 0.0), hp.get("nesterov", False)
                if mom == 0.0:
                    W = W - lr * g
                else:
                    s["m"] = mom * s.get("m", 0.0) - lr * g
                    W = W + mom * s["m"] - lr * g if nesterov else W + s["m"]
            elif kind == "rmsprop":
                rho, e = hp["rho"], hp["epsilon"]
                s["v"] = rho * s.get("v", 0.0) + (1 - rho) * g**2
                denom = s["v"]
                if hp.get("centered"):
                    s["g"] = rho * s.get("g", 0.0) + (1 - rho) * g
                    denom = s["v"] - s["g"] ** 2
                increment = lr * g / np.sqrt(denom + e)
                if hp.get("momentum"):
                    s["mom"] = hp["momentum"] * s.get("mom", 0.0) + increment
                    increment = s["mom"]
                W = W - increment
            elif kind == "adagrad":
                s["v"] = s.get("v", hp["initial_accumulator_value"]) + g**2
                W = W - lr * g / np.sqrt(s["v"] + hp["epsilon"])
            elif kind == "adam":
                b1, b2, e = hp["beta_1"], hp["beta_2"], hp["epsilon"]
                alpha = lr * math.sqrt(1 - b2**t) / (1 - b1**t)
                s["m"] = s.get("m", 0.0) + (g - s.get("m", 0.0)) * (1 - b1)
                s["v"] = s.get("v", 0.0) + (g**2 - s.get("v", 0.0)) * (1 - b2)
                v = s["v"]
                if hp.get("amsgrad"):
                    s["v_hat"] = v = np.maximum(s.get("v_hat", 0.0), s["v"])
                W = W - s["m"] * alpha / (np.sqrt(v) + e)
            elif kind == "adamax":
                b1, b2, e = hp["beta_1"], hp["beta_2"], hp["epsilon"]
                s["m"] = b1 * s.get("m", 0.0) + (1 - b1) * g
                s["u"] = np.maximum(b2 * s.get("u", 0.0), np.abs(g))
                W = W - lr / (1 - b1**t) * s["m"] / (s["u"] + e)
            elif kind == "nadam":
                b1, b2, e = hp["beta_1"], hp["beta_2"], hp["epsilon"]
                u_t = b1 * (1.0 - 0.5 * 0.96**t)
                u_t_1 = b1 * (1.0 - 0.5 * 0.96 ** (t + 1))
                u_product_t_1 = u_product * u_t_1
                s["m"] = s.get("m", 0.0) + (g - s.get("m", 0.0)) * (1 - b1)
                s["v"] = s.get("v", 0.0) + (g**2 - s.get("v", 0.0)) * (1 - b2)
                m_hat = u_t_1 * s["m"] / (1 - u_product_t_1) + (1 - u_t) * g / (1 - u_product)
                v_hat = s["v"] / (1 - b2**t)
                W = W - m_hat * lr / (np.sqrt(v_hat) + e)
            else:  # pragma: no cover
                raise AssertionError(kind)
            new.append(W)
        params = new
        history.append([W.copy() for W in params])
    return history


# (id, optimizer class, constructor kwargs, reference kind, reference hyper-parameters)
ADAM_HP = {"beta_1": 0.8, "beta_2": 0.95, "epsilon": 1e-3}
RMS_HP = {"rho": 0.8, "epsilon": 1e-3}
WD = {"weight_decay": 0.05}
CASES = [
    ("sgd", O.SGD, {"learning_rate": 0.1}, "sgd", {}),
    ("sgd_momentum", O.SGD, {"learning_rate": 0.1, "momentum": 0.9}, "sgd", {"momentum": 0.9}),
    (
        "sgd_nesterov",
        O.SGD,
        {"learning_rate": 0.1, "momentum": 0.9, "nesterov": True},
        "sgd",
        {"momentum": 0.9, "nesterov": True},
    ),
    ("rmsprop", O.RMSprop, {"learning_rate": 0.1, **RMS_HP}, "rmsprop", RMS_HP),
    (
        "rmsprop_centered",
        O.RMSprop,
        {"learning_rate": 0.1, **RMS_HP, "centered": True},
        "rmsprop",
        {**RMS_HP, "centered": True},
    ),
    (
        "adagrad",
        O.Adagrad,
        {"learning_rate": 0.1, "initial_accumulator_value": 0.2, "epsilon": 1e-3},
        "adagrad",
        {"initial_accumulator_value": 0.2, "epsilon": 1e-3},
    ),
    ("adam", O.Adam, {"learning_rate": 0.1, **ADAM_HP}, "adam", ADAM_HP),
    ("adamw", O.AdamW, {"learning_rate": 0.1, **WD, **ADAM_HP}, "adam", {**WD, **ADAM_HP}),
    ("adamax", O.Adamax, {"learning_rate": 0.1, **ADAM_HP}, "adamax", ADAM_HP),
    # issue 21: Nadam, AMSGrad, RMSprop's momentum, weight_decay (the base class's step applies
    # it before any update: two optimizers here, every one through a model below)
    ("nadam", O.Nadam, {"learning_rate": 0.1, **ADAM_HP}, "nadam", ADAM_HP),
    (
        "adam_amsgrad",
        O.Adam,
        {"learning_rate": 0.1, **ADAM_HP, "amsgrad": True},
        "adam",
        {**ADAM_HP, "amsgrad": True},
    ),
    (
        "adamw_amsgrad",
        O.AdamW,
        {"learning_rate": 0.1, **WD, **ADAM_HP, "amsgrad": True},
        "adam",
        {**WD, **ADAM_HP, "amsgrad": True},
    ),
    (
        "rmsprop_momentum",
        O.RMSprop,
        {"learning_rate": 0.1, **RMS_HP, "momentum": 0.7},
        "rmsprop",
        {**RMS_HP, "momentum": 0.7},
    ),
    (
        "rmsprop_centered_momentum",
        O.RMSprop,
        {"learning_rate": 0.1, **RMS_HP, "momentum": 0.7, "centered": True},
        "rmsprop",
        {**RMS_HP, "momentum": 0.7, "centered": True},
    ),
    (
        "sgd_nesterov_wd",
        O.SGD,
        {"learning_rate": 0.1, "momentum": 0.9, "nesterov": True, **WD},
        "sgd",
        {"momentum": 0.9, "nesterov": True, **WD},
    ),
    ("adam_wd", O.Adam, {"learning_rate": 0.1, **ADAM_HP, **WD}, "adam", {**ADAM_HP, **WD}),
    ("nadam_wd", O.Nadam, {"learning_rate": 0.1, **ADAM_HP, **WD}, "nadam", {**ADAM_HP, **WD}),
]
cases = pytest.mark.parametrize(
    ("cls", "kwargs", "kind", "hp"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)

# Keras's defaults, written down independently of the library
KERAS_ADAM = {"beta_1": 0.9, "beta_2": 0.999, "epsilon": 1e-7}
KERAS_DEFAULTS = [
    ("sgd", O.SGD, 0.01, "sgd", {"momentum": 0.0, "nesterov": False, "weight_decay": None}),
    (
        "rmsprop",
        O.RMSprop,
        1e-3,
        "rmsprop",
        {"rho": 0.9, "momentum": 0.0, "epsilon": 1e-7, "centered": False, "weight_decay": None},
    ),
    (
        "adagrad",
        O.Adagrad,
        1e-3,
        "adagrad",
        {"initial_accumulator_value": 0.1, "epsilon": 1e-7},
    ),
    ("adam", O.Adam, 1e-3, "adam", {**KERAS_ADAM, "amsgrad": False, "weight_decay": None}),
    ("adamw", O.AdamW, 1e-3, "adam", {**KERAS_ADAM, "amsgrad": False, "weight_decay": 0.004}),
    ("adamax", O.Adamax, 1e-3, "adamax", KERAS_ADAM),
    ("nadam", O.Nadam, 1e-3, "nadam", {**KERAS_ADAM, "weight_decay": None}),
]


def problem(rng, steps: int = 3):
    params = [rng.normal(size=s) for s in SHAPES]
    grad_steps = [[rng.normal(size=s) for s in SHAPES] for _ in range(steps)]
    return params, grad_steps


def run(opt, backend, dt, params, grad_steps):
    """Apply ``opt`` for every step on ``backend``; the parameters after each step (device)."""
    W = [backend.asarray(np.array(p), dt) for p in params]  # a copy: apply works in place
    out = []
    for grads in grad_steps:
        W = opt.apply(W, [backend.asarray(g, dt) for g in grads])
        # apply updates mutable arrays in place: keep a copy of this step's values
        out.append([backend.xp.asarray(w, copy=True) for w in W])
    return out


# -- golden steps -----------------------------------------------------------------------------


@cases
def test_golden_steps(cls, kwargs, kind, hp, backend, rng):
    """Three steps equal the update rule written here, on every backend/device and dtype."""
    params, grad_steps = problem(rng)
    expected = reference(kind, hp, params, grad_steps, [kwargs["learning_rate"]] * 3)
    for dt in float_dtypes(backend):
        opt = cls(**kwargs)
        got = run(opt, backend, dt, params, grad_steps)
        assert opt.iterations == 3
        for step_got, step_expected in zip(got, expected, strict=True):
            for W, W_ref in zip(step_got, step_expected, strict=True):
                rtol = golden_rtol(dt)
                assert_close(W, W_ref, backend, rtol=rtol, atol=rtol, dtype=backend.dtype(dt))
        # the state lives beside the parameters
        for s in opt.state:
            for v in s.values():
                assert backend.owns(v)


@pytest.mark.parametrize(
    ("cls", "lr", "kind", "hp"), [c[1:] for c in KERAS_DEFAULTS], ids=[c[0] for c in KERAS_DEFAULTS]
)
def test_defaults_are_keras(cls, lr, kind, hp, rng):
    opt = cls()
    assert opt.learning_rate == lr
    for key, value in hp.items():
        assert getattr(opt, key) == value, key
    assert (opt.clipnorm, opt.clipvalue, opt.global_clipnorm) == (None, None, None)
    # and the defaults are what the update uses
    params, grad_steps = problem(rng, steps=2)
    expected = reference(kind, hp, params, grad_steps, [lr, lr])
    got = run(opt, resolve("numpy"), "float64", params, grad_steps)
    for step_got, step_expected in zip(got, expected, strict=True):
        for W, W_ref in zip(step_got, step_expected, strict=True):
            np.testing.assert_allclose(W, W_ref, rtol=1e-12)


def test_sgd_defaults():
    opt = O.SGD()
    assert (opt.learning_rate, opt.momentum, opt.nesterov) == (0.01, 0.0, False)
    assert O.RMSprop().centered is False


def test_lr_alias():
    assert O.SGD(lr=0.5).learning_rate == 0.5
    assert O.Adam(lr=0.02).current_learning_rate() == 0.02


def test_apply_with_explicit_namespace(backend):
    dt = float_dtypes(backend)[-1]
    W = backend.asarray(np.ones(5), dt)
    g = backend.asarray(np.full(5, 2.0), dt)
    (new,) = O.SGD(0.25).apply([W], [g], backend.xp)
    assert_close(new, np.full(5, 0.5), backend, dtype=W.dtype)


# -- clipping ---------------------------------------------------------------------------------


def clipped(backend, dt, grads, **clip):
    """The gradients the optimizer actually used: with SGD(lr=1) from W = 0, W_new = -g."""
    W = [backend.asarray(np.zeros(g.shape), dt) for g in grads]
    new = O.SGD(1.0, **clip).apply(W, [backend.asarray(g, dt) for g in grads])
    for a in new:
        assert backend.owns(a)
    return [-bp.to_numpy(a).astype(np.float64) for a in new]


def clip_grads(rng):
    g1 = rng.normal(size=SHAPES[0]) * 3.0  # norm ~ 13
    g2 = rng.normal(size=SHAPES[1]) * 0.1  # norm ~ 0.2
    return [g1, g2]


def test_clipvalue(backend, rng):
    grads = clip_grads(rng)
    for dt in float_dtypes(backend):
        got = clipped(backend, dt, grads, clipvalue=0.5)
        for g, ref in zip(got, grads, strict=True):
            np.testing.assert_allclose(g, np.clip(ref, -0.5, 0.5), rtol=10 * eps(dt))


def test_clipnorm_is_per_array(backend, rng):
    grads = clip_grads(rng)
    c = 1.0
    for dt in float_dtypes(backend):
        got = clipped(backend, dt, grads, clipnorm=c)
        norms = [np.linalg.norm(g) for g in grads]
        assert norms[0] > c > norms[1]
        np.testing.assert_allclose(got[0], grads[0] * c / norms[0], rtol=100 * eps(dt))
        np.testing.assert_allclose(np.linalg.norm(got[0]), c, rtol=100 * eps(dt))
        np.testing.assert_allclose(got[1], grads[1], rtol=10 * eps(dt))  # untouched


def test_global_clipnorm_scales_all_together(backend, rng):
    grads = clip_grads(rng)
    c = 2.0
    joint = math.sqrt(sum(float(np.sum(g * g)) for g in grads))
    assert joint > c
    for dt in float_dtypes(backend):
        got = clipped(backend, dt, grads, global_clipnorm=c)
        for g, ref in zip(got, grads, strict=True):
            # the small array is scaled too: the direction of the whole update is kept
            np.testing.assert_allclose(g, ref * c / joint, rtol=100 * eps(dt))
        # below the threshold nothing changes
        got = clipped(backend, dt, grads, global_clipnorm=2 * joint)
        for g, ref in zip(got, grads, strict=True):
            np.testing.assert_allclose(g, ref, rtol=10 * eps(dt))


# -- schedules --------------------------------------------------------------------------------


def test_schedule_is_applied_per_step(backend):
    dt = float_dtypes(backend)[-1]
    opt = O.SGD(learning_rate=S.StepDecay(1.0, step_size=1, gamma=0.5))
    assert opt.current_learning_rate() == 1.0
    W = [backend.asarray(np.zeros(5), dt)]
    g = [backend.asarray(np.ones(5), dt)]
    expected = 0.0
    for step in range(4):
        W = opt.apply(W, g)
        expected -= 0.5**step  # the step counter starts at 0, like Keras's iterations
        assert opt.iterations == step + 1
        assert_close(W[0], np.full(5, expected), backend)
    assert opt.current_learning_rate() == 0.5**4


def test_schedule_in_adam_matches_reference(rng):
    schedule = S.ExponentialDecay(0.1, decay_steps=2, decay_rate=0.5)
    opt = O.Adam(learning_rate=schedule, **ADAM_HP)
    params, grad_steps = problem(rng, steps=4)
    lrs = [0.1 * 0.5 ** (t / 2) for t in range(4)]
    expected = reference("adam", ADAM_HP, params, grad_steps, lrs)
    got = run(opt, resolve("numpy"), "float64", params, grad_steps)
    for step_got, step_expected in zip(got, expected, strict=True):
        for W, W_ref in zip(step_got, step_expected, strict=True):
            np.testing.assert_allclose(W, W_ref, rtol=1e-12)


def test_schedule_config_dict_and_roundtrip():
    config = {"name": "cosine_decay", "initial_learning_rate": 0.1, "decay_steps": 10}
    opt = O.SGD(learning_rate=config)
    assert isinstance(opt.learning_rate, S.CosineDecay)
    again = O.get(opt.get_config())
    assert isinstance(again.learning_rate, S.CosineDecay)
    assert again.get_config() == opt.get_config()
    assert [again.learning_rate(t) for t in range(12)] == [opt.learning_rate(t) for t in range(12)]


# -- in place where arrays are mutable, rebinding where they are not ---------------------------


class Immutable(np.ndarray):
    """A stand-in for JAX arrays: read-only, and in-place operators fall back to rebinding."""

    def _rebind(self, other):
        return NotImplemented

    __iadd__ = __isub__ = __imul__ = __itruediv__ = _rebind


def read_only(a: np.ndarray) -> np.ndarray:
    a = np.array(a).view(Immutable)
    a.flags.writeable = False
    return a


@cases
def test_works_with_immutable_arrays(cls, kwargs, kind, hp, rng):
    """Read-only arrays whose in-place operators rebind, as JAX's: any write would raise."""
    params, grad_steps = problem(rng, steps=2)
    opt = cls(**kwargs, clipnorm=1.0)
    W = [read_only(p) for p in params]
    originals = [p.copy() for p in params]
    mutable = cls(**kwargs, clipnorm=1.0)
    W_mutable = [np.array(p) for p in params]
    for grads in grad_steps:
        new = opt.apply(W, [read_only(g) for g in grads])
        for a in W:
            assert not a.flags.writeable
        W = [read_only(a) for a in new]
        W_mutable = mutable.apply(W_mutable, [np.array(g) for g in grads])
    for a, b in zip(params, originals, strict=True):
        np.testing.assert_array_equal(a, b)
    # rebinding and in-place updates compute the same numbers
    for a, b in zip(W, W_mutable, strict=True):
        np.testing.assert_array_equal(np.asarray(a), b)


@cases
def test_apply_updates_in_place_and_leaves_grads(cls, kwargs, kind, hp, backend64, rng):
    b = backend64
    params, grad_steps = problem(rng, steps=2)
    opt = cls(**kwargs, clipvalue=0.5)
    W = [b.asarray(p, "float64") for p in params]
    for grads in grad_steps:
        g = [b.asarray(x, "float64") for x in grads]
        new = opt.apply(W, g)
        if b.name != "jax":  # mutable arrays: the very objects passed in hold the new values
            assert all(n is w for n, w in zip(new, W, strict=True))
        W = new
        for before, after in zip(grads, g, strict=True):
            np.testing.assert_array_equal(bp.to_numpy(after), before)


# -- arguments --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("make", "exc", "arg"),
    [
        (lambda: O.SGD(learning_rate=0.0), ValueError, "learning_rate"),
        (lambda: O.SGD(learning_rate=-0.1), ValueError, "learning_rate"),
        (lambda: O.Adam(learning_rate="0.1"), TypeError, "learning_rate"),
        (lambda: O.Adam(learning_rate=float("nan")), TypeError, "learning_rate"),
        (lambda: O.Adam(learning_rate=True), TypeError, "learning_rate"),
        (lambda: O.SGD(momentum=1.0), ValueError, "momentum"),
        (lambda: O.SGD(momentum=-0.5), ValueError, "momentum"),
        (lambda: O.RMSprop(rho=-0.1), ValueError, "rho"),
        (lambda: O.RMSprop(epsilon=-1e-7), ValueError, "epsilon"),
        (lambda: O.Adagrad(initial_accumulator_value=-1), ValueError, "initial_accumulator"),
        (lambda: O.Adam(beta_1=1.0), ValueError, "beta_1"),
        (lambda: O.Adam(beta2=1.5), ValueError, "beta_2"),
        (lambda: O.Adam(beta1=-0.1), ValueError, "beta_1"),
        (lambda: O.Adamax(beta_2=1.0), ValueError, "beta_2"),
        (lambda: O.Nadam(beta_1=1.0), ValueError, "beta_1"),
        (lambda: O.AdamW(weight_decay=-0.1), ValueError, "weight_decay"),
        (lambda: O.AdamW(weight_decay=None), ValueError, "weight_decay"),
        (lambda: O.SGD(weight_decay=-0.1), ValueError, "weight_decay"),
        (lambda: O.Nadam(weight_decay="0.1"), TypeError, "weight_decay"),
        (lambda: O.RMSprop(momentum=1.0), ValueError, "momentum"),
        (lambda: O.RMSprop(momentum=-0.1), ValueError, "momentum"),
        (lambda: O.Adam(amsgrad=1), TypeError, "amsgrad"),
        (lambda: O.SGD(clipnorm=0.0), ValueError, "clipnorm"),
        (lambda: O.SGD(clipvalue=-1.0), ValueError, "clipvalue"),
        (lambda: O.SGD(global_clipnorm="1"), TypeError, "global_clipnorm"),
    ],
)
def test_bad_hyper_parameters(make, exc, arg):
    with pytest.raises(exc, match=arg):
        make()


def test_mismatched_params_and_grads():
    W = np.zeros(3)
    with pytest.raises(ValueError, match="gradients"):
        O.SGD().apply([W], [W, W])


def test_names_and_get():
    assert O.names() == ["adagrad", "adam", "adamax", "adamw", "nadam", "rmsprop", "sgd"]
    with pytest.raises(ValueError, match="nope") as info:
        O.get("nope")
    for name in O.names():
        assert name in str(info.value)
    with pytest.raises(ValueError, match="nope"):
        O.get({"name": "nope"})
    with pytest.raises(TypeError, match="optimizer"):
        O.get(3)
    assert isinstance(O.get("ADAM"), O.Adam)
    opt = O.Adam()
    assert O.get(opt) is opt
    sgd = O.get({"name": "sgd", "learning_rate": 0.2, "momentum": 0.5})
    assert (type(sgd), sgd.learning_rate, sgd.momentum) == (O.SGD, 0.2, 0.5)


@cases
def test_config_roundtrip(cls, kwargs, kind, hp, rng):
    opt = cls(**kwargs, clipnorm=2.0)
    again = O.get(opt.get_config())
    assert type(again) is cls
    assert again.get_config() == opt.get_config()
    params, grad_steps = problem(rng, steps=2)
    numpy = resolve("numpy")
    for a, b in zip(
        run(opt, numpy, "float64", params, grad_steps)[-1],
        run(again, numpy, "float64", params, grad_steps)[-1],
        strict=True,
    ):
        np.testing.assert_array_equal(a, b)


# -- it actually minimises ----------------------------------------------------------------------

MINIMIZE = [
    ("sgd", lambda: O.SGD(0.1)),
    ("sgd_momentum", lambda: O.SGD(0.05, momentum=0.9)),
    ("sgd_nesterov", lambda: O.SGD(0.05, momentum=0.9, nesterov=True)),
    ("rmsprop", lambda: O.RMSprop(0.05)),
    ("rmsprop_centered", lambda: O.RMSprop(0.01, centered=True)),
    ("adagrad", lambda: O.Adagrad(0.5)),
    ("adam", lambda: O.Adam(0.05)),
    ("adamw", lambda: O.AdamW(0.05)),
    ("adamax", lambda: O.Adamax(0.05)),
    ("nadam", lambda: O.Nadam(0.05)),
    ("adam_amsgrad", lambda: O.Adam(0.05, amsgrad=True)),
    ("rmsprop_momentum", lambda: O.RMSprop(0.01, momentum=0.5)),
    ("sgd_wd", lambda: O.SGD(0.1, weight_decay=0.001)),
]


@pytest.mark.parametrize(
    "spec", [("numpy", None), ("array_api_strict", "device1")], ids=["numpy", "strict-device1"]
)
@pytest.mark.parametrize("make", [m[1] for m in MINIMIZE], ids=[m[0] for m in MINIMIZE])
def test_minimizes_a_quadratic(make, spec):
    """200 steps on f(W) = 1/2 sum a (W - c)^2 (condition number 4) cut f by 100x or more."""
    b = resolve(*spec)
    xp = b.xp
    r = np.random.default_rng(7)
    a_host = r.uniform(0.5, 2.0, SHAPES[0])
    c_host = r.normal(size=SHAPES[0]) * 2.0
    a, c = b.asarray(a_host, "float64"), b.asarray(c_host, "float64")

    def f(W):
        return 0.5 * float(np.sum(a_host * (bp.to_numpy(W) - c_host) ** 2))

    W = b.asarray(np.zeros(SHAPES[0]), "float64")
    opt = make()
    f0 = f(W)
    for _ in range(200):
        (W,) = opt.apply([W], [a * (W - c)], xp)
    assert b.owns(W)
    assert f(W) < f0 / 100


def test_only_one_clipping_option():
    with pytest.raises(ValueError, match="at most one of clipnorm, clipvalue and global_clipnorm"):
        O.Adam(clipnorm=1.0, clipvalue=0.5)


def test_rmsprop_rho_below_one():
    with pytest.raises(ValueError, match="rho must be in"):
        O.RMSprop(rho=1.5)


def test_subnormal_moments_are_flushed():
    """A parameter whose gradient is 0 lets Adam's m decay by 0.9 per step into float32's
    subnormal range; every flush_every steps such entries become exact zeros."""
    import array_api_compat.numpy as xp

    opt = O.Adam()
    W = [xp.ones(3, dtype=xp.float32)]
    tiny = np.finfo(np.float32).smallest_normal
    opt.build(W)
    opt.state[0]["m"] = xp.asarray([tiny / 4, tiny * 1.5, 1.0], dtype=xp.float32)
    for _ in range(opt.flush_every):
        W = opt.apply(W, [xp.zeros(3, dtype=xp.float32)])
    m = opt.state[0]["m"]
    assert m[0] == 0.0 and m[1] == 0.0  # both decayed below the normal range, then flushed
    assert m[2] > tiny  # still normal: kept
    assert not np.any((m != 0) & (np.abs(m) < tiny))


@pytest.mark.gpu
@pytest.mark.skipif(not HAS_CUPY, reason="needs CuPy and a CUDA GPU")
@pytest.mark.parametrize(
    "config",
    [
        {"name": "adam"},
        {"name": "adamw", "weight_decay": 0.01},
        {"name": "sgd", "momentum": 0.9},
        {"name": "sgd", "momentum": 0.9, "nesterov": True},
    ],
    ids=lambda c: "-".join(str(v) for v in c.values()),
)
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("on_device", [False, True], ids=["host-lr", "device-lr"])
def test_the_fused_cupy_update_equals_the_portable_update(monkeypatch, config, dtype, on_device):
    """One CuPy kernel per update against the Array API code it replaces (its reference)."""
    from backprop import backend as B

    b = B.resolve("cupy")
    xp, dt = b.xp, b.dtype(dtype)
    rng = np.random.default_rng(0)
    W0 = rng.normal(size=1000)
    grads = [rng.normal(size=1000) for _ in range(5)]
    results = []
    for fuse in (True, False):
        monkeypatch.setattr(B, "FUSE", fuse)
        opt = bp.optimizers.get(dict(config))
        W = b.asarray(W0, dt)
        opt.build([W])
        for t, g in enumerate(grads, start=1):
            lr, tt = 0.01, t
            if on_device:  # as the captured engine passes them: one-element device arrays
                lr, tt = b.asarray([lr], dt), b.asarray([t], dt)
            W = opt.step([W], [b.asarray(g, dt)], opt.state, lr, tt, xp)[0]
        results.append(b.to_numpy(W))
    kernel = "sgd_momentum" if config["name"] == "sgd" else "adam"
    assert (kernel, on_device) in B._COMPILED  # the fused run did use the kernel
    if dtype == "float64":
        np.testing.assert_allclose(results[0], results[1], rtol=1e-13)
    else:
        np.testing.assert_array_max_ulp(results[0], results[1], maxulp=4)


# -- issue 19.8: an argument an optimizer does not take ---------------------------------------

ALL = [O.SGD, O.RMSprop, O.Adagrad, O.Adam, O.AdamW, O.Adamax, O.Nadam]


@pytest.mark.parametrize("cls", ALL)
def test_an_unknown_argument_names_the_optimizer_and_what_it_takes(cls):
    """The message used to name Optimizer.__init__ and give no hint."""
    takes = [k for k in cls().get_config() if k != "name"]
    with pytest.raises(TypeError) as info:
        cls(no_such_setting=1.0)
    message = str(info.value)
    assert message.startswith(f"{cls.__name__}() got an unexpected argument 'no_such_setting'")
    assert "Optimizer.__init__" not in message
    listed, _, aliases = message.split(f"{cls.__name__} takes ", 1)[1].partition(" (aliases: ")
    listed = listed.rstrip(".").split(", ")
    assert sorted(listed) == sorted(takes)
    for name in listed:  # every argument listed is one it takes
        cls(**{name: cls().get_config()[name] if name != "weight_decay" else 0.01})
    # and the aliases it names, each for one of them
    for pair in aliases.rstrip(").").split(", "):
        old, new = pair.split(" for ")
        assert new in listed
        assert getattr(cls(**{old: 0.5}), new) == 0.5


@pytest.mark.parametrize(
    ("make", "cls", "wrong", "right"),
    [
        (lambda: O.Adam(betta_1=0.8), "Adam", "betta_1", "beta_1"),
        (lambda: O.AdamW(learning_rate=0.01, beta_22=0.9), "AdamW", "beta_22", "beta_2"),
        (lambda: O.SGD(momentun=0.9), "SGD", "momentun", "momentum"),
        (lambda: O.get({"name": "adamax", "betta_1": 0.8}), "Adamax", "betta_1", "beta_1"),
        (lambda: O.RMSprop(learningrate=0.1), "RMSprop", "learningrate", "learning_rate"),
        (lambda: O.Nadam(weight_decy=0.1), "Nadam", "weight_decy", "weight_decay"),
        (lambda: O.Adam(ams_grad=True), "Adam", "ams_grad", "amsgrad"),
    ],
)
def test_a_misspelt_argument_suggests_the_closest_name(make, cls, wrong, right):
    match = rf"^{cls}\(\) got an unexpected argument '{wrong}'; did you mean '{right}'\?"
    with pytest.raises(TypeError, match=match):
        make()


def test_an_unknown_argument_through_compile_is_named():
    model = bp.Sequential([bp.layers.Dense(1, input_dim=2)])
    with pytest.raises(TypeError, match=r"Adam\(\) got an unexpected argument 'beta_3'"):
        model.compile(loss="mse", optimizer={"name": "adam", "beta_3": 0.9})


# -- issue 21: Keras 3's spellings, the older ones as aliases -------------------------------------


@pytest.mark.parametrize("cls", [O.Adam, O.AdamW, O.Adamax, O.Nadam])
def test_keras_spellings_and_the_older_aliases(cls):
    """beta_1/beta_2 (Keras 3) are canonical: configs store them; beta1/beta2 still work."""
    keras = cls(beta_1=0.8, beta_2=0.95, epsilon=1e-4)
    old = cls(beta1=0.8, beta2=0.95, epsilon=1e-4)
    assert keras.get_config() == old.get_config()
    config = keras.get_config()
    assert (config["beta_1"], config["beta_2"], config["epsilon"]) == (0.8, 0.95, 1e-4)
    assert "beta1" not in config and "beta2" not in config
    # the attributes too (a callback may set optimizer.beta1 between epochs)
    old.beta1 = 0.5
    assert old.beta_1 == 0.5 and old.get_config()["beta_1"] == 0.5
    assert O.SGD(lr=0.5).get_config()["learning_rate"] == 0.5


@pytest.mark.parametrize(
    "make",
    [
        lambda: O.Adam(beta_1=0.8, beta1=0.9),
        lambda: O.AdamW(beta_2=0.9, beta2=0.9),
        lambda: O.Nadam(0.01, 0.8, beta1=0.9),  # beta_1 by position
        lambda: O.SGD(0.1, lr=0.2),
        lambda: O.RMSprop(learning_rate=0.1, lr=0.2),
        lambda: O.get({"name": "adamax", "beta_1": 0.8, "beta1": 0.7}),
    ],
)
def test_both_spellings_at_once_is_a_type_error(make):
    with pytest.raises(TypeError, match=r"got both '(\w+)' and its alias '\w+'; pass only one"):
        make()


def test_configs_saved_with_the_older_spellings_still_load():
    """A config written before Keras's spellings (beta1, beta2) builds the same optimizer."""
    old = {
        "name": "adamw",
        "learning_rate": 0.01,
        "clipnorm": None,
        "clipvalue": None,
        "global_clipnorm": None,
        "beta1": 0.8,
        "beta2": 0.95,
        "epsilon": 1e-5,
        "weight_decay": 0.01,
    }
    opt = O.get(old)
    assert (type(opt), opt.beta_1, opt.beta_2, opt.weight_decay) == (O.AdamW, 0.8, 0.95, 0.01)
    assert opt.get_config() == O.AdamW(0.01, 0.01, 0.8, 0.95, 1e-5).get_config()


def test_a_model_file_saved_with_the_older_spellings_loads(tmp_path, monkeypatch):
    """The header of a file written before this change named Adam's betas beta1 and beta2."""
    X, y = _data(40)
    model = _model("numpy", O.Adam(0.01, beta_1=0.8, beta_2=0.95))
    model.fit(X, y, epochs=1, batch_size=16, verbose=0)
    keras_config = O.Adam.get_config

    def old_config(self):
        config = keras_config(self)
        for old, new in (("beta1", "beta_1"), ("beta2", "beta_2")):
            config[old] = config.pop(new)
        for new in ("amsgrad", "weight_decay"):  # what the older versions did not have
            del config[new]
        return config

    monkeypatch.setattr(O.Adam, "get_config", old_config)
    model.save(tmp_path / "old.npz")
    monkeypatch.setattr(O.Adam, "get_config", keras_config)
    again = bp.load(tmp_path / "old.npz")
    assert (again.optimizer.beta_1, again.optimizer.beta_2) == (0.8, 0.95)
    for m in (model, again):
        m.fit(X, y, epochs=1, batch_size=16, verbose=0)
    for p, q in zip(model.get_weights(), again.get_weights(), strict=True):
        np.testing.assert_array_equal(q, p)


# -- issue 21: against torch.optim, where the formulas agree ---------------------------------


def _torch_steps(make_torch, params, grad_steps):
    """The parameters after each step of a torch.optim optimizer (float64, CPU)."""
    torch = pytest.importorskip("torch")
    W = [torch.tensor(p, dtype=torch.float64) for p in params]
    # torch keeps a step count and NAdam's mu_product in the default dtype: float64 too
    default = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        opt = make_torch(W)
        out = []
        for grads in grad_steps:
            for w, g in zip(W, grads, strict=True):
                w.grad = torch.tensor(g, dtype=torch.float64)
            opt.step()
            out.append([w.detach().numpy().copy() for w in W])
    finally:
        torch.set_default_dtype(default)
    return out


def _torch(name, **kw):
    def make(W):
        import torch

        return getattr(torch.optim, name)(W, **kw)

    return make


# (id, backprop optimizer, torch optimizer): the same update rule. Keras puts eps where torch
# does not (Adam/AdamW/AMSGrad: beside sqrt(v) rather than the bias-corrected sqrt; RMSprop:
# under the square root rather than beside it), so those rows set eps = 0, where they agree.
B1, B2 = 0.8, 0.95
TORCH_CASES = [
    (
        "nadam",
        lambda: O.Nadam(0.05, B1, B2, 1e-3),
        # Keras's momentum schedule 0.96^t is torch's 0.96^(t * momentum_decay), momentum_decay 1
        _torch("NAdam", lr=0.05, betas=(B1, B2), eps=1e-3, momentum_decay=1.0),
    ),
    (
        "nadam_wd",
        lambda: O.Nadam(0.05, B1, B2, 1e-3, weight_decay=0.1),
        _torch(
            "NAdam",
            lr=0.05,
            betas=(B1, B2),
            eps=1e-3,
            momentum_decay=1.0,
            weight_decay=0.1,
            decoupled_weight_decay=True,
        ),
    ),
    (
        "adam_amsgrad",
        lambda: O.Adam(0.05, B1, B2, 0.0, amsgrad=True),
        _torch("Adam", lr=0.05, betas=(B1, B2), eps=0.0, amsgrad=True),
    ),
    (
        "adamw",
        lambda: O.AdamW(0.05, 0.1, B1, B2, 0.0),
        _torch("AdamW", lr=0.05, betas=(B1, B2), eps=0.0, weight_decay=0.1),
    ),
    (
        "adamw_amsgrad",
        lambda: O.AdamW(0.05, 0.1, B1, B2, 0.0, amsgrad=True),
        _torch("AdamW", lr=0.05, betas=(B1, B2), eps=0.0, weight_decay=0.1, amsgrad=True),
    ),
    (
        "rmsprop_momentum",
        lambda: O.RMSprop(0.05, rho=B1, momentum=0.7, epsilon=0.0),
        _torch("RMSprop", lr=0.05, alpha=B1, eps=0.0, momentum=0.7),
    ),
    (
        "rmsprop_centered_momentum",
        lambda: O.RMSprop(0.05, rho=B1, momentum=0.7, epsilon=0.0, centered=True),
        _torch("RMSprop", lr=0.05, alpha=B1, eps=0.0, momentum=0.7, centered=True),
    ),
    (
        # without momentum, torch's L2 weight decay (added to the gradient) is the same step
        "sgd_wd",
        lambda: O.SGD(0.05, weight_decay=0.1),
        _torch("SGD", lr=0.05, weight_decay=0.1),
    ),
    (
        "sgd_nesterov",
        lambda: O.SGD(0.05, momentum=0.9, nesterov=True),
        _torch("SGD", lr=0.05, momentum=0.9, nesterov=True),
    ),
]


@pytest.mark.parametrize(
    ("make", "make_torch"), [c[1:] for c in TORCH_CASES], ids=[c[0] for c in TORCH_CASES]
)
def test_steps_equal_torch_optim(make, make_torch, rng):
    params, grad_steps = problem(rng, steps=6)
    expected = _torch_steps(make_torch, params, grad_steps)
    got = run(make(), resolve("numpy"), "float64", params, grad_steps)
    for step_got, step_expected in zip(got, expected, strict=True):
        for W, W_ref in zip(step_got, step_expected, strict=True):
            np.testing.assert_allclose(W, W_ref, rtol=1e-12, atol=1e-14)


# where Keras (followed here) and torch differ: the differences are real, not rounding
TORCH_DIFFERENCES = [
    (
        "nadam_default_momentum_decay",  # torch's schedule 0.96^(0.004 t), Keras's 0.96^t
        lambda: O.Nadam(0.05, B1, B2, 1e-3),
        _torch("NAdam", lr=0.05, betas=(B1, B2), eps=1e-3),
    ),
    (
        "amsgrad_eps",  # eps beside sqrt(v_hat) (Keras) or beside sqrt(v_hat / (1 - beta_2^t))
        lambda: O.Adam(0.05, B1, B2, 1e-2, amsgrad=True),
        _torch("Adam", lr=0.05, betas=(B1, B2), eps=1e-2, amsgrad=True),
    ),
    (
        "rmsprop_eps",  # eps under the square root (Keras) or beside it (torch)
        lambda: O.RMSprop(0.05, rho=B1, momentum=0.7, epsilon=1e-2),
        _torch("RMSprop", lr=0.05, alpha=B1, eps=1e-2, momentum=0.7),
    ),
    (
        "sgd_momentum_weight_decay",  # decoupled (Keras) or L2 through the momentum (torch)
        lambda: O.SGD(0.05, momentum=0.9, weight_decay=0.1),
        _torch("SGD", lr=0.05, momentum=0.9, weight_decay=0.1),
    ),
]


@pytest.mark.parametrize(
    ("make", "make_torch"),
    [c[1:] for c in TORCH_DIFFERENCES],
    ids=[c[0] for c in TORCH_DIFFERENCES],
)
def test_where_keras_and_torch_differ(make, make_torch, rng):
    params, grad_steps = problem(rng, steps=6)
    expected = _torch_steps(make_torch, params, grad_steps)
    got = run(make(), resolve("numpy"), "float64", params, grad_steps)
    assert not np.allclose(got[-1][0], expected[-1][0], rtol=1e-6, atol=0)


def test_nadam_momentum_schedule_product_is_kerass_running_product():
    """u_1 ... u_t from t alone (host and device forms) equals Keras's running product."""
    import array_api_compat.numpy as xp

    opt = O.Nadam(beta_1=0.9)
    W = xp.zeros(1, dtype=xp.float64)
    product = 1.0
    for t in [*range(1, 60), 500, 1000, 5000]:
        product = 1.0
        for i in range(1, t + 1):
            product *= 0.9 * (1.0 - 0.5 * 0.96**i)
        host = opt._u_product(t, W, xp)
        device = float(opt._u_product(xp.asarray([float(t)]), W, xp)[0])
        np.testing.assert_allclose(host, product, rtol=1e-13, atol=0, err_msg=str(t))
        np.testing.assert_allclose(device, product, rtol=1e-13, atol=0, err_msg=str(t))


# -- issue 21: a device lr and t, as the captured and compiled engines pass them ------------------


DEVICE_CASES = ["nadam_wd", "adam_amsgrad", "rmsprop_centered_momentum", "sgd_nesterov_wd"]


@pytest.mark.parametrize(
    ("cls", "kwargs", "kind", "hp"),
    [c[1:] for c in CASES if c[0] in DEVICE_CASES],
    ids=[c[0] for c in CASES if c[0] in DEVICE_CASES],
)
def test_a_step_with_lr_and_t_on_the_device_equals_the_host_step(
    cls, kwargs, kind, hp, backend, rng
):
    """lr and t as one-element device arrays (the captured engine's) change nothing."""
    params, grad_steps = problem(rng, steps=3)
    expected = reference(kind, hp, params, grad_steps, [kwargs["learning_rate"]] * 3)
    for dt in float_dtypes(backend):
        opt = cls(**kwargs)
        W = [backend.asarray(np.array(p), dt) for p in params]
        opt.build(W)
        for t, grads in enumerate(grad_steps, start=1):
            lr = backend.asarray([kwargs["learning_rate"]], dt)
            W = opt.step(
                W,
                [backend.asarray(g, dt) for g in grads],
                opt.state,
                lr,
                backend.asarray([float(t)], dt),
                backend.xp,
            )
        for got, ref in zip(W, expected[-1], strict=True):
            assert backend.owns(got)
            rtol = golden_rtol(dt) if dt == "float32" else 1e-11
            assert_close(got, ref, backend, rtol=rtol, atol=rtol, dtype=backend.dtype(dt))


# -- issue 21: through a model, every engine, and model.save / bp.load ---------------------------

NEW_OPTIONS = [
    ("nadam", lambda: O.Nadam(0.01)),
    ("nadam_wd", lambda: O.Nadam(0.01, weight_decay=0.01)),
    ("adam_amsgrad", lambda: O.Adam(0.01, amsgrad=True)),
    ("adamw_amsgrad", lambda: O.AdamW(0.01, amsgrad=True)),
    ("rmsprop_momentum_centered", lambda: O.RMSprop(0.01, momentum=0.5, centered=True)),
    ("sgd_momentum_wd", lambda: O.SGD(0.05, momentum=0.9, weight_decay=0.01)),
    ("adagrad_wd", lambda: O.Adagrad(0.05, weight_decay=0.01)),
    ("adamax_wd", lambda: O.Adamax(0.01, weight_decay=0.01)),
]
new_options = pytest.mark.parametrize(
    "make", [m[1] for m in NEW_OPTIONS], ids=[m[0] for m in NEW_OPTIONS]
)


def _data(n):
    r = np.random.default_rng(0)
    X = r.normal(size=(n, 3))
    return X, (X[:, 0] * X[:, 1] + X[:, 2] > 0).astype(int)


def _model(spec, opt, capture=False):
    """A small net on ``spec`` (a Backend, or "name[:device]")."""
    name, device = (spec, None) if not isinstance(spec, str) else spec.partition(":")[::2]
    model = bp.Sequential(
        [bp.layers.Dense(5, "relu", input_dim=3), bp.layers.Dense(1, "sigmoid")],
        backend=name,
        device=device or None,
        dtype="float64",
        seed=3,
        capture=capture,
    )
    model.compile("binary_crossentropy", opt)
    return model


def _save_load_continue(spec, make, tmp_path):
    """Four epochs in one fit, and two, save, load, two more: both models."""
    X, y = _data(48)
    straight = _model(spec, make())
    straight.fit(X, y, epochs=4, batch_size=16, shuffle=False, verbose=0)
    first = _model(spec, make())
    first.fit(X, y, epochs=2, batch_size=16, shuffle=False, verbose=0)
    first.save(tmp_path / "m.npz")
    again = bp.load(tmp_path / "m.npz")
    assert again.optimizer.get_config() == first.optimizer.get_config()
    assert sorted(again.optimizer.state[0]) == sorted(first.optimizer.state_names)
    again.fit(X, y, epochs=4, initial_epoch=2, batch_size=16, shuffle=False, verbose=0)
    return straight, again


@new_options
@pytest.mark.parametrize("spec", ["numpy", "array_api_strict:device1"])
def test_save_and_load_continue_the_same_steps(make, spec, tmp_path):
    """Two epochs, save, load, two more: exactly the four epochs of one fit."""
    straight, again = _save_load_continue(spec, make, tmp_path)
    for p, q in zip(straight.get_weights(), again.get_weights(), strict=True):
        np.testing.assert_array_equal(q, p)


@pytest.mark.parametrize("spec", ["torch"] * HAS_TORCH + ["jax"] * HAS_JAX)
def test_save_and_load_continue_on_torch_and_jax(spec, tmp_path):
    """As above; torch and JAX are not bit-reproducible across a reload even for plain SGD
    (a last-bit difference in the matrix products), so the weights agree to rounding."""
    straight, again = _save_load_continue(spec, lambda: O.Nadam(0.01, weight_decay=0.01), tmp_path)
    for p, q in zip(straight.get_weights(), again.get_weights(), strict=True):
        np.testing.assert_allclose(q, p, rtol=1e-13, atol=1e-15)


COMPILED = [m for m in NEW_OPTIONS if m[0] in ("nadam_wd", "adamw_amsgrad")]


@pytest.mark.skipif(not HAS_JAX, reason="needs jax")
@pytest.mark.parametrize("make", [m[1] for m in COMPILED], ids=[m[0] for m in COMPILED])
def test_the_compiled_jax_epoch_equals_the_eager_steps(make):
    """The JAX program traces the update (t and lr traced, Nadam's schedule product computed
    on the device) and gives the eager steps' numbers (NumPy's: the same seed and data)."""
    X, y = _data(40)
    compiled, eager = _model("jax", make()), _model("numpy", make())
    for m in (compiled, eager):
        m.fit(X, y, epochs=2, batch_size=16, shuffle=False, verbose=0)
    assert compiled._compiled is not None and compiled.optimizer.iterations == 6
    for p, q in zip(eager.get_weights(), compiled.get_weights(), strict=True):
        np.testing.assert_allclose(q, p, rtol=1e-10, atol=1e-13)


@new_options
@pytest.mark.parametrize("spec", ["numpy", "array_api_strict:device1"])
def test_the_captured_step_equals_the_eager_steps(recorder, make, spec):
    X, y = _data(40)
    eager, rec = _model(spec, make()), _model(spec, make(), capture=True)
    for m in (eager, rec):
        m.fit(X, y, epochs=2, batch_size=16, verbose=0)
    assert recorder  # the captured engine ran
    for p, q in zip(eager.get_weights(), rec.get_weights(), strict=True):
        np.testing.assert_allclose(q, p, rtol=1e-10, atol=1e-13)


@pytest.mark.skipif(not HAS_TORCH, reason="needs torch")
@new_options
def test_the_captured_step_reads_nothing_back(monkeypatch, make):
    """What a CUDA graph refuses, caught on torch CPU (as tests/test_captured.py)."""
    from torch.overrides import TorchFunctionMode

    from backprop import backend as B

    refused = {"__bool__", "__float__", "__int__", "__index__", "item", "tolist", "numpy"}
    refused |= {"asarray", "tensor", "as_tensor", "from_numpy", "cpu", "__array__"}
    caught = []

    class NoHostTraffic(TorchFunctionMode):
        def __torch_function__(self, func, types, args=(), kwargs=None):
            if getattr(func, "__name__", "") in refused:
                caught.append(func.__name__)
            return func(*args, **(kwargs or {}))

    def capture(self, fn):
        with NoHostTraffic():
            fn()
        return fn

    monkeypatch.setattr(B.Backend, "can_capture", property(lambda self: True))
    monkeypatch.setattr(B.Backend, "capture", capture)
    X, y = _data(40)
    model = _model("torch", make(), capture=True)
    model.fit(X, y, epochs=1, batch_size=16, verbose=0)
    assert caught == []
