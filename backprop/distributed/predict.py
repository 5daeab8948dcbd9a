"""Batch prediction over a Dask array: ``model.predict`` on every row chunk, on every worker.

How it works
------------
A :class:`~backprop.Sequential` cannot be pickled (it holds modules such as its array
namespace), so :func:`predict` ships a *spec* instead: the model's config
(``model.get_config()``), its weights as NumPy arrays (``model.get_weights()``), its dtype and a
SHA-256 token of all of these. The spec enters the computation exactly once:

- with a distributed client (given as ``client=``, or the active default client), it is
  scattered to every worker up front, ``client.scatter(..., broadcast=True)``, under a key
  never used before, and the tasks refer to that one future. The futures of the last few
  models are kept, so later calls with the same weights send nothing; a released key is never
  sent again (the scheduler may still be forgetting it);
- otherwise (threaded or synchronous scheduler) it is one key of the task graph, which every
  block task names as a dependency.

On the worker, each block task rebuilds the model from the spec on the backend of its chunk
(NumPy chunks: ``numpy``; CuPy chunks: ``cupy`` on the chunk's GPU) and caches it, keyed by the
token, so a worker builds it once and then only runs ``predict`` on each chunk.

Dask is an optional dependency: ``pip install -e ".[dask]"``.
"""

from __future__ import annotations

import hashlib
import json
import re
import sys
import threading
import uuid
from collections import Counter, OrderedDict
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from .. import layers as _layers
from ..backend import Backend, array_backend_name, backend_of
from ..data import check_positive_int

if TYPE_CHECKING:  # only for the annotations: dask is imported when predict() runs
    import dask.array

    from ..model import Sequential

__all__ = ["predict"]

_INSTALL_HINT = 'pip install -e ".[dask]"  (or: pip install "dask[array,distributed]>=2024.1")'

# The chunk libraries a worker can rebuild the model on. Dask chunks must implement NumPy's
# __array_function__ protocol, which torch, JAX and array_api_strict arrays do not.
_CHUNK_BACKENDS = ("numpy", "cupy")

# Rebuilt models kept per worker process (least recently used dropped first): a few models
# predicting in turn stay warm, and a long-lived worker does not keep every model it ever saw.
_CACHE_SIZE = 4


# ---------------------------------------------------------------------------------------------
# The spec that travels to the workers


@dataclass(frozen=True, eq=False, repr=False)
class _ModelSpec:
    """Everything a worker needs to rebuild a model: plain, picklable values only.

    Attributes
    ----------
    config : dict
        ``model.get_config()``: name, dtype, seed and each layer's class name and config.
    weights : tuple of numpy.ndarray
        ``model.get_weights()``: W1, b1, W2, b2, ... on the host.
    input_dim, output_dim : int
        Number of input features and of outputs.
    token : str
        SHA-256 over the config and the weights: equal tokens mean equal models.
    layer_classes : tuple of type
        The layer classes, pickled along so that a custom ``Layer`` subclass exists on the
        worker when ``backprop.layers.from_config`` looks its name up there.
    """

    config: dict[str, Any]
    weights: tuple[np.ndarray, ...]
    input_dim: int
    output_dim: int
    token: str
    layer_classes: tuple[type, ...]

    @property
    def dtype(self) -> str:
        """The model's dtype name, ``"float32"`` or ``"float64"``."""
        return self.config["dtype"]

    def __repr__(self) -> str:  # short: it shows up in dashboards and task reprs
        n = sum(int(w.size) for w in self.weights)
        return f"_ModelSpec({self.config['name']!r}, {n} params, token={self.token[:12]})"

    def __dask_tokenize__(self) -> tuple[str, str]:
        # dask would otherwise hash the weights on every tokenize; the token already does it
        return ("backprop-model", self.token)

    def __reduce__(self) -> tuple[Any, tuple]:
        # unpickling goes through _unpickle_spec, which counts it: the tests check that a
        # worker receives the weights once, however many chunks it predicts
        return (
            _unpickle_spec,
            (
                self.config,
                self.weights,
                self.input_dim,
                self.output_dim,
                self.token,
                self.layer_classes,
            ),
        )


def _make_spec(model: Sequential) -> _ModelSpec:
    """The spec of a built model (weights copied to the host as NumPy arrays)."""
    config = model.get_config()
    weights = tuple(np.ascontiguousarray(w) for w in model.get_weights())
    h = hashlib.sha256(json.dumps(config, sort_keys=True, default=repr).encode())
    for w in weights:
        h.update(f"|{w.dtype.str}|{w.shape}|".encode())
        h.update(w.tobytes())
    return _ModelSpec(
        config=config,
        weights=weights,
        input_dim=int(model.input_dim),
        output_dim=int(model.output_dim),
        token=h.hexdigest(),
        layer_classes=tuple(type(layer) for layer in model.layers),
    )


# Per-process statistics (read by the tests, e.g. through ``client.run(_cache_info)``).
_stats_lock = threading.Lock()
_builds: Counter[str] = Counter()
_unpickled: Counter[str] = Counter()


def _unpickle_spec(*fields: Any) -> _ModelSpec:
    spec = _ModelSpec(*fields)
    with _stats_lock:
        _unpickled[spec.token] += 1
    return spec


def _cache_info() -> dict[str, dict[str, int]]:
    """Counts of the current process, per model token: models built and specs unpickled.

    Returns
    -------
    dict
        ``{"builds": {token: n}, "unpickled": {token: n}}``.
    """
    with _stats_lock:
        return {"builds": dict(_builds), "unpickled": dict(_unpickled)}


# ---------------------------------------------------------------------------------------------
# The worker side


# One cache per process, each model with its lock: Sequential.forward stores each layer's
# activations on the layer (for backward), so two threads must not run one model object at
# once. (A cache per thread rebuilt the model whenever the worker's pool started a new thread.)
_models: OrderedDict[tuple[str, str], tuple[Sequential, threading.Lock]] = OrderedDict()
_models_lock = threading.Lock()


def _build(spec: _ModelSpec, backend: Backend) -> Sequential:
    """A model rebuilt from ``spec`` on ``backend`` (as ``backprop.io`` rebuilds saved ones)."""
    from ..model import Sequential  # here, not at the top: backprop.model imports a lot

    layers = [_layers.from_config(s["class_name"], s["config"]) for s in spec.config["layers"]]
    model = Sequential(
        layers,
        backend=backend,
        dtype=spec.dtype,
        seed=spec.config["seed"],
        name=spec.config["name"],
    )
    if not model.built:  # the first layer's config may lack input_dim (the model was fitted)
        model.build(spec.input_dim)
    model.set_weights(list(spec.weights))
    with _stats_lock:
        _builds[spec.token] += 1
    return model


def _model_for(spec: _ModelSpec, backend: Backend) -> tuple[Sequential, threading.Lock]:
    """The cached model of ``spec`` on ``backend`` in this process, built on first use."""
    key = (spec.token, backend.spec)
    with _models_lock:
        entry = _models.get(key)
        if entry is None:
            entry = _models[key] = (_build(spec, backend), threading.Lock())
            while len(_models) > _CACHE_SIZE:
                _models.popitem(last=False)
        else:
            _models.move_to_end(key)
    return entry


def _in_whole_array(exc: ValueError, block_info: dict | None) -> ValueError:
    """``exc`` with its "at row r" (a row of the chunk) told as a row of the whole ``X``.

    ``model.predict`` names the row of the array it was given: here, one chunk. The chunk's
    first row comes from Dask's ``block_info``; where the row chunk sizes are unknown (after
    boolean indexing) only the first chunk's is, and the message says how to know the rest.
    """
    match = re.search(r"\bat row (\d+)", str(exc))
    if match is None or not block_info or 0 not in block_info:
        return exc
    row = int(match.group(1))
    start = block_info[0]["array-location"][0][0]
    chunk = block_info[0]["chunk-location"][0]
    if np.isnan(start):
        where = (
            f"at row {row} of row chunk {chunk} (of unknown position in X: its row chunk "
            "sizes are unknown; X.compute_chunk_sizes() finds them)"
        )
    else:
        where = f"at row {int(start) + row} of X (row {row} of row chunk {chunk})"
    text = str(exc)
    return ValueError(text[: match.start()] + where + text[match.end() :])


def _predict_block(
    block: Any, spec: Any, batch_size: int | None, block_info: dict | None = None
) -> Any:
    """``model.predict`` on one row chunk, on the chunk's own library and device.

    Parameters
    ----------
    block : numpy.ndarray or cupy.ndarray, shape (m, n_features)
        One row chunk of ``X``.
    spec : _ModelSpec
        The model to run (the scheduler resolves the spec's key or future to the object).
    batch_size : int or None
        Passed on to ``model.predict``.
    block_info : dict, optional
        Dask's description of the block (``map_blocks`` fills it): where its rows are in ``X``.

    Returns
    -------
    array, shape (m, n_outputs)
        The predictions, of the block's library and device, in the model's dtype.

    Raises
    ------
    ValueError
        If the block holds NaN, infinite or out-of-range values: the message names the row of
        the whole ``X`` (and of the chunk).
    """
    if not isinstance(spec, _ModelSpec):
        # a future of a client reached a scheduler that does not know that client
        raise TypeError(
            f"predict received {type(spec).__name__} instead of the model: the model was "
            "scattered to a distributed client, so compute the result with that client: "
            "client.compute(y).result() or y.compute(scheduler=client)."
        )
    backend = backend_of(block)
    if block.shape[0] == 0:  # dask allows empty chunks; model.predict needs at least one row
        return backend.zeros((0, spec.output_dim), backend.dtype(spec.dtype))
    model, lock = _model_for(spec, backend)
    try:
        with lock:
            return model.predict(block, batch_size=batch_size)
    except ValueError as exc:
        raise _in_whole_array(exc, block_info) from None


# ---------------------------------------------------------------------------------------------
# The client side


def _import_dask() -> Any:
    try:
        import dask
        import dask.array
    except ImportError as exc:
        raise ImportError(
            f"backprop.distributed.predict needs Dask, which is not installed ({exc}). "
            f"Install it with: {_INSTALL_HINT}"
        ) from None
    return dask


def _active_client() -> Any:
    """The default distributed client, or None (distributed is never imported just to ask)."""
    if "distributed" not in sys.modules:  # nobody made a Client in this process
        return None
    from distributed import default_client

    try:
        return default_client()
    except ValueError:  # "No clients found"
        return None


# The futures of the specs scattered lately, per client and token (least recently used
# dropped first). A scattered key is never sent twice: each scatter gets a key of its own, and
# a call reuses a future only while this cache holds it, so its key cannot be in the middle of
# being released. (A fixed key per token, sent again once the last result had dropped it,
# raced the scheduler's release of the old copy: the new one was forgotten with it, and every
# later call failed with "lost dependencies".)
_scattered: OrderedDict[tuple[int, str], Any] = OrderedDict()
_scattered_lock = threading.Lock()


def _scatter_once(client: Any, spec: _ModelSpec) -> Any:
    """A future of ``spec`` held by every worker of ``client``: scattered now, or reused."""
    cache_key = (id(client), spec.token)
    with _scattered_lock:
        future = _scattered.get(cache_key)
        if future is not None and future.client is client and future.status == "finished":
            _scattered.move_to_end(cache_key)
            return future
    # every worker gets the weights now, once, not once per task; under a key never used
    # before
    key = f"backprop-model-{spec.token[:16]}-{uuid.uuid4().hex}"
    future = client.scatter({key: spec}, broadcast=True)[key]
    with _scattered_lock:
        # an entry of another client with the same id (a closed one) or a lost future goes
        _scattered[cache_key] = future
        _scattered.move_to_end(cache_key)
        while len(_scattered) > _CACHE_SIZE:
            _scattered.popitem(last=False)  # released once no result holds it either
    return future


def _as_dask_array(X: Any, da: Any) -> Any:
    """``X`` as a dask array (NumPy/CuPy arrays are wrapped in row chunks), else TypeError."""
    if isinstance(X, da.Array):
        return X
    name = array_backend_name(X)
    if name in _CHUNK_BACKENDS:
        # rows in chunks of Dask's automatic size (array.chunk-size, 128 MiB by default),
        # every column in each chunk: a row needs all its features at once (a wrong number
        # of dimensions is reported by the caller, with the shape)
        chunks = ("auto",) + (-1,) * (X.ndim - 1) if X.ndim else ()
        return da.from_array(X, chunks=chunks)
    hint = ""
    if name is not None:
        hint = f" Dask chunks cannot be {name} arrays: convert X to NumPy (or CuPy) first."
    elif isinstance(X, list | tuple):
        hint = " Wrap it first: numpy.asarray(X)."
    elif hasattr(X, "to_dask_array"):
        hint = " For a Dask DataFrame use X.to_dask_array(lengths=True)."
    raise TypeError(
        "predict expects X as a dask.array.Array (or a NumPy or CuPy array, which is split "
        f"into row chunks), received {type(X).__module__}.{type(X).__qualname__}.{hint}"
    )


def predict(
    model: Sequential,
    X: Any,
    *,
    batch_size: int | None = None,
    client: Any = None,
) -> dask.array.Array:
    """Lazy predictions of ``model`` for every row of ``X``, one task per row chunk.

    Nothing runs until the result is computed (``y.compute()``, ``client.compute(y)``,
    ``y.to_zarr(...)``...). The model's weights go to the workers once, not once per chunk,
    and each worker rebuilds the model once, on the library of its chunks: NumPy chunks run
    on the ``numpy`` backend, CuPy chunks (on workers with GPUs) on ``cupy``, on the chunk's
    device. The backend the model itself lives on does not matter.

    Parameters
    ----------
    model : Sequential
        A built model (``fit`` it, or give its first layer ``input_dim``).
    X : dask.array.Array, numpy.ndarray or cupy.ndarray, shape (n, n_features)
        The inputs, samples in rows, of a boolean, integer or floating dtype (cast to the
        model's dtype on the worker). A NumPy or CuPy array is wrapped with
        ``dask.array.from_array`` in row chunks of Dask's automatic size. A dask array chunked
        along the columns is rechunked to one column chunk (``X.rechunk({1: -1})``, which keeps
        the row chunks): a row's prediction needs all its features in one block. Row chunks
        of unknown size (NaN, e.g. after boolean indexing) are fine.
    batch_size : int, optional
        Rows per forward pass inside each chunk (``model.predict``'s ``batch_size``); a whole
        chunk at once when omitted. Lower it when a chunk's activations do not fit in memory.
    client : distributed.Client, optional
        Scatter the spec of the model to all of this client's workers up front. Without it,
        the active default client is used when there is one; with none, the spec is one key
        of the task graph (threaded and synchronous schedulers; Dask's multiprocessing
        scheduler pickles it with every task). A result that holds a scattered model must be
        computed with that client.

    Returns
    -------
    y_hat : dask.array.Array, shape (n, n_outputs)
        Chunks ``(X.chunks[0], (n_outputs,))``, dtype the model's (float32 or float64), and
        ``meta`` of the chunks' library (NumPy or CuPy).

    Raises
    ------
    ImportError
        If Dask is not installed (``pip install -e ".[dask]"``).
    TypeError
        If ``model`` is not a ``Sequential``, ``X`` is neither a dask array nor a NumPy or
        CuPy array, its chunks are not NumPy or CuPy arrays, its dtype is not numeric, or
        ``client`` has no ``scatter``; if ``batch_size`` is not an integer.
    RuntimeError
        If ``model`` is not built.
    ValueError
        If ``X`` is not 2-D, its number of columns is unknown or differs from
        ``model.input_dim``, or ``batch_size`` is below 1.

    Notes
    -----
    Examples, with a local cluster and on GPUs, are in ``docs/distributed.md``.
    """
    dask = _import_dask()
    da = dask.array
    from dask.array.utils import meta_from_array

    from ..model import Sequential

    # -- the model: checked here, where the mistake was made, not later on a worker ----------
    if not isinstance(model, Sequential):
        raise TypeError(
            f"predict expects a backprop.Sequential model, received {type(model).__name__}."
        )
    if not model.built:
        raise RuntimeError(
            "predict() needs a built model: give the first layer input_dim=..., or fit it."
        )
    check_positive_int(batch_size, "batch_size", allow_none=True)

    # -- the data ------------------------------------------------------------------------------
    X = _as_dask_array(X, da)
    if X.ndim != 2:
        raise ValueError(
            f"X must be 2-D, shape (n_samples, n_features); received a {X.ndim}-D array of "
            f"shape {X.shape}. For a single feature use X.reshape(-1, 1); for one sample, "
            "X.reshape(1, -1)."
        )
    n_features = X.shape[1]
    if np.isnan(n_features):
        raise ValueError(
            "X has an unknown number of columns; compute its chunk sizes first: "
            "X.compute_chunk_sizes()."
        )
    if n_features != model.input_dim:
        raise ValueError(
            f"X has {n_features} features (columns), but the model expects "
            f"{model.input_dim} (model.input_dim)."
        )
    chunk_library = array_backend_name(X._meta)
    if chunk_library not in _CHUNK_BACKENDS:
        raise TypeError(
            f"The chunks of X must be NumPy or CuPy arrays, received chunks of type "
            f"{type(X._meta).__module__}.{type(X._meta).__qualname__}."
        )
    if np.dtype(X.dtype).kind not in "biuf":
        raise TypeError(
            f"X must have a boolean, integer or floating dtype, received {X.dtype}; "
            "convert it with X.astype('float32') (or 'float64')."
        )
    if len(X.chunks[1]) > 1:
        # model.predict needs every feature of a row in one block; merging the column chunks
        # keeps the row chunks (and so the number of tasks and the result's row chunks)
        X = X.rechunk({1: -1})

    # -- the model enters the graph once ---------------------------------------------------------
    spec = _make_spec(model)
    if client is None:
        client = _active_client()
    if client is not None:
        if not callable(getattr(client, "scatter", None)):
            raise TypeError(
                f"client must be a distributed.Client, received {type(client).__name__}."
            )
        model_arg = _scatter_once(client, spec)
    else:
        # one key in the graph; every block task depends on it, none embeds the weights
        model_arg = dask.delayed(spec, name=f"backprop-model-{spec.token}", pure=True)

    n_out = spec.output_dim
    dtype = np.dtype(spec.dtype)
    name = "backprop-predict-" + dask.base.tokenize(X, spec.token, batch_size)
    return X.map_blocks(
        _predict_block,
        model_arg,
        batch_size,
        name=name,
        chunks=(X.chunks[0], (n_out,)),
        dtype=dtype,
        # without meta, dask would call the model on an empty block to guess it
        meta=meta_from_array(X._meta, ndim=2, dtype=dtype),
    )
