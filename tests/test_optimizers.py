"""Optimizers: golden steps against update rules written here in plain NumPy, Keras's defaults,
clipping, schedules, immutability, argument checks and a real minimisation."""

from __future__ import annotations

import math

import numpy as np
import pytest
from conftest import HAS_CUPY, assert_close, eps

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
    """The parameters after each step of ``grad_steps`` (a list of lists of arrays)."""
    params = [np.array(W, dtype=np.float64) for W in params]
    state = [{} for _ in params]
    history = []
    for t, (grads, lr) in enumerate(zip(grad_steps, lrs, strict=True), start=1):
        new = []
        for W, g, s in zip(params, grads, state, strict=True):
            g = np.asarray(g, dtype=np.float64)
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
                W = W - lr * g / np.sqrt(denom + e)
            elif kind == "adagrad":
                s["v"] = s.get("v", hp["initial_accumulator_value"]) + g**2
                W = W - lr * g / np.sqrt(s["v"] + hp["epsilon"])
            elif kind in ("adam", "adamw"):
                b1, b2, e = hp["beta1"], hp["beta2"], hp["epsilon"]
                if kind == "adamw":  # decoupled decay first (Loshchilov & Hutter, Keras)
                    W = W - lr * hp["weight_decay"] * W
                s["m"] = b1 * s.get("m", 0.0) + (1 - b1) * g
                s["v"] = b2 * s.get("v", 0.0) + (1 - b2) * g**2
                # Kingma & Ba, the "efficient version" of Algorithm 1 (what Keras does)
                lr_t = lr * math.sqrt(1 - b2**t) / (1 - b1**t)
                W = W - lr_t * s["m"] / (np.sqrt(s["v"]) + e)
            elif kind == "adamax":
                b1, b2, e = hp["beta1"], hp["beta2"], hp["epsilon"]
                s["m"] = b1 * s.get("m", 0.0) + (1 - b1) * g
                s["u"] = np.maximum(b2 * s.get("u", 0.0), np.abs(g))
                W = W - lr / (1 - b1**t) * s["m"] / (s["u"] + e)
            else:  # pragma: no cover
                raise AssertionError(kind)
            new.append(W)
        params = new
        history.append([W.copy() for W in params])
    return history


# (id, optimizer class, constructor kwargs, reference kind, reference hyper-parameters)
ADAM_HP = {"beta1": 0.8, "beta2": 0.95, "epsilon": 1e-3}
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
    (
        "rmsprop",
        O.RMSprop,
        {"learning_rate": 0.1, "rho": 0.8, "epsilon": 1e-3},
        "rmsprop",
        {"rho": 0.8, "epsilon": 1e-3},
    ),
    (
        "rmsprop_centered",
        O.RMSprop,
        {"learning_rate": 0.1, "rho": 0.8, "epsilon": 1e-3, "centered": True},
        "rmsprop",
        {"rho": 0.8, "epsilon": 1e-3, "centered": True},
    ),
    (
        "adagrad",
        O.Adagrad,
        {"learning_rate": 0.1, "initial_accumulator_value": 0.2, "epsilon": 1e-3},
        "adagrad",
        {"initial_accumulator_value": 0.2, "epsilon": 1e-3},
    ),
    ("adam", O.Adam, {"learning_rate": 0.1, **ADAM_HP}, "adam", ADAM_HP),
    (
        "adamw",
        O.AdamW,
        {"learning_rate": 0.1, "weight_decay": 0.05, **ADAM_HP},
        "adamw",
        {"weight_decay": 0.05, **ADAM_HP},
    ),
    ("adamax", O.Adamax, {"learning_rate": 0.1, **ADAM_HP}, "adamax", ADAM_HP),
]
cases = pytest.mark.parametrize(
    ("cls", "kwargs", "kind", "hp"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)

# Keras's defaults, written down independently of the library
KERAS_DEFAULTS = [
    ("sgd", O.SGD, 0.01, "sgd", {}),
    ("rmsprop", O.RMSprop, 1e-3, "rmsprop", {"rho": 0.9, "epsilon": 1e-7}),
    (
        "adagrad",
        O.Adagrad,
        1e-3,
        "adagrad",
        {"initial_accumulator_value": 0.1, "epsilon": 1e-7},
    ),
    ("adam", O.Adam, 1e-3, "adam", {"beta1": 0.9, "beta2": 0.999, "epsilon": 1e-7}),
    (
        "adamw",
        O.AdamW,
        1e-3,
        "adamw",
        {"beta1": 0.9, "beta2": 0.999, "epsilon": 1e-7, "weight_decay": 0.004},
    ),
    ("adamax", O.Adamax, 1e-3, "adamax", {"beta1": 0.9, "beta2": 0.999, "epsilon": 1e-7}),
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
        (lambda: O.Adam(beta1=1.0), ValueError, "beta1"),
        (lambda: O.Adam(beta2=1.5), ValueError, "beta2"),
        (lambda: O.Adam(beta1=-0.1), ValueError, "beta1"),
        (lambda: O.Adamax(beta2=1.0), ValueError, "beta2"),
        (lambda: O.AdamW(weight_decay=-0.1), ValueError, "weight_decay"),
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
    assert O.names() == ["adagrad", "adam", "adamax", "adamw", "rmsprop", "sgd"]
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


@pytest.mark.parametrize("cls", [O.SGD, O.RMSprop, O.Adagrad, O.Adam, O.AdamW, O.Adamax])
def test_an_unknown_argument_names_the_optimizer_and_what_it_takes(cls):
    """The message used to name Optimizer.__init__ and give no hint."""
    takes = [k for k in cls().get_config() if k != "name"] + ["lr"]
    with pytest.raises(TypeError) as info:
        cls(no_such_setting=1.0)
    message = str(info.value)
    assert message.startswith(f"{cls.__name__}() got an unexpected argument 'no_such_setting'")
    assert "Optimizer.__init__" not in message
    listed = message.split(f"{cls.__name__} takes ", 1)[1].rstrip(".").split(", ")
    assert sorted(listed) == sorted(takes)
    for name in listed:  # every argument listed is one it takes
        if name != "lr":
            cls(**{name: cls().get_config()[name]})


@pytest.mark.parametrize(
    ("make", "cls", "wrong", "right"),
    [
        (lambda: O.Adam(beta_1=0.8), "Adam", "beta_1", "beta1"),
        (lambda: O.AdamW(learning_rate=0.01, beta_2=0.9), "AdamW", "beta_2", "beta2"),
        (lambda: O.SGD(momentun=0.9), "SGD", "momentun", "momentum"),
        (lambda: O.get({"name": "adamax", "beta_1": 0.8}), "Adamax", "beta_1", "beta1"),
        (lambda: O.RMSprop(learningrate=0.1), "RMSprop", "learningrate", "learning_rate"),
    ],
)
def test_a_misspelt_argument_suggests_the_closest_name(make, cls, wrong, right):
    match = rf"^{cls}\(\) got an unexpected argument '{wrong}'; did you mean '{right}'\?"
    with pytest.raises(TypeError, match=match):
        make()


def test_an_unknown_argument_through_compile_is_named():
    model = bp.Sequential([bp.layers.Dense(1, input_dim=2)])
    with pytest.raises(TypeError, match=r"Adam\(\) got an unexpected argument 'beta_1'"):
        model.compile(loss="mse", optimizer={"name": "adam", "beta_1": 0.9})
