"""Checks on user input, run once per call before anything touches the model, and its way to it.

Bad input raises ``ValueError``/``TypeError`` saying what was expected and what was received,
before any array reaches a layer: a wrong shape never crashes deep inside a matmul and a
rejected call never changes the weights. The checks run on the host for host data and with
one reduction (one synchronisation per call, never per step) for arrays already on a device.
They cost time and memory in proportion to the data but make no copy of it: the finiteness
check of a 600 MiB array must not need another 600 MiB.

A model's ``fit``, ``evaluate`` and ``predict`` run :func:`check_inputs` (the data checks, then
the device check of :func:`check_device`) and then :func:`to_device`, which puts the checked
arrays on the model's backend in the layout of its loss.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from array_api_compat import array_namespace

from .._checks import is_real
from ..backend import array_backend_name, backend_of, to_numpy

Array = Any

# Rows of host data are checked in blocks of about this many bytes: small enough to stay in
# the CPU cache between the min and the max pass over a block (one trip to memory per element)
_BLOCK_BYTES = 2**20


def check_positive_int(value: Any, name: str, *, allow_none: bool = False) -> None:
    """Raise unless ``value`` is an int >= 1 (bools and floats are refused).

    Parameters
    ----------
    value : object
        The value to check (a Python or NumPy integer).
    name : str
        The argument's name, used in the error message.
    allow_none : bool, default False
        Whether None is accepted.

    Returns
    -------
    None

    Raises
    ------
    TypeError
        If ``value`` is not an integer (or None when ``allow_none``); bools are refused.
    ValueError
        If ``value`` is an integer below 1.
    """
    if value is None and allow_none:
        return
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise TypeError(
            f"{name} must be a positive integer{' or None' if allow_none else ''}, "
            f"received {name}={value!r} ({type(value).__name__})."
        )
    if value < 1:
        raise ValueError(f"{name} must be a positive integer, received {name}={value!r}.")


def check_fraction(value: Any, name: str) -> float:
    """Raise unless ``value`` is a number in [0, 1).

    Parameters
    ----------
    value : real number
        The value to check (a Python or NumPy number).
    name : str
        The argument's name, used in the error message.

    Returns
    -------
    float
        ``value`` as a Python float.

    Raises
    ------
    TypeError
        If ``value`` is a bool, not an int or float, or NaN.
    ValueError
        If ``value`` is outside [0, 1).
    """
    if not is_real(value) or math.isnan(value):  # NumPy scalars too (np.float32(0.1))
        raise TypeError(f"{name} must be a float in [0, 1), received {name}={value!r}.")
    if not 0.0 <= value < 1.0:
        raise ValueError(f"{name} must be in [0, 1), received {name}={value!r}.")
    return float(value)


def as_array(a: Any, name: str) -> Any:
    """Host data as a numeric NumPy array; arrays of a supported library are returned as is.

    Parameters
    ----------
    a : array_like
        Host data (lists, NumPy arrays, scalars) or an array of any supported library.
    name : str
        The argument's name, used in error messages.

    Returns
    -------
    array
        ``a`` itself for a non-NumPy array of a supported library (bfloat16 converted to
        float32 and bool to uint8, in its library and on its device: NumPy has no bfloat16,
        the Array API no minimum of booleans), else ``np.asarray(a)`` (same shape) of a
        boolean, integer or floating dtype (ml_dtypes' bfloat16 converted to float32).

    Raises
    ------
    TypeError
        If ``a`` is None, or host data cannot be made an array (e.g. ragged lists) or is not
        numeric, or ``a`` is a SciPy sparse matrix or a sparse tensor.
    ValueError
        If ``a`` is a masked array with masked values, or a tensor on the meta device.
    """
    if a is None:
        raise TypeError(f"{name} must be an array, received None.")
    _refuse_unsupported_layout(a, name)
    if array_backend_name(a) not in (None, "numpy"):
        return _without_host_less_dtype(a)
    try:
        out = np.asarray(a)
    except (ValueError, TypeError) as exc:  # ragged lists and the like
        raise TypeError(
            f"{name} must be a numeric array, received {type(a).__name__}: {exc}"
        ) from None
    if out.ndim == 0 and out.dtype.kind not in "biuf":
        # NumPy wraps what it cannot read as an array (a dict, a sparse matrix, a file name)
        # in a 0-d array: "convert with astype" would be the wrong advice
        hint = f" For a sparse matrix pass {name}.toarray()." if hasattr(a, "toarray") else ""
        raise TypeError(f"{name} must be an array of numbers, received {type(a).__name__}.{hint}")
    if out.dtype.kind == "V" and out.dtype.name == "bfloat16":
        # ml_dtypes' bfloat16 (what np.asarray makes of a JAX bfloat16 array): every value
        # is exact in float32, which every library can read, as float16 is read today
        out = out.astype(np.float32)
    if out.dtype.kind not in "biuf":
        raise TypeError(
            f"{name} must be numeric (floats or integers), received dtype {out.dtype} "
            f"({_kind_word(out.dtype.kind)}). Convert it first, e.g. {name}.astype('float32')."
        )
    return out


def _refuse_unsupported_layout(a: Any, name: str) -> None:
    """Refuse arrays whose values NumPy would read wrongly or not at all.

    A masked array with masked entries (``np.asarray`` drops the mask, so the hidden values
    would be trained on), a SciPy sparse matrix, and a torch sparse or meta tensor (no
    library here computes on them: they would fail deep inside torch). Torch is recognised by
    its attributes (``layout``, ``is_meta``), not imported: this module names no array
    library but NumPy.

    Parameters
    ----------
    a : object
        The argument, not None.
    name : str
        The argument's name, used in error messages.

    Returns
    -------
    None

    Raises
    ------
    TypeError
        For a SciPy sparse matrix or a torch sparse tensor.
    ValueError
        For a masked array with masked entries, or a meta tensor (which holds no values).
    """
    if isinstance(a, np.ma.MaskedArray):
        mask = np.ma.getmaskarray(a)
        if mask.any():  # an array with nothing masked loses nothing: it is its data
            where = ", ".join(str(int(i)) for i in np.argwhere(mask)[0])
            raise ValueError(
                f"{name} is a NumPy masked array with {int(mask.sum())} masked value(s) "
                f"(the first at index ({where})). backprop has no notion of missing values "
                "and would train on the values hidden under the mask. Fill them first (e.g. "
                f"{name}.filled(value), or impute them) or drop those rows."
            )
        return
    kind = type(a).__name__
    if type(a).__module__.startswith("scipy.sparse"):
        raise TypeError(
            f"{name} is a SciPy sparse matrix ({kind}); backprop computes on dense arrays "
            f"only. Pass {name}.toarray() (mind the memory: every zero is stored)."
        )
    layout = str(getattr(a, "layout", ""))
    if "sparse" in layout:  # torch.sparse_coo, sparse_csr, sparse_csc, sparse_bsr, ...
        raise TypeError(
            f"{name} is a sparse tensor (layout {layout}), which is not supported: backprop "
            f"computes on dense arrays only. Pass {name}.to_dense()."
        )
    if getattr(a, "is_meta", False) is True:
        raise ValueError(
            f"{name} is a tensor on the meta device, which holds a shape but no values; "
            "meta tensors are not supported. Materialise the data it stands for on a real "
            "device (e.g. 'cpu' or 'cuda') and pass that tensor."
        )


def _without_host_less_dtype(a: Any) -> Any:
    """``a`` (an array of a library other than NumPy), its dtype made one NumPy can read.

    bfloat16 has no NumPy dtype (torch cannot hand it to NumPy at all) and booleans have no
    minimum in the Array API standard: bfloat16 becomes float32 (exact: bfloat16 is float32
    with a shorter mantissa) and bool becomes uint8 (exact), in ``a``'s own library and on its
    device, as NumPy's float16 and bool are accepted and converted later.
    """
    dtype = a.dtype
    if str(dtype).rpartition(".")[2] == "bfloat16":  # torch.bfloat16, jax's bfloat16
        xp = array_namespace(a)
        return xp.astype(a, xp.float32)
    xp = array_namespace(a)
    if xp.isdtype(dtype, "bool"):
        return xp.astype(a, xp.uint8)
    return a


def _kind_word(kind: str) -> str:
    return {"U": "strings", "S": "bytes", "O": "Python objects", "c": "complex numbers"}.get(
        kind, "not numbers"
    )


def _numeric_device_array(a: Any, name: str) -> Any:
    xp = array_namespace(a)
    if not (xp.isdtype(a.dtype, "real floating") or xp.isdtype(a.dtype, "integral")):
        raise TypeError(f"{name} must be a real numeric array, received dtype {a.dtype}.")
    return xp


def check_X(
    X: Any,
    n_features: int | None = None,
    name: str = "X",
    dtype: str = "float64",
    input_shape: tuple[int, ...] | None = None,
    layer: str | None = None,
) -> Any:
    """Validate features: numeric, ``(n_samples, *input_shape)``, non-empty, finite.

    Parameters
    ----------
    X : array_like
        Host data or an array of any supported library.
    n_features : int, optional
        The number of features the model expects (short for ``input_shape=(n_features,)``).
    name : str, default "X"
        The argument's name, used in error messages.
    dtype : str, default "float64"
        The model's dtype; values beyond its range are refused.
    input_shape : tuple of int, optional
        The shape of one sample the model expects, e.g. ``(28, 28, 1)``; without it (and
        without ``n_features``) any shape of rank 2 or more is accepted.
    layer : str, optional
        The name of the model's first layer, for the messages.

    Returns
    -------
    array of shape (n_samples, *input_shape)
        A NumPy array for host input, else ``X`` itself.

    Raises
    ------
    TypeError
        If ``X`` is None or not numeric.
    ValueError
        If ``X`` is 0-D or 1-D, is empty, does not have the shape ``(n, *input_shape)`` (or
        ``n_features`` columns), or holds NaN, infinite values or values beyond the range of
        ``dtype``; the message names the index of the first.
    """
    if X is None:
        raise TypeError(f"{name} must be an array of shape (n_samples, n_features); received None.")
    X = as_array(X, name)
    xp = _numeric_device_array(X, name) if not isinstance(X, np.ndarray) else np
    if input_shape is None and n_features is not None:
        input_shape = (n_features,)
    if X.ndim < 2:
        hint = (
            f" If each sample has a single feature, use {name}.reshape(-1, 1)."
            if X.ndim == 1
            else ""
        )
        expected = "2-D of shape (n_samples, n_features)"
        if input_shape is not None and len(input_shape) > 1:
            expected = f"of shape (n_samples, {', '.join(map(str, input_shape))})"
        raise ValueError(
            f"Expected {name} to be {expected}, received shape {tuple(X.shape)}.{hint}"
        )
    if 0 in tuple(X.shape):
        raise ValueError(f"{name} is empty: received shape {tuple(X.shape)}.")
    if input_shape is not None and tuple(X.shape[1:]) != tuple(input_shape):
        _refuse_shape(X, name, tuple(input_shape), layer)
    _check_finite(X, xp, name, dtype)
    return X


def _refuse_shape(X: Any, name: str, input_shape: tuple[int, ...], layer: str | None) -> None:
    """Raise the ValueError for ``X`` whose samples are not of shape ``input_shape``."""
    received = tuple(X.shape)
    if len(input_shape) == 1 and X.ndim == 2:  # a table with other columns: as before
        raise ValueError(
            f"The model expects {name} with {input_shape[0]} features, received shape {received}."
        )
    expected = ", ".join(str(d) for d in ("n", *input_shape))
    who = f"The model's first layer {layer!r}" if layer else "The model"
    hint = ""
    if input_shape[-1] == 1 and received[1:] == input_shape[:-1]:
        hint = f" The samples lack the channel axis: pass {name}[..., None]."
    elif math.prod(received[1:]) == math.prod(input_shape):
        hint = (
            f" The samples have as many values as the model expects: if they are in "
            f"row-major order, pass {name}.reshape(-1, {', '.join(map(str, input_shape))})."
        )
    raise ValueError(
        f"{who} expects {name} of shape ({expected}) (input_shape={input_shape}), received "
        f"shape {received}.{hint}"
    )


def _check_finite(a: Any, xp: Any, name: str, dtype: str = "float64") -> None:
    """Refuse NaN, +-inf and values the model's dtype cannot hold, making no copy of ``a``.

    Parameters
    ----------
    a : array of shape (n,) or (n, d)
        A NumPy array or an array of a supported library, already checked to be numeric.
    xp : module
        ``numpy`` for a NumPy array, else ``a``'s namespace.
    name : str
        The argument's name, used in error messages.
    dtype : str, default "float64"
        The model's dtype.

    Returns
    -------
    None

    Raises
    ------
    ValueError
        If ``a`` holds NaN or infinite values, or values beyond the range of ``dtype``; the
        message names the first such value and its row (and column).

    Notes
    -----
    Integers and booleans are always finite and within float32's range. A float array is
    accepted when its minimum is >= -limit and its maximum <= limit (a NaN fails both), where
    limit is the largest value of ``a``'s own dtype (so the test is "finite", and nothing is
    ever cast), or of the model's dtype where ``a``'s dtype is wider (float64 data for a
    float32 model: values above float32's largest would become inf). Min and max are
    reductions: unlike ``all(abs(a) <= limit)`` they make no temporary the size of ``a``.
    NumPy data is checked in blocks of rows that stay in cache between the two passes; an
    array on a device with one reduction and one synchronisation for the whole array.
    """
    if not _is_float(a, xp) or 0 in tuple(a.shape):
        return
    limit = _limit(a, xp, dtype)
    if xp is np:
        # blocks follow the memory layout: a Fortran-ordered array (what np.asarray makes of
        # many DataFrames) is checked as its transpose, whose rows are contiguous
        transposed = a.ndim == 2 and a.flags.f_contiguous and not a.flags.c_contiguous
        view = a.T if transposed else a
        step = max(1, _BLOCK_BYTES // max(1, view[:1].nbytes))
        for start in range(0, view.shape[0], step):
            block = view[start : start + step]
            if not (block.min() >= -limit and block.max() <= limit):
                # the first bad value in row-major order: in this block of rows, or anywhere
                # in a transposed array (where a block is a block of columns)
                row, col, value = _first_bad(a if transposed else block, np, limit)
                _refuse(name, dtype, limit, row + (0 if transposed else start), col, value)
        return
    if not bool((xp.min(a) >= -limit) & (xp.max(a) <= limit)):
        _refuse(name, dtype, limit, *_first_bad(a, xp, limit))


def _limit(a: Any, xp: Any, dtype: str) -> float:
    """The largest magnitude ``a`` may hold: its own dtype's, or the model's if narrower.

    The result is exactly representable in ``a``'s dtype, so comparing ``a`` with it casts
    nothing and cannot overflow (a float64 limit cast to float32 would be inf, and inf <= inf).
    """
    own, model = (np if xp is np else xp).finfo(a.dtype), np.finfo(dtype)
    return float(model.max if own.bits > model.bits else own.max)


def _first_bad(a: Any, xp: Any, limit: float) -> tuple[int, Any, np.generic]:
    """Row, column (None for 1-D) and value of the first entry outside [-limit, limit].

    The value is a NumPy scalar of ``a``'s dtype. Only on the way to an error: per-row
    reductions where ``a`` is, then the few values that locate the entry come to the host.
    For ``a`` of rank 3 or more the "column" is the entry's index within its sample (a tuple).
    """
    if a.ndim > 2:  # each sample read as one row, in row-major order
        row, col, value = _first_bad(xp.reshape(a, (a.shape[0], -1)), xp, limit)
        return row, tuple(int(i) for i in np.unravel_index(col, tuple(a.shape[1:]))), value
    if a.ndim == 1:
        row_ok = to_numpy((a >= -limit) & (a <= limit))
    else:
        row_ok = to_numpy((xp.min(a, axis=1) >= -limit) & (xp.max(a, axis=1) <= limit))
    row = int(np.argmin(row_ok))  # the first False
    if a.ndim == 1:
        return row, None, to_numpy(a[row])[()]
    values = to_numpy(a[row, :])
    col = int(np.argmin((values >= -limit) & (values <= limit)))
    return row, col, values[col]


def _refuse(name: str, dtype: str, limit: float, row: int, col: Any, value: np.generic) -> None:
    """Raise the ValueError for the bad ``value`` at ``row`` (and ``col``) of ``name``."""
    # judged and printed in its own dtype: a long double beyond float64's range is finite
    # there, and a Python float of it would read inf
    if isinstance(col, tuple):
        where = f"{value!s} at index {(row, *col)}"
    else:
        where = f"{value!s} at row {row}" + ("" if col is None else f", column {col}")
    if not np.isfinite(value):
        raise ValueError(
            f"{name} contains NaN or infinite values (the first: {where}); clean or impute "
            "them first."
        )
    advice = "rescale the data" + (" or use dtype='float64'" if dtype == "float32" else "")
    raise ValueError(
        f"{name} holds values beyond the range of the model's dtype {dtype} "
        f"(|value| > {limit:g}; the first: {where}); {advice}."
    )


def check_targets(
    y: Any, n_samples: int, name: str = "y", dtype: str = "float64", x_name: str = "X"
) -> tuple[Any, Any]:
    """``(y, xp)``: ``y`` numeric, 1-D or 2-D, of ``n_samples`` rows, finite.

    What :func:`check_y` checks before the loss's layout (and what a streamed batch's targets
    get before the loss is known); ``x_name`` names the inputs in the message.
    """
    y = as_array(y, name)
    xp = _numeric_device_array(y, name) if not isinstance(y, np.ndarray) else np
    if y.ndim not in (1, 2):
        raise ValueError(f"Expected {name} to be 1-D or 2-D, received shape {tuple(y.shape)}.")
    if y.shape[0] != n_samples:
        raise ValueError(
            f"{x_name} and {name} must have the same number of rows: {x_name} has "
            f"{n_samples}, {name} has {y.shape[0]} (shape {tuple(y.shape)})."
        )
    _check_finite(y, xp, name, dtype)
    return y, xp


def check_y(
    y: Any,
    n_samples: int,
    kind: str,
    n_outputs: int,
    name: str = "y",
    dtype: str = "float64",
    loss: str | None = None,
) -> Any:
    """Validate labels against the loss's kind and the model's output width.

    Parameters
    ----------
    y : array_like
        Labels, host data or an array of any supported library.
    n_samples : int
        Rows of X; ``y`` must have as many.
    kind : {"binary", "categorical", "sparse", "regression"}
        What the loss expects (``Loss.kind``).
    n_outputs : int
        Units of the last layer.
    name : str, default "y"
        The argument's name, used in error messages.
    dtype : str, default "float64"
        The model's dtype; values beyond its range are refused.
    loss : str, optional
        The compiled loss's name, for the messages (default: the usual loss of ``kind``).

    Returns
    -------
    array of shape (n_samples,) or (n_samples, n_outputs)
        A NumPy array for host input, else ``y`` itself (not reshaped); ``"sparse"`` labels
        have shape ``(n_samples,)`` or ``(n_samples, 1)``.

    Raises
    ------
    TypeError
        If ``y`` is None or not numeric.
    ValueError
        If ``y`` is not 1-D or 2-D, has other than ``n_samples`` rows, holds NaN, infinite
        or out-of-range values, or does not fit ``kind`` and ``n_outputs`` (shape, class
        indices outside [0, n_outputs), or values outside [0, 1] for cross-entropies).
    """
    if y is None:
        raise TypeError(
            f"{name} must be an array of shape (n_samples,) or (n_samples, n_outputs); "
            "received None."
        )
    y, xp = check_targets(y, n_samples, name, dtype)
    width = 1 if y.ndim == 1 else y.shape[1]
    if kind == "sparse":
        if width != 1:
            raise ValueError(
                f"sparse_categorical_crossentropy expects integer class labels of shape (n,) "
                f"or (n, 1), received shape {tuple(y.shape)}. For one-hot labels use "
                "loss='categorical_crossentropy'."
            )
        lo, hi = float(xp.min(y)), float(xp.max(y))
        integral = bool(xp.all(xp.floor(y) == y)) if _is_float(y, xp) else True
        if not integral or lo < 0 or hi >= n_outputs:
            raise ValueError(
                f"{name} must hold integer classes in [0, {n_outputs - 1}] for a model with "
                f"{n_outputs} outputs, received values in [{lo:g}, {hi:g}]"
                f"{'' if integral else ' including non-integers'}."
            )
        return y
    if kind == "categorical" and (y.ndim != 2 or width != n_outputs):
        compiled = loss or "categorical_crossentropy"
        if compiled == "kl_divergence":
            raise ValueError(
                f"kl_divergence expects {name} to be rows of probabilities of shape "
                f"(n, {n_outputs}): each row the target distribution over the {n_outputs} "
                f"outputs, summing to 1. Received shape {tuple(y.shape)}."
            )
        raise ValueError(
            f"{compiled} expects one-hot {name} of shape (n, {n_outputs}), "
            f"received shape {tuple(y.shape)}. For integer labels use "
            "loss='sparse_categorical_crossentropy' or bp.datasets.one_hot(y)."
        )
    if width != n_outputs:
        raise ValueError(
            f"The model has {n_outputs} output(s) but {name} has shape {tuple(y.shape)}; "
            f"expected ({n_samples},{' ' + str(n_outputs) if n_outputs > 1 else ''}) "
            f"or ({n_samples}, {n_outputs})."
        )
    if kind in ("binary", "categorical"):
        lo, hi = float(xp.min(y)), float(xp.max(y))
        if lo < 0 or hi > 1:
            raise ValueError(
                f"{kind} cross-entropy expects {name} in [0, 1], received values in "
                f"[{lo:g}, {hi:g}]."
            )
    return y


def _is_float(a: Any, xp: Any) -> bool:
    if xp is np:
        return a.dtype.kind == "f"
    return xp.isdtype(a.dtype, "real floating")


def check_device(a: Any, backend: Any, name: str) -> None:
    """Arrays of the model's library must be on the model's device (no silent hops).

    Parameters
    ----------
    a : array_like
        Checked data (host data passes: it is copied to the device later).
    backend : Backend
        The model's backend.
    name : str
        The argument's name, used in the error message.

    Raises
    ------
    ValueError
        If ``a`` is an array of the backend's library on another device.
    """
    if array_backend_name(a) == backend.name and not backend.owns(a):
        where = backend_of(a).spec
        raise ValueError(
            f"{name} is on {where} but the model is on {backend.spec}. Move one of them: "
            f"model.to({where!r}), or pass {name} from the host (a NumPy array)."
        )


def check_inputs(
    X: Any,
    y: Any,
    *,
    n_features: int | None,
    backend: Any,
    dtype: str,
    loss_kind: str | None = None,
    n_outputs: Any = None,
    name: str = "X",
    input_shape: tuple[int, ...] | None = None,
    layer: str | None = None,
    loss: str | None = None,
) -> tuple[Any, Any]:
    """:func:`check_X` and :func:`check_y`, then :func:`check_device` on what they return.

    The data checks come first: what no device can hold (a meta tensor, a sparse one) is
    refused as such, not told to move.

    Parameters
    ----------
    X, y : array_like
        Features and targets (``y`` may be None: prediction).
    n_features : int or None
        The model's input width (None: not built yet, any width).
    backend : Backend
        The model's backend.
    dtype : str
        The model's dtype name; values beyond its range are refused.
    loss_kind : str, optional
        ``Loss.kind``; needed when ``y`` is given.
    n_outputs : callable, optional
        ``n_outputs(sample_shape) -> int``: the model's output width for samples of ``X``'s
        shape (``X.shape[1:]``); needed when ``y`` is given.
    name : str, default "X"
        The name of ``X`` in messages; ``y``'s is ``"y"`` with the same suffix (``X_val``,
        ``y_val``).
    input_shape : tuple of int, optional
        The shape of one sample the model expects (instead of ``n_features``).
    layer : str, optional
        The name of the model's first layer, for the messages.
    loss : str, optional
        The compiled loss's name, for the messages about ``y``.

    Returns
    -------
    (X, y)
        As :func:`check_X` and :func:`check_y` return them (y None when not given).
    """
    X = check_X(X, n_features, name=name, dtype=dtype, input_shape=input_shape, layer=layer)
    check_device(X, backend, name)
    if y is not None:
        y_name = "y" + name[1:]
        n_out = n_outputs(tuple(X.shape[1:]))
        y = check_y(y, X.shape[0], loss_kind, n_out, name=y_name, dtype=dtype, loss=loss)
        check_device(y, backend, y_name)
    return X, y


def to_device(X: Any, y: Any, backend: Any, dtype: Any, loss: Any, n_outputs: int) -> tuple:
    """Checked ``X`` (and ``y``, in the loss's layout) as arrays of ``backend``.

    Parameters
    ----------
    X, y : array_like
        What :func:`check_inputs` returned (``y`` may be None).
    backend : Backend
        Where the arrays go.
    dtype : dtype
        The model's floating dtype (labels of a ``"sparse"`` loss go as the backend's
        integers, then to one-hot rows of ``dtype``).
    loss : Loss or None
        Its ``prepare_targets`` gives the targets their layout; needed when ``y`` is given.
    n_outputs : int
        The model's output width.

    Returns
    -------
    (X, Y)
        ``X`` in ``dtype`` and ``Y`` as the loss takes it (None when ``y`` is None).
    """
    Y = None
    if y is not None:
        label_dtype = backend.int_dtype if loss.kind == "sparse" else dtype
        Y = loss.prepare_targets(backend.asarray(y, label_dtype), n_outputs, dtype, backend.xp)
    return backend.asarray(X, dtype), Y


# -- sample and class weights ------------------------------------------------------------------


def check_sample_weight(sample_weight: Any, n: int, name: str = "sample_weight") -> np.ndarray:
    """Per-row weights as a float64 NumPy vector of length ``n``, checked before training.

    Parameters
    ----------
    sample_weight : array_like, shape (n,) or (n, 1)
        One weight per sample: finite numbers >= 0 (Keras's shapes).
    n : int
        The number of samples.
    name : str
        The argument's name, for the messages.

    Returns
    -------
    numpy.ndarray, shape (n,)

    Raises
    ------
    TypeError
        If the weights are not numeric.
    ValueError
        For another shape or length, or a weight that is negative, NaN or infinite.
    """
    try:
        w = np.asarray(to_numpy(as_array(sample_weight, name)))
    except TypeError as e:
        raise TypeError(
            f"{name} must be an array of numbers, one per sample; received "
            f"{type(sample_weight).__name__} ({e})."
        ) from None
    if w.dtype.kind not in "biuf":
        raise TypeError(f"{name} must hold numbers, received an array of dtype {w.dtype}.")
    if w.ndim == 2 and w.shape[1] == 1:
        w = w[:, 0]
    if w.ndim != 1 or w.shape[0] != n:
        raise ValueError(
            f"{name} must have one weight per sample, shape ({n},), received shape "
            f"{w.shape}. Pass an array as long as the data."
        )
    w = w.astype(np.float64)
    bad = np.flatnonzero(~np.isfinite(w) | (w < 0))
    if bad.size:
        i = int(bad[0])
        raise ValueError(
            f"{name} must be finite and >= 0, received {w[i]!r} at row {i}. Give every "
            "sample a finite weight >= 0 (0 leaves a sample out of the loss)."
        )
    return w


def check_weights(
    sample_weight: Any, class_weight: Any, n: int | None, what: str
) -> tuple[np.ndarray | None, dict[int, float] | None]:
    """``(sample_weight, class_weight)`` checked: not both (Keras 3 refuses), each as checked.

    ``n`` is the number of rows the sample weights must have (None: ``sample_weight`` is
    only compared with ``class_weight``, as a store's weights are read with its rows);
    ``what`` names the call in the message (``"fit()"``).
    """
    if sample_weight is not None and class_weight is not None:
        raise ValueError(
            f"{what} takes sample_weight or class_weight, not both. Multiply the class "
            "weights into sample_weight yourself and pass that alone."
        )
    if sample_weight is not None and n is not None:
        sample_weight = check_sample_weight(sample_weight, n)
    if class_weight is not None:
        class_weight = check_class_weight(class_weight)
    return sample_weight, class_weight


def check_class_weight(class_weight: Any) -> dict[int, float]:
    """A ``{class: weight}`` dict with integer classes and finite weights >= 0.

    As in Keras, classes missing from the dict weigh 1 and classes the labels never hold
    are ignored.

    Raises
    ------
    TypeError
        If ``class_weight`` is not a dict, or a class is not an integer or a weight not a
        number.
    ValueError
        For a weight that is negative, NaN or infinite, or a negative class.
    """
    if not isinstance(class_weight, dict):
        raise TypeError(
            "class_weight must be a dict {class index: weight}, e.g. {0: 1.0, 1: 5.0}; "
            f"received {type(class_weight).__name__}."
        )
    out: dict[int, float] = {}
    for k, v in class_weight.items():
        if isinstance(k, bool) or not isinstance(k, int | np.integer):
            raise TypeError(
                f"class_weight keys must be integer class indices, received {k!r}. Use the "
                "class's index (the label for sparse/binary labels, the one-hot column)."
            )
        if k < 0:
            raise ValueError(f"class_weight keys must be class indices >= 0, received {k}.")
        if isinstance(v, bool) or not is_real(v):
            raise TypeError(f"class_weight[{k}] must be a number, received {v!r}.")
        if not math.isfinite(float(v)) or float(v) < 0:
            raise ValueError(f"class_weight[{k}] must be finite and >= 0, received {v!r}.")
        out[int(k)] = float(v)
    return out


def split_weights(Y: Any, n_outputs: int) -> tuple[Any, Any]:
    """The targets and the sample weights of device targets ``Y``, shape (n, k) or (n, k + 1).

    A fit or evaluate with sample weights carries them as one more column of the targets,
    so every engine gathers them with the rows (shuffled, sliced, copied into a captured
    step's buffer, split over the ranks) without knowing of them. Without weights ``Y`` has
    ``n_outputs`` columns and comes back as it is (the shape decides, statically: a traced
    or recorded step takes the same branch every time).

    Parameters
    ----------
    Y : array, shape (n, n_outputs) or (n, n_outputs + 1)
    n_outputs : int
        The model's outputs.

    Returns
    -------
    targets : array, shape (n, n_outputs)
    weights : array of shape (n,), or None
    """
    if Y.shape[-1] == n_outputs:
        return Y, None
    return Y[:, :-1], Y[:, -1]


def class_weight_to_sample_weight(class_weight: dict[int, float], Y: np.ndarray) -> np.ndarray:
    """Each row's weight from its class, as Keras's ``class_weight_to_sample_weights``.

    ``Y`` holds the targets in the loss's layout ``(n, k)``: a single column is rounded to
    the class (binary 0/1 labels), several columns give the class of the largest (one-hot
    rows, and sparse labels once made one-hot). Classes missing from the dict weigh 1.

    Parameters
    ----------
    class_weight : dict
        As :func:`check_class_weight` returns it.
    Y : numpy.ndarray, shape (n, k)

    Returns
    -------
    numpy.ndarray, shape (n,)
    """
    Y = np.asarray(Y)
    if Y.ndim == 1:
        Y = Y[:, None]
    classes = np.round(Y[:, 0]) if Y.shape[1] == 1 else np.argmax(Y, axis=1)
    classes = classes.astype(np.int64)
    return np.array([class_weight.get(int(c), 1.0) for c in classes], dtype=np.float64)
