"""Property-based reliability tests (hypothesis).

1. Random small architectures (activations, output/loss pairs, Dropout, L2, backends and
   devices) pass the finite-difference gradient check, and train to a finite history.
2. Random corruptions of the inputs and hyper-parameters of ``fit``/``evaluate``/``predict``
   raise only ``ValueError``/``TypeError`` with a message, and leave the weights and the
   optimizer exactly as they were.

The hypothesis budget is bounded and derandomized so that CI is reproducible.
"""

from __future__ import annotations

import contextlib
import math
import warnings
from dataclasses import dataclass, field
from typing import Any

import array_api_strict as aas
import numpy as np
import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

import backprop as bp
from backprop.layers import Dense, Dropout
from backprop.model import DeadNetworkWarning

with warnings.catch_warnings(), contextlib.suppress(ImportError):
    # hypothesis's pytest plugin imports this (and libcst, which warns on import) only when it
    # reports a failing example; under the suite's warnings-as-errors that import would turn a
    # plain test failure into a pytest INTERNALERROR. Importing it here keeps failures readable.
    warnings.simplefilter("ignore", DeprecationWarning)
    import hypothesis.extra._patching  # noqa: F401

HIDDEN_ACTIVATIONS = ["relu", "leaky_relu", "elu", "gelu", "sigmoid", "tanh", "linear"]
# (output activation, loss)
HEADS = [
    ("sigmoid", "binary_crossentropy"),
    ("softmax", "categorical_crossentropy"),
    ("softmax", "sparse_categorical_crossentropy"),
    ("linear", "mse"),
    ("linear", "mae"),
    ("tanh", "mse"),
]
# (backend, device)
BACKENDS = [("numpy", None), ("array_api_strict", "CPU_DEVICE"), ("array_api_strict", "device1")]
OPTIMIZERS = ["sgd", "rmsprop", "adagrad", "adam", "adamw", "adamax"]


def _settings(n: int, shrink: bool = True) -> settings:
    phases = [Phase.explicit, Phase.generate] + ([Phase.shrink] if shrink else [])
    return settings(
        max_examples=n,
        deadline=None,
        derandomize=True,
        phases=phases,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )


# The corruption properties are not shrunk: each generated example already says what it
# corrupted (``Corruption.what``), and shrinking several distinct failures at once costs minutes.
_corruption_settings = _settings(60, shrink=False)


# -- random problems ------------------------------------------------------------------------------
@dataclass
class Problem:
    """A small model description plus its data; rebuilt fresh by ``model()``."""

    d: int
    n: int
    hidden: list[tuple[int, str, float | None]]  # (units, activation, l2 or None)
    head: str
    loss: str
    out: int
    out_l2: float | None
    dropout: tuple[int, float] | None  # (insert before dense layer i >= 1, rate)
    backend: tuple[str, str | None]
    seed: int
    X: np.ndarray = field(repr=False)
    y: np.ndarray = field(repr=False)

    def model(self, dtype: str = "float64", optimizer: Any = "adam") -> bp.Sequential:
        dense = []
        dim = self.d
        for units, act, l2 in self.hidden:
            reg = None if l2 is None else bp.regularizers.L2(l2)
            dense.append(Dense(units, act, input_dim=dim, kernel_regularizer=reg))
            dim = units
        reg = None if self.out_l2 is None else bp.regularizers.L2(self.out_l2)
        dense.append(Dense(self.out, self.head, input_dim=dim, kernel_regularizer=reg))
        layers: list = list(dense)
        if self.dropout is not None:
            where, rate = self.dropout
            layers.insert(where, Dropout(rate))
        name, device = self.backend
        model = bp.Sequential(layers, backend=name, device=device, dtype=dtype, seed=self.seed)
        model.compile(loss=self.loss, optimizer=optimizer)
        return model


def _labels(rng: np.random.Generator, loss: str, n: int, out: int) -> np.ndarray:
    if loss == "binary_crossentropy":
        y = rng.integers(0, 2, (n, out))
        return y[:, 0] if out == 1 and rng.random() < 0.5 else y
    if loss == "categorical_crossentropy":
        return np.eye(out)[rng.integers(0, out, n)]
    if loss == "sparse_categorical_crossentropy":
        return rng.integers(0, out, n)
    y = rng.normal(size=(n, out))
    return y[:, 0] if out == 1 and rng.random() < 0.5 else y


@st.composite
def problems(draw, min_rows: int = 3, max_rows: int = 8) -> Problem:
    d = draw(st.integers(1, 4))
    n = draw(st.integers(min_rows, max_rows))
    n_hidden = draw(st.integers(0, 2))  # 1-3 Dense layers in all
    l2 = st.none() | st.floats(1e-3, 0.1)
    hidden = [
        (draw(st.integers(1, 6)), draw(st.sampled_from(HIDDEN_ACTIVATIONS)), draw(l2))
        for _ in range(n_hidden)
    ]
    head, loss = draw(st.sampled_from(HEADS))
    low = 2 if head == "softmax" else 1
    high = 1 if loss == "binary_crossentropy" and draw(st.booleans()) else 6
    out = draw(st.integers(low, max(low, high)))
    dropout = None
    if n_hidden and draw(st.booleans()):
        dropout = (draw(st.integers(1, n_hidden)), draw(st.floats(0.0, 0.9)))
    seed = draw(st.integers(0, 2**16))
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d))
    y = _labels(rng, loss, n, out)
    return Problem(
        d=d,
        n=n,
        hidden=hidden,
        head=head,
        loss=loss,
        out=out,
        out_l2=draw(l2),
        dropout=dropout,
        backend=draw(st.sampled_from(BACKENDS)),
        seed=seed,
        X=X,
        y=y,
    )


def _on_device(a: np.ndarray, backend: tuple[str, str | None]) -> Any:
    name, device = backend
    if name != "array_api_strict":
        return a
    return aas.asarray(a, device=aas.Device(device))


# -- 1. gradients and training on random architectures -------------------------------------------
@_settings(30)
@given(problem=problems(), device_input=st.booleans())
def test_gradcheck_random_architectures(problem, device_input):
    model = problem.model("float64")
    X, y = problem.X, problem.y
    if device_input:  # data already on the model's device
        X, y = _on_device(X, problem.backend), _on_device(y, problem.backend)
    before = model.get_weights()
    errors = bp.gradcheck(model, X, y, return_all=True)
    assert len(errors) == len(before)
    assert all(math.isfinite(e) for e in errors), errors
    assert max(errors) < 1e-6, f"gradcheck errors per weight array: {errors}"
    for a, b in zip(before, model.get_weights(), strict=True):  # the check runs on a copy
        np.testing.assert_array_equal(a, b)


@_settings(25)
@given(
    problem=problems(min_rows=3, max_rows=12),
    dtype=st.sampled_from(["float32", "float64"]),
    epochs=st.integers(1, 2),
    data=st.data(),
)
def test_fit_random_architectures_gives_finite_history(problem, dtype, epochs, data):
    optimizer = data.draw(st.sampled_from(OPTIMIZERS), label="optimizer")
    batch_size = data.draw(st.integers(1, problem.n + 5), label="batch_size")
    validate = data.draw(st.booleans(), label="validation_data")
    model = problem.model(dtype, optimizer)
    kwargs = {"validation_data": (problem.X, problem.y)} if validate else {}
    with warnings.catch_warnings():
        # a tiny ReLU net may be dead at initialisation: that warning is documented behaviour
        warnings.simplefilter("ignore", DeadNetworkWarning)
        history = model.fit(
            problem.X, problem.y, epochs=epochs, batch_size=batch_size, verbose=0, **kwargs
        ).history
    expected_keys = {"loss", "val_loss"} if validate else {"loss"}
    assert set(history) == expected_keys
    for key, values in history.items():
        assert len(values) == epochs, (key, values)
        assert all(math.isfinite(v) for v in values), (key, values)
    steps = math.ceil(problem.n / min(batch_size, problem.n))
    assert model.optimizer.iterations == epochs * steps
    assert all(np.isfinite(w).all() for w in model.get_weights())


# -- 2. corrupted inputs --------------------------------------------------------------------------
LOSS_HEADS = {
    "binary_crossentropy": "sigmoid",
    "categorical_crossentropy": "softmax",
    "sparse_categorical_crossentropy": "softmax",
    "mse": "linear",
    "mae": "linear",
}


@dataclass
class Setup:
    loss: str
    out: int
    d: int
    n: int
    dtype: str
    backend: tuple[str, str | None]
    device_input: bool
    seed: int

    def model(self) -> bp.Sequential:
        name, device = self.backend
        model = bp.Sequential(
            [Dense(3, "tanh", input_dim=self.d), Dense(self.out, LOSS_HEADS[self.loss])],
            backend=name,
            device=device,
            dtype=self.dtype,
            seed=0,
        )
        model.compile(loss=self.loss, optimizer="adam")
        return model

    def data(self) -> tuple[np.ndarray, np.ndarray]:
        rng = np.random.default_rng(self.seed)
        return rng.normal(size=(self.n, self.d)), _labels(rng, self.loss, self.n, self.out)

    def put(self, a: Any) -> Any:
        """Move a numeric host array to the model's device when this setup asks for it."""
        if (
            not self.device_input
            or not isinstance(a, np.ndarray)
            or a.dtype.kind not in "biufc"
            or self.backend[0] != "array_api_strict"
        ):
            return a
        return _on_device(a, self.backend)


@st.composite
def setups(draw) -> Setup:
    loss = draw(st.sampled_from(sorted(LOSS_HEADS)))
    if loss == "binary_crossentropy":
        out = 1
    elif LOSS_HEADS[loss] == "softmax":
        out = draw(st.integers(2, 4))
    else:
        out = draw(st.integers(1, 3))
    return Setup(
        loss=loss,
        out=out,
        d=draw(st.integers(1, 4)),
        n=draw(st.integers(2, 10)),
        dtype=draw(st.sampled_from(["float32", "float64"])),
        backend=draw(st.sampled_from(BACKENDS)),
        device_input=draw(st.booleans()),
        seed=draw(st.integers(0, 2**16)),
    )


@dataclass
class Corruption:
    """One bad call: ``fit(X, y, **kwargs)`` and, where meaningful, evaluate/predict."""

    what: str
    X: Any = field(repr=False)
    y: Any = field(repr=False)
    fit_kwargs: dict = field(default_factory=dict)
    calls: tuple[str, ...] = ("fit",)
    other_kwargs: dict = field(default_factory=dict)  # for evaluate/predict


NONFINITE = st.sampled_from([np.nan, np.inf, -np.inf])


def _positions(draw, size: int) -> list[int]:
    return draw(st.lists(st.integers(0, size - 1), min_size=1, max_size=size, unique=True))


def _bad_dtype(draw, a: np.ndarray) -> tuple[str, Any]:
    kind = draw(st.sampled_from(["str", "object", "complex", "datetime", "bytes", "list-of-str"]))
    if kind == "str":
        return kind, a.astype(str)
    if kind == "object":
        return kind, a.astype(object)
    if kind == "complex":
        return kind, a.astype(np.complex128) + 1j
    if kind == "datetime":
        return kind, a.astype(np.int64).astype("datetime64[s]")
    if kind == "bytes":
        return kind, a.astype(str).astype(np.bytes_)
    return kind, a.astype(str).tolist()


@st.composite
def x_corruptions(draw, s: Setup) -> Corruption:
    X, y = s.data()
    all3 = ("fit", "evaluate", "predict")
    kind = draw(
        st.sampled_from(
            ["nonfinite", "overflow", "features", "ndim", "dtype", "empty", "none", "ragged"]
        )
    )
    if kind == "nonfinite":
        X = X.copy()
        for p in _positions(draw, X.size):
            X.flat[p] = draw(NONFINITE)
        return Corruption("X with NaN/inf", X, y, calls=all3)
    if kind == "overflow":
        # finite on the host, but beyond the largest value of the model's dtype
        X = X.copy()
        big = float(np.finfo(s.dtype).max) * 10 if s.dtype == "float32" else np.inf
        for p in _positions(draw, X.size):
            X.flat[p] = big * draw(st.sampled_from([1.0, -1.0]))
        return Corruption(f"X beyond the range of {s.dtype}", X, y, calls=all3)
    if kind == "features":
        d2 = draw(st.integers(1, s.d + 3).filter(lambda v: v != s.d))
        X2 = np.random.default_rng(1).normal(size=(s.n, d2))
        return Corruption(f"X with {d2} features instead of {s.d}", X2, y, calls=all3)
    if kind == "ndim":
        shape = draw(st.sampled_from(["1-D", "3-D", "0-D"]))
        X2 = {"1-D": X[:, 0], "3-D": X[:, :, None], "0-D": np.float64(X[0, 0])}[shape]
        return Corruption(f"{shape} X", X2, y, calls=all3)
    if kind == "dtype":
        name, X2 = _bad_dtype(draw, X)
        return Corruption(f"X of {name} dtype", X2, y, calls=all3)
    if kind == "empty":
        if draw(st.booleans()):
            return Corruption("X with no rows", X[:0], y[:0], calls=all3)
        return Corruption("X with no columns", X[:, :0], y, calls=all3)
    if kind == "none":
        return Corruption("X is None", None, y, calls=all3)
    ragged = [list(row) for row in X]
    ragged[draw(st.integers(0, s.n - 1))].append(1.0)
    return Corruption("ragged X", ragged, y, calls=all3)


def _bad_labels(draw, s: Setup, y: np.ndarray) -> tuple[str, np.ndarray]:
    """Labels of the right shape but with values (or a width) the loss cannot take."""
    y = y.astype(np.float64)
    if s.loss == "binary_crossentropy":
        bad = draw(st.floats(1.0, 1e6, exclude_min=True) | st.floats(-1e6, 0.0, exclude_max=True))
        for p in _positions(draw, y.size):
            y.flat[p] = bad
        return f"binary labels with {bad}", y
    if s.loss == "categorical_crossentropy":
        if draw(st.booleans()):
            width = draw(st.integers(1, s.out + 2).filter(lambda w: w != s.out))
            return f"one-hot labels of width {width}", np.eye(width)[np.zeros(s.n, int)]
        y.flat[draw(st.integers(0, y.size - 1))] = draw(st.sampled_from([2.0, -1.0, 1.5]))
        return "one-hot labels outside [0, 1]", y
    if s.loss == "sparse_categorical_crossentropy":
        bad = draw(
            st.sampled_from([s.out, s.out + 7, -1, 0.5, 1e20])
            | st.floats(0.01, s.out - 0.01).filter(lambda v: v != int(v))
        )
        for p in _positions(draw, y.size):
            y.flat[p] = bad
        if draw(st.booleans()) and float(bad).is_integer() and abs(bad) < 2**31:
            y = y.astype(np.int64)
        return f"class labels with {bad} for {s.out} classes", y
    width = draw(st.integers(1, s.out + 2).filter(lambda w: w != s.out))
    return f"targets of width {width} for {s.out} outputs", np.ones((s.n, width))


@st.composite
def y_corruptions(draw, s: Setup) -> Corruption:
    X, y = s.data()
    both = ("fit", "evaluate")
    kind = draw(
        st.sampled_from(["nonfinite", "overflow", "rows", "ndim", "dtype", "labels", "none"])
    )
    if kind == "nonfinite":
        y = y.astype(np.float64)
        for p in _positions(draw, y.size):
            y.flat[p] = draw(NONFINITE)
        return Corruption("y with NaN/inf", X, y, calls=both)
    if kind == "overflow" and s.loss in ("mse", "mae") and s.dtype == "float32":
        y = y.astype(np.float64)
        y.flat[draw(st.integers(0, y.size - 1))] = 1e39  # finite, but not in float32
        return Corruption("y beyond the range of float32", X, y, calls=both)
    if kind == "rows":
        k = draw(st.integers(1, 3))
        y2 = y[:-k] if draw(st.booleans()) and k < s.n else np.concatenate([y, y[:k]])
        return Corruption(f"y with {len(y2)} rows for {s.n}", X, y2, calls=both)
    if kind == "ndim":
        if draw(st.booleans()):
            return Corruption("3-D y", X, y.reshape(s.n, -1, 1), calls=both)
        return Corruption("0-D y", X, np.float64(1.0), calls=both)
    if kind == "dtype":
        name, y2 = _bad_dtype(draw, y)
        return Corruption(f"y of {name} dtype", X, y2, calls=both)
    if kind == "none":
        return Corruption("y is None", X, None, calls=both)
    what, y2 = _bad_labels(draw, s, y)
    return Corruption(what, X, y2, calls=both)


BAD_COUNTS = [0, -1, 2.5, "3", True, False, None, float("nan"), 1e9 + 0.5, [2]]


@st.composite
def hyper_corruptions(draw, s: Setup) -> Corruption:
    X, y = s.data()
    kind = draw(
        st.sampled_from(
            [
                "epochs",
                "batch_size",
                "validation_split",
                "validation_data",
                "verbose",
                "initial_epoch",
                "callbacks",
            ]
        )
    )
    if kind == "epochs":
        v = draw(st.sampled_from(BAD_COUNTS))
        return Corruption(f"epochs={v!r}", X, y, {"epochs": v})
    if kind == "batch_size":
        v = draw(st.sampled_from([b for b in BAD_COUNTS if b is not None]))
        return Corruption(
            f"batch_size={v!r}",
            X,
            y,
            {"batch_size": v},
            ("fit", "evaluate", "predict"),
            {"batch_size": v},
        )
    if kind == "validation_split":
        v = draw(
            st.sampled_from([-0.1, 1.0, 1.5, float("nan"), float("inf"), "0.2", True, None])
            | st.floats(1e-9, 0.99 / s.n)  # leaves no sample for validation
        )
        return Corruption(f"validation_split={v!r}", X, y, {"validation_split": v})
    if kind == "validation_data":
        Xn = X.copy()
        Xn[0, 0] = np.nan
        choices = {
            "X alone": X,
            "(X,)": (X,),
            "(X, y, y)": (X, y, y),
            "a string": "abc",
            "a dict": {"X": X, "y": y},
            "(X with other features, y)": (np.ones((s.n, s.d + 1)), y),
            "(X with NaN, y)": (Xn, y),
            "(X, y with fewer rows)": (X, y[:-1]),
            "(X, None)": (X, None),
            "(None, y)": (None, y),
            "(X, strings)": (X, y.astype(str)),
        }
        key = draw(st.sampled_from(sorted(choices)))
        return Corruption(f"validation_data={key}", X, y, {"validation_data": choices[key]})
    if kind == "verbose":
        v = draw(st.sampled_from([3, -1, "1", 0.5, None]))
        return Corruption(f"verbose={v!r}", X, y, {"verbose": v})
    if kind == "initial_epoch":
        v = draw(st.sampled_from([-1, 2.5, "0", None]))
        return Corruption(f"initial_epoch={v!r}", X, y, {"initial_epoch": v})
    v = draw(st.sampled_from(["abc", [1], [bp.callbacks.EarlyStopping]]))
    return Corruption(f"callbacks={v!r}", X, y, {"callbacks": v})


def _state(model: bp.Sequential) -> tuple:
    opt = model.optimizer
    return (
        model.get_weights(),
        opt.iterations,
        [{k: bp.to_numpy(v).copy() for k, v in s.items()} for s in opt.state],
    )


def _assert_refused(s: Setup, c: Corruption) -> None:
    """Every call of ``c`` raises ValueError/TypeError with a message; nothing changes."""
    model = s.model()
    before = _state(model)
    X, y = s.put(c.X), s.put(c.y)
    kwargs = {"epochs": 1, "verbose": 0, **c.fit_kwargs}
    if "validation_data" in kwargs and isinstance(kwargs["validation_data"], tuple):
        kwargs["validation_data"] = tuple(s.put(v) for v in kwargs["validation_data"])
    calls = {
        "fit": lambda: model.fit(X, y, **kwargs),
        "evaluate": lambda: model.evaluate(X, y, **c.other_kwargs),
        "predict": lambda: model.predict(X, **c.other_kwargs),
    }
    for name in c.calls:
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # a RuntimeWarning escaping is a failure too
            warnings.simplefilter("ignore", DeadNetworkWarning)
            try:
                calls[name]()
            except (ValueError, TypeError) as exc:
                assert str(exc).strip(), f"{name}: {type(exc).__name__} without a message"
            else:
                pytest.fail(f"{name}() accepted {c.what}")
        after = _state(model)
        assert after[1] == before[1], f"{name}() with {c.what} moved optimizer.iterations"
        assert len(after[2]) == len(before[2]), f"{name}() with {c.what} changed the state"
        for a, b in zip(before[0], after[0], strict=True):
            np.testing.assert_array_equal(a, b, err_msg=f"{name}() with {c.what} moved weights")


@_corruption_settings
@given(s=setups(), data=st.data())
def test_corrupted_X_is_refused_and_model_unchanged(s, data):
    _assert_refused(s, data.draw(x_corruptions(s), label="corruption"))


@_corruption_settings
@given(s=setups(), data=st.data())
def test_corrupted_y_is_refused_and_model_unchanged(s, data):
    _assert_refused(s, data.draw(y_corruptions(s), label="corruption"))


@_corruption_settings
@given(s=setups(), data=st.data())
def test_corrupted_hyperparameters_are_refused_and_model_unchanged(s, data):
    _assert_refused(s, data.draw(hyper_corruptions(s), label="corruption"))


# -- 3. the corruptions found above, one by one (fast, named regressions) -------------------------
def _setup(loss="binary_crossentropy", out=1, dtype="float32", backend=("numpy", None)):
    return Setup(loss, out, d=3, n=8, dtype=dtype, backend=backend, device_input=False, seed=0)


def _regression_cases():
    X, y = _setup().data()
    big = X.copy()
    big[2, 1] = 1e39
    yield "fit(X, None)", _setup(), Corruption("y is None", X, None, calls=("fit", "evaluate"))
    yield (
        "validation_data=(X, None)",
        _setup(),
        Corruption("validation_data=(X, None)", X, y, {"validation_data": (X, None)}),
    )
    yield (
        "finite X beyond float32",
        _setup(),
        Corruption("X beyond float32", big, y, calls=("fit", "evaluate", "predict")),
    )
    yield (
        "finite X beyond float32 on array_api_strict",
        _setup(backend=("array_api_strict", "device1")),
        Corruption("X beyond float32", big, y, calls=("fit", "evaluate", "predict")),
    )
    Xr, yr = _setup("mse").data()
    yr = yr.astype(np.float64).copy()
    yr.flat[0] = 1e39
    yield "finite y beyond float32", _setup("mse"), Corruption("y beyond float32", Xr, yr)
    yield "initial_epoch=-1", _setup(), Corruption("initial_epoch=-1", X, y, {"initial_epoch": -1})


@pytest.mark.parametrize(
    ("setup", "corruption"),
    [pytest.param(s, c, id=name) for name, s, c in _regression_cases()],
)
def test_known_corruptions_are_refused(setup, corruption):
    _assert_refused(setup, corruption)


NAN, INF = float("nan"), float("inf")


@pytest.mark.parametrize(
    "make",
    [
        pytest.param(lambda: bp.optimizers.Adam(learning_rate=INF), id="Adam(lr=inf)"),
        pytest.param(lambda: bp.optimizers.SGD(learning_rate=NAN), id="SGD(lr=nan)"),
        pytest.param(lambda: bp.optimizers.SGD(momentum=NAN), id="SGD(momentum=nan)"),
        pytest.param(lambda: bp.regularizers.L2(NAN), id="L2(nan)"),
        pytest.param(lambda: bp.regularizers.L2(INF), id="L2(inf)"),
        pytest.param(lambda: bp.regularizers.L1(NAN), id="L1(nan)"),
        pytest.param(lambda: bp.activations.LeakyReLU(NAN), id="LeakyReLU(nan)"),
        pytest.param(lambda: bp.activations.ELU(INF), id="ELU(inf)"),
        pytest.param(lambda: Dropout(NAN), id="Dropout(nan)"),
        pytest.param(lambda: Dense(3, input_dim=2.0), id="Dense(input_dim=2.0)"),
    ],
)
def test_non_finite_hyperparameters_are_refused(make):
    """A NaN or infinite hyper-parameter is a bad hyper-parameter: refused when it is given,
    not discovered as a NaN loss (or silently-wrong model) later."""
    with pytest.raises((ValueError, TypeError)) as info:
        make()
    assert str(info.value).strip()
