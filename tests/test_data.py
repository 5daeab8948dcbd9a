"""Tests of backprop.data: the input checks that run before anything touches a model.

NaN/inf are found in the input's own dtype, the model dtype's range is checked only for wider
input, nothing warns, the check makes no copy of the data, and the errors say what was wrong
and where.
"""

from __future__ import annotations

import importlib.util
import tracemalloc
import warnings

import numpy as np
import pytest

import backprop as bp
from backprop import data

N, D = 20, 4


def _net(dtype="float64", backend="numpy", loss="binary_crossentropy", out=1):
    model = bp.Sequential(
        [
            bp.layers.Dense(3, activation="relu", input_dim=D),
            bp.layers.Dense(out, activation="sigmoid" if out == 1 else "softmax"),
        ],
        dtype=dtype,
        backend=backend,
        seed=0,
    )
    model.compile(loss=loss, optimizer="adam")
    return model


def _xy(dtype="float32"):
    X = np.random.default_rng(0).normal(size=(N, D)).astype(dtype)
    return X, (X[:, 0] > 0).astype(dtype)


def _all_calls(model, X, y):
    """fit, evaluate and predict on (X, y), each a thunk."""
    return {
        "fit": lambda: model.fit(X, y, epochs=1, verbose=0),
        "evaluate": lambda: model.evaluate(X, y),
        "predict": lambda: model.predict(X),
    }


def _assert_all_refused(model, X, y, error, match):
    before = model.get_weights() if model.built else None
    for name, call in _all_calls(model, X, y).items():
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # a RuntimeWarning instead of the error fails too
            with pytest.raises(error, match=match):
                call()
        if before is not None:
            for a, b in zip(before, model.get_weights(), strict=True):
                np.testing.assert_array_equal(a, b, err_msg=f"{name}() moved the weights")
    assert model.optimizer.iterations == 0


# -- Item 9: NaN/inf in lower-precision input -------------------------------------------------


@pytest.mark.parametrize("bad", [np.inf, -np.inf, np.nan])
@pytest.mark.parametrize(
    ("data_dtype", "model_dtype"),
    [("float32", "float64"), ("float16", "float32"), ("float16", "float64")],
)
def test_nonfinite_narrower_host_input_is_refused(data_dtype, model_dtype, bad):
    """float32 inf was compared with float64's max cast to float32, i.e. inf <= inf: accepted."""
    X, y = _xy(data_dtype)
    X[3, 1] = bad
    with pytest.raises(ValueError, match="X contains NaN or infinite values"):
        data.check_X(X, D, dtype=model_dtype)
    model = _net(model_dtype)
    model.build(D)
    _assert_all_refused(model, X, y, ValueError, "X contains NaN or infinite values")
    y_bad = y.copy()
    y_bad[5] = bad
    with pytest.raises(ValueError, match="y contains NaN or infinite values"):
        model.fit(np.ones((N, D), data_dtype), y_bad, verbose=0)


def test_nonfinite_narrower_device_input_is_refused(backend64):
    """Arrays already on a device: float32 inf given to a float64 model, on every backend."""
    X, y = _xy("float32")
    X[3, 1] = np.inf
    Xd, yd = backend64.asarray(X, "float32"), backend64.asarray(y, "float32")
    model = _net("float64", backend=backend64)
    model.build(D)
    _assert_all_refused(model, Xd, yd, ValueError, r"X contains NaN or infinite values")
    y[7] = np.nan
    with pytest.raises(ValueError, match=r"y contains NaN or infinite values \(.* row 7\)"):
        model.fit(backend64.asarray(np.ones((N, D)), "float32"), backend64.asarray(y, "float32"))


@pytest.mark.parametrize(
    ("data_dtype", "model_dtype"),
    [("float32", "float64"), ("float16", "float32"), ("float16", "float64"), ("int64", "float32")],
)
def test_narrower_input_gives_no_warning(data_dtype, model_dtype):
    """Every float32 input to a float64 model used to print 'overflow encountered in cast'."""
    X, y = _xy("float32")
    X, y = X.astype(data_dtype), y.astype(data_dtype)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        data.check_X(X, D, dtype=model_dtype)
        data.check_y(y, N, "binary", 1, dtype=model_dtype)
        model = _net(model_dtype)
        model.fit(X, y, epochs=1, verbose=0)
        assert np.isfinite(bp.to_numpy(model.predict(X))).all()


def test_one_hot_labels_into_float64_model_give_no_warning():
    """bp.datasets.one_hot makes float32 labels; a float64 model used to warn on each call."""
    X, _ = _xy("float64")
    Y = bp.datasets.one_hot(np.arange(N) % 3)
    assert Y.dtype == np.float32
    model = _net("float64", loss="categorical_crossentropy", out=3)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        model.fit(X, Y, epochs=1, verbose=0)
        model.evaluate(X, Y)


def test_range_is_checked_only_for_wider_input():
    """float64 data beyond float32's largest value would become inf in a float32 model; the
    largest value of a narrower dtype always fits."""
    X, y = _xy("float64")
    X[2, 1] = 1e39
    msg = r"beyond the range of the model's dtype float32 .*row 2, column 1.*dtype='float64'"
    with pytest.raises(ValueError, match=msg):
        data.check_X(X, D, dtype="float32")
    _assert_all_refused(_net("float32"), X, y, ValueError, msg)
    assert data.check_X(X, D, dtype="float64") is X
    for dtype, model_dtype in [("float16", "float32"), ("float32", "float64")]:
        big = np.full((N, D), np.finfo(dtype).max, dtype=dtype)
        big[0, 0] = -big[0, 0]
        assert data.check_X(big, D, dtype=model_dtype) is big
    just_in = np.full((N, D), float(np.finfo(np.float32).max))  # float64, exactly float32's max
    assert data.check_X(just_in, D, dtype="float32") is just_in


# -- error messages name the first bad value ------------------------------------------------


@pytest.mark.parametrize("order", ["C", "F"])
def test_error_names_the_first_bad_value(order):
    """Row-major first, also for a Fortran-ordered array (checked column block by block)."""
    X = np.ones((3000, 600), order=order)
    X[2500, 3] = np.nan  # later row, earlier column
    X[1200, 500] = -np.inf  # the first in row-major order
    with pytest.raises(ValueError, match=r"the first: -inf at row 1200, column 500"):
        data.check_X(X)
    y = np.zeros(3000)
    y[2999] = np.inf
    with pytest.raises(
        ValueError, match=r"y contains NaN or infinite values \(the first: inf at row 2999\)"
    ):
        data.check_y(y, 3000, "regression", 1)


# -- Item 18: the check makes no full-size temporary ------------------------------------------


@pytest.mark.parametrize(
    ("data_dtype", "model_dtype", "order"),
    [
        ("float32", "float32", "C"),
        ("float32", "float64", "C"),
        ("float64", "float32", "C"),  # the wider case: the range is checked too
        ("float32", "float32", "F"),
    ],
)
def test_check_memory_is_bounded(data_dtype, model_dtype, order):
    """``all(abs(X) <= limit)`` cost 1.25x the data (a float and a bool temporary): now the
    check's transient peak stays under 0.1x (blocks of rows; min/max make no temporary)."""
    X = np.random.default_rng(0).random((20_000, 784), dtype=np.float32)
    X = np.asarray(X, dtype=data_dtype, order=order)
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        base = tracemalloc.get_traced_memory()[0]
        assert data.check_X(X, 784, dtype=model_dtype) is X
        peak = tracemalloc.get_traced_memory()[1] - base
    finally:
        tracemalloc.stop()
    assert peak < 0.1 * X.nbytes, f"peak {peak / X.nbytes:.3f}x the data"


# -- Item 16: None and other non-arrays -------------------------------------------------------


def test_none_is_refused_clearly():
    """fit(None, y) used to suggest X.astype('float32')."""
    _, y = _xy()
    msg = r"X must be an array of shape \(n_samples, n_features\); received None"
    with pytest.raises(TypeError, match=msg):
        data.check_X(None)
    with pytest.raises(TypeError, match=r"y must be an array of shape .*received None"):
        data.check_y(None, N, "binary", 1)
    with pytest.raises(TypeError, match=r"w must be an array, received None"):
        data.as_array(None, "w")
    model = _net()
    for call in (lambda: model.fit(None, y, verbose=0), lambda: model.predict(None)):
        with pytest.raises(TypeError, match=msg):
            call()


class _SparseLike:
    """Stands in for a scipy.sparse matrix: np.asarray makes a 0-d object array of it."""

    shape = (N, D)

    def toarray(self):
        return np.ones(self.shape)


@pytest.mark.parametrize(
    ("X", "match"),
    [
        ({"a": [1.0]}, r"X must be an array of numbers, received dict\.$"),
        (_SparseLike(), r"received _SparseLike\. For a sparse matrix pass X\.toarray\(\)"),
        ("data.csv", r"X must be an array of numbers, received str"),
    ],
    ids=["dict", "sparse-like", "str"],
)
def test_non_arrays_are_refused_clearly(X, match):
    with pytest.raises(TypeError, match=match):
        data.check_X(X)


# -- inputs that must still pass, and shapes at the edges -------------------------------------


@pytest.mark.parametrize("dtype", ["int8", "int64", "uint64", "bool", "float16", "float32"])
def test_integer_bool_and_narrow_float_input_is_accepted(dtype):
    X = (np.arange(N * D).reshape(N, D) % 3).astype(dtype)
    assert data.check_X(X, D, dtype="float32") is X
    y = np.arange(N) % 2
    model = _net("float32")
    model.fit(X, y.astype(dtype), epochs=1, verbose=0)
    assert model.predict(X).shape == (N, 1)


def test_zero_width_labels_give_the_shape_error():
    X, _ = _xy()
    with pytest.raises(ValueError, match=r"y has shape \(20, 0\)"):
        _net().fit(X, np.ones((N, 0)), verbose=0)


@pytest.mark.skipif(np.finfo(np.longdouble).bits <= 64, reason="long double is float64 here")
def test_long_double_beyond_float64_is_out_of_range_not_infinite():
    """Judged and printed in its own dtype: 1e400 is finite as a long double."""
    X = np.ones((3, 2), dtype=np.longdouble)
    X[1, 1] = np.longdouble("1e400")
    msg = r"beyond the range of the model's dtype float64 .*the first: 1e\+400 at row 1, column 1"
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(ValueError, match=msg):
            data.check_X(X)


# -- issue 19.5: bfloat16 and bool arrays of any library, as NumPy's float16 and bool --------

HAS_TORCH = importlib.util.find_spec("torch") is not None
HAS_JAX = importlib.util.find_spec("jax") is not None
needs_torch = pytest.mark.skipif(not HAS_TORCH, reason="needs torch")


def _library_array(library, host, dtype):
    """``host`` (NumPy) as an array of ``library`` with dtype ``dtype`` (a name)."""
    if library == "torch":
        torch = pytest.importorskip("torch")
        return torch.asarray(host).to(getattr(torch, dtype))
    jnp = pytest.importorskip("jax.numpy")
    return jnp.asarray(host).astype(getattr(jnp, dtype))


def _fit_predict(backend, X, y, fit=False):
    """Weights after ``fit`` (if asked), the loss of ``evaluate`` and ``predict``'s output.

    fit, evaluate and predict check and move their input with the same two functions, so
    evaluate and predict alone cover them (a fit on JAX compiles for seconds).
    """
    model = _net("float32", backend=backend.spec)
    if fit:
        model.fit(X, y, epochs=1, batch_size=8, shuffle=False, verbose=0)
    loss = model.evaluate(X, y)["loss"]
    return model.get_weights(), loss, bp.backend.to_numpy(model.predict(X))


@pytest.mark.parametrize("library", ["torch", "jax"])
def test_bfloat16_input_is_converted_like_float16(library, backend):
    """torch's bfloat16 used to fail with "Got unsupported ScalarType BFloat16" (and JAX's on
    a torch model): both are read as the float32 values they hold, X and y."""
    X, y = _xy()
    X = np.round(X * 4) / 4  # values bfloat16 holds exactly, so float32 is the reference
    Xb, yb = _library_array(library, X, "bfloat16"), _library_array(library, y, "bfloat16")
    Xf, yf = _library_array(library, X, "float32"), _library_array(library, y, "float32")
    expected = _fit_predict(backend, Xf, yf)
    got = _fit_predict(backend, Xb, yb)
    for a, b in zip(got[0], expected[0], strict=True):
        np.testing.assert_array_equal(a, b)
    assert got[1] == expected[1]
    np.testing.assert_array_equal(got[2], expected[2])


def test_bool_input_of_any_library_is_accepted_as_numpys(backend):
    """A bool array of the model's library (torch, JAX, array_api_strict, on its device) and a
    torch bool array on any model train as NumPy's bool does; they used to be refused."""
    X, y = _xy()
    Xh, yh = X > 0, y > 0
    expected = _fit_predict(backend, Xh, yh, fit=backend.name == "numpy")
    inputs = [(backend.asarray(Xh), backend.asarray(yh))]
    if HAS_TORCH:
        inputs.append((_library_array("torch", Xh, "bool"), _library_array("torch", yh, "bool")))
    for Xd, yd in inputs:
        assert "bool" in str(Xd.dtype)
        got = _fit_predict(backend, Xd, yd, fit=backend.name == "numpy")
        for a, b in zip(got[0], expected[0], strict=True):
            np.testing.assert_array_equal(a, b)
        assert got[1] == expected[1]
        np.testing.assert_array_equal(got[2], expected[2])


def test_ml_dtypes_bfloat16_numpy_array_is_converted():
    ml_dtypes = pytest.importorskip("ml_dtypes")
    X, _ = _xy()
    out = data.check_X(X.astype(ml_dtypes.bfloat16), D)
    assert out.dtype == np.float32
    np.testing.assert_array_equal(out, X.astype(ml_dtypes.bfloat16).astype(np.float32))


# -- issue 19.9: sparse and meta tensors, SciPy sparse matrices --------------------------------


def _every_place_refused(backend, bad, error, match):
    """``bad`` as X, y, validation X and y, and in evaluate/predict: refused, nothing moved."""
    X, y = _xy()
    model = _net("float32", backend=backend)
    _assert_all_refused(model, bad, y, error, match.replace("NAME", "X"))
    calls = {
        "y": (lambda: model.fit(X, bad, verbose=0), "y"),
        "X_val": (lambda: model.fit(X, y, validation_data=(bad, y), verbose=0), "X_val"),
        "y_val": (lambda: model.fit(X, y, validation_data=(X, bad), verbose=0), "y_val"),
        "evaluate y": (lambda: model.evaluate(X, bad), "y"),
    }
    for call, name in calls.values():
        with pytest.raises(error, match=match.replace("NAME", name)):
            call()
    assert not model.built or model.optimizer.iterations == 0


@needs_torch
@pytest.mark.parametrize("layout", ["coo", "csr", "csc"])
@pytest.mark.parametrize("backend", ["numpy", "torch"])
def test_torch_sparse_tensors_are_refused(layout, backend):
    """They used to reach torch: "Could not run 'aten::amin' ... 'SparseCPU' backend"."""
    import torch

    dense = torch.ones(N, D)
    bad = {"coo": dense.to_sparse, "csr": dense.to_sparse_csr, "csc": dense.to_sparse_csc}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "sparse CSR support is in beta"
        sparse = bad[layout]()
    match = (
        rf"NAME is a sparse tensor \(layout torch\.sparse_{layout}\).*not supported"
        r".*NAME\.to_dense\(\)"
    )
    _every_place_refused(backend, sparse, TypeError, match)


@needs_torch
@pytest.mark.parametrize("backend", ["numpy", "torch"])
def test_torch_meta_tensors_are_refused(backend):
    """They used to fail inside torch: "Tensor.item() cannot be called on meta tensors"."""
    import torch

    meta = torch.ones(N, D, device="meta")
    X, y = _xy()
    match = r"NAME is a tensor on the meta device.*not supported.*real device"
    model = _net(backend=backend)
    _assert_all_refused(model, meta, y, ValueError, match.replace("NAME", "X"))
    # the data checks run before the model's device check: a meta y on a torch model gets
    # the refusal of meta tensors, not advice to move the model to 'torch:meta'
    for call, name in [
        (lambda: model.fit(X, y, validation_data=(meta, y), verbose=0), "X_val"),
        (lambda: model.fit(X, y, validation_data=(X, meta[:, 0]), verbose=0), "y_val"),
        (lambda: model.fit(X, meta[:, 0], verbose=0), "y"),
        (lambda: model.evaluate(X, meta[:, 0]), "y"),
    ]:
        with pytest.raises(ValueError, match=match.replace("NAME", name)):
            call()


@pytest.mark.parametrize("kind", ["csr_matrix", "csr_array", "coo_matrix"])
def test_scipy_sparse_matrices_are_refused_by_name(kind):
    sparse = pytest.importorskip("scipy.sparse")
    bad = getattr(sparse, kind)(np.ones((N, D)))
    match = rf"NAME is a SciPy sparse matrix \({kind}\).*dense arrays only.*NAME\.toarray\(\)"
    _every_place_refused("numpy", bad, TypeError, match)


# -- issue 19.11: masked arrays ---------------------------------------------------------------


def test_masked_arrays_with_masked_values_are_refused(backend):
    """np.asarray drops the mask: the hidden values used to be trained on, silently."""
    X, y = _xy()
    mask = np.zeros(X.shape, dtype=bool)
    mask[3, 2] = True
    bad = np.ma.masked_array(X, mask=mask)
    match = (
        r"NAME is a NumPy masked array with 1 masked value\(s\) "
        r"\(the first at index \(3, 2\)\).*Fill them"
    )
    _every_place_refused(backend.spec, bad, ValueError, match)
    bad_y = np.ma.masked_array(y, mask=np.arange(N) == 5)
    model = _net("float32", backend=backend.spec)
    with pytest.raises(ValueError, match=r"y is a NumPy masked array .*index \(5\)"):
        model.fit(X, bad_y, verbose=0)
    with pytest.raises(ValueError, match=r"weights for .* is a NumPy masked array"):
        model.set_weights([np.ma.masked_array(w, mask=True) for w in model.get_weights()])


def test_masked_arrays_with_nothing_masked_are_their_data():
    X, y = _xy()
    numpy = bp.backend.resolve("numpy")
    expected = _fit_predict(numpy, X, y, fit=True)
    got = _fit_predict(numpy, np.ma.masked_array(X), np.ma.masked_array(y), fit=True)
    for a, b in zip(got[0], expected[0], strict=True):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(got[2], expected[2])


# -- inputs of any rank (issue 22) ----------------------------------------------------------------


def test_check_x_takes_samples_of_any_rank_and_locates_a_nan_by_its_index(backend):
    from backprop.data import check_X

    X = np.zeros((4, 3, 2, 2))
    assert check_X(X).shape == (4, 3, 2, 2)  # no model shape yet: any rank from 2
    assert check_X(X, input_shape=(3, 2, 2)).shape == (4, 3, 2, 2)
    X[2, 1, 0, 1] = np.inf
    with pytest.raises(ValueError, match=r"the first: inf at index \(2, 1, 0, 1\)"):
        check_X(backend.asarray(X, backend.dtype("float32")), dtype="float32")
    with pytest.raises(ValueError, match=r"Expected X to be of shape \(n_samples, 3, 2, 2\)"):
        check_X(np.zeros(12), input_shape=(3, 2, 2))
    with pytest.raises(ValueError, match=r"model's first layer 'c' .* X.reshape\(-1, 3, 2, 2\)"):
        check_X(np.zeros((4, 12)), input_shape=(3, 2, 2), layer="c")
    with pytest.raises(ValueError, match=r"X is empty: received shape \(4, 0, 2\)"):
        check_X(np.zeros((4, 0, 2)))


def test_a_kl_divergence_target_of_the_wrong_width_is_named_as_such():
    model = bp.Sequential([bp.layers.Dense(3, "softmax", input_dim=1)], seed=0)
    model.compile(loss="kl_divergence")
    with pytest.raises(ValueError, match=r"kl_divergence expects y to be rows of probabilities"):
        model.evaluate(np.ones((3, 1)), np.array([[0.2, 0.8]] * 3))
    model.compile(loss="categorical_crossentropy")
    with pytest.raises(ValueError, match=r"categorical_crossentropy expects one-hot y"):
        model.evaluate(np.ones((3, 1)), np.array([[0.2, 0.8]] * 3))
