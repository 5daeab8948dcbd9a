"""A deterministic count of the array operations one training step launches.

On a GPU every array operation is (at least) one kernel launch of a few microseconds, so for
small networks the number of operations per step, not the arithmetic, sets the step time.
This module counts them on the NumPy backend, exactly and without timing:

- :class:`CountingArray`, a NumPy ``ndarray`` subclass, counts every operator (``+``, ``*``,
  ``@``, ``>``, in-place ``+=``...), every NumPy function or ufunc called on it (through the
  ``__array_ufunc__``/``__array_function__`` protocols), and the methods that compute
  (``astype``, ``copy``, ``sum``..., ``x[mask]``, ``x[...] = v``);
- :class:`CountingNamespace` wraps the model's Array API namespace (``xp``): each call of an
  ``xp`` function counts once, whatever it does inside;
- a depth guard makes every operation count exactly once, at the outermost call: ``xp.clip``
  is one operation even if array-api-compat implements it with several NumPy calls.

Not counted: views and metadata (``x.T``, slicing with ``:``, ``reshape``, ``shape``), Python
arithmetic on host scalars (the learning rate), host-side randomness. Conversions that read a
value back to the host (``float(x)``, ``bool(x)``, ``x.item()``) are counted separately as
*syncs* (each is a device-to-host round trip on a GPU).

:func:`count_ops` trains the workload's backprop model on the NumPy backend, then replaces
every array the model and its optimizer hold by a counting view of the same memory (so in-place
updates still land), the namespace by the counting one, and the backend by one whose new arrays
are counting arrays, and runs ``fit`` for 2 and for 4 steps (``shuffle=False``). The difference
divided by 2 is what one more step costs inside ``fit``: forward, loss, backward, optimizer
update and the per-step bookkeeping (the device-side loss sum); everything ``fit`` does once
per call cancels. (2 and 4 steps rather than 1 and 3: ``fit`` may treat a one-step epoch
specially.) Operations run every k steps (the optimizer's periodic subnormal flush) are not in
this steady-state count; ``window=`` adds an amortized count over a longer run. It also counts
one call of the public ``model.train_step(x, y)`` (which, unlike ``fit``'s steps, also
computes the batch's loss value).

Limitation: an operation on a plain ``ndarray`` the model creates outside the namespace and
the backend (e.g. a module-level NumPy constant) is invisible; the matmul count (3 per Dense
layer, or one less where the first layer's input gradient is skipped) is checked by the tests
as a guard that the instrumentation sees the step.
"""

from __future__ import annotations

import dataclasses
import types
import warnings
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

# xp functions that only make views or read metadata: no kernel
FREE_FUNCTIONS = frozenset(
    {
        "reshape",
        "permute_dims",
        "matrix_transpose",
        "expand_dims",
        "squeeze",
        "broadcast_to",
        "broadcast_arrays",
        "finfo",
        "iinfo",
        "isdtype",
        "result_type",
        "can_cast",
        "__array_namespace_info__",
        "device",
        "to_device",
        "size",
    }
)

# ndarray methods that run a kernel without going through a ufunc
_COUNTED_METHODS = (
    "astype",
    "copy",
    "fill",
    "sum",
    "mean",
    "max",
    "min",
    "prod",
    "std",
    "var",
    "any",
    "all",
    "clip",
    "dot",
    "cumsum",
    "argmax",
    "argmin",
    "round",
    "take",
    "nonzero",
)
_SYNC_METHODS = ("item", "tolist", "__float__", "__int__", "__bool__", "__index__", "__complex__")


class OpCounter:
    """Counts operations by name; use as a context manager to make it the active counter."""

    def __init__(self) -> None:
        self.ops: Counter[str] = Counter()
        self.syncs: Counter[str] = Counter()
        self.depth = 0
        self._namespaces: dict[int, CountingNamespace] = {}

    # -- the active counter ------------------------------------------------------------------
    def __enter__(self) -> OpCounter:
        _STACK.append(self)
        return self

    def __exit__(self, *exc) -> None:
        _STACK.remove(self)

    @property
    def total(self) -> int:
        return sum(self.ops.values())

    def snapshot(self) -> Counter[str]:
        return Counter(self.ops)

    def reset(self) -> None:
        self.ops.clear()
        self.syncs.clear()

    # -- wrapping ------------------------------------------------------------------------------
    def namespace(self, base: Any = None) -> CountingNamespace:
        """The counting version of ``base`` (default: array-api-compat's NumPy namespace)."""
        if base is None:
            import array_api_compat.numpy as base
        key = id(base)
        if key not in self._namespaces:
            self._namespaces[key] = CountingNamespace(base)
        return self._namespaces[key]


_STACK: list[OpCounter] = []


def _active() -> OpCounter | None:
    return _STACK[-1] if _STACK else None


class _Op:
    """``with _Op(name):`` counts ``name`` once if no enclosing operation is running."""

    __slots__ = ("counter", "name")

    def __init__(self, name: str):
        self.counter = _active()
        self.name = name

    def __enter__(self) -> None:
        c = self.counter
        if c is not None:
            if c.depth == 0:
                c.ops[self.name] += 1
            c.depth += 1

    def __exit__(self, *exc) -> None:
        if self.counter is not None:
            self.counter.depth -= 1


def _sync(name: str) -> None:
    c = _active()
    if c is not None and c.depth == 0:
        c.syncs[name] += 1


# ---------------------------------------------------------------------------------------------
# The counting array


def wrap(x: Any) -> Any:
    """Counting views of the NumPy arrays (and scalars) in ``x``; other values unchanged."""
    if isinstance(x, CountingArray):
        return x
    if isinstance(x, np.ndarray):
        return x.view(CountingArray)
    if isinstance(x, np.generic) and x.dtype.kind in "biufc":
        return np.asarray(x).view(CountingArray)
    if isinstance(x, tuple):
        return tuple(wrap(v) for v in x)
    if isinstance(x, list):
        return [wrap(v) for v in x]
    return x


def unwrap(x: Any) -> Any:
    """Plain ``ndarray`` views of the counting arrays in ``x``."""
    if isinstance(x, CountingArray):
        return x.view(np.ndarray)
    if isinstance(x, tuple):
        return tuple(unwrap(v) for v in x)
    if isinstance(x, list):
        return [unwrap(v) for v in x]
    return x


def _has_array(key: Any) -> bool:
    if isinstance(key, tuple):
        return any(_has_array(k) for k in key)
    return isinstance(key, np.ndarray | list)


class CountingArray(np.ndarray):
    """An ``ndarray`` that counts the operations run on it while an :class:`OpCounter` is active.

    Results are counting arrays too, so a whole computation is followed from its inputs.
    """

    def __array_ufunc__(self, ufunc, method, *inputs, out=None, **kwargs):
        name = ufunc.__name__ if method == "__call__" else f"{ufunc.__name__}.{method}"
        with _Op(name):
            if out is not None:
                kwargs["out"] = tuple(unwrap(o) for o in out)
            result = getattr(ufunc, method)(*unwrap(inputs), **kwargs)
        if out is not None:
            return out[0] if len(out) == 1 else out
        return wrap(result)

    def __array_function__(self, func, types, args, kwargs):
        with _Op(func.__name__):
            result = super().__array_function__(func, types, args, kwargs)
        return wrap(result)

    def __getitem__(self, key):
        if _has_array(key):  # a gather: a kernel
            with _Op("getitem[array]"):
                return wrap(super().__getitem__(unwrap(key)))
        return super().__getitem__(key)  # a view: free

    def __setitem__(self, key, value):
        with _Op("setitem"):
            super().__setitem__(unwrap(key), unwrap(value))


def _counted_method(name: str) -> Callable:
    base = getattr(np.ndarray, name)

    def method(self, *args, **kwargs):
        with _Op(name):
            return wrap(base(self, *unwrap(args), **kwargs))

    method.__name__ = name
    return method


def _sync_method(name: str) -> Callable:
    base = getattr(np.ndarray, name)

    def method(self, *args, **kwargs):
        _sync(name.strip("_"))
        return base(self.view(np.ndarray), *args, **kwargs)

    method.__name__ = name
    return method


for _name in _COUNTED_METHODS:
    setattr(CountingArray, _name, _counted_method(_name))
for _name in _SYNC_METHODS:
    setattr(CountingArray, _name, _sync_method(_name))


# ---------------------------------------------------------------------------------------------
# The counting namespace


class CountingNamespace:
    """Wraps an Array API namespace: each function call counts once; results are counted arrays.

    Dtypes, constants and other non-functions pass through; sub-namespaces (``linalg``...) are
    wrapped too.
    """

    def __init__(self, base: Any, prefix: str = ""):
        self._base = base
        self._prefix = prefix

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._base, name)
        if isinstance(attr, types.ModuleType):
            wrapped = CountingNamespace(attr, f"{self._prefix}{name}.")
        elif callable(attr) and not isinstance(attr, type):
            wrapped = self._function(name, attr)
        else:
            wrapped = attr
        object.__setattr__(self, name, wrapped)  # cached: __getattr__ runs once per name
        return wrapped

    def _function(self, name: str, fn: Callable) -> Callable:
        label = self._prefix + name
        free = name in FREE_FUNCTIONS

        def counted(*args, **kwargs):
            c = _active()
            if c is None:
                return wrap(fn(*args, **kwargs))
            if free:
                c.depth += 1
                try:
                    return wrap(fn(*args, **kwargs))
                finally:
                    c.depth -= 1
            if name == "asarray" and _is_noop_asarray(args, kwargs):
                return wrap(args[0])
            with _Op(label):
                return wrap(fn(*args, **kwargs))

        counted.__name__ = name
        counted.__wrapped__ = fn
        return counted

    def __repr__(self) -> str:
        return f"CountingNamespace({getattr(self._base, '__name__', self._base)!r})"


def _is_noop_asarray(args: tuple, kwargs: dict) -> bool:
    """``xp.asarray(x)`` of an array that already has the dtype asked for: no copy, no kernel."""
    if not args or not isinstance(args[0], np.ndarray) or kwargs.get("copy"):
        return False
    dtype = kwargs.get("dtype", args[1] if len(args) > 1 else None)
    return dtype is None or np.dtype(dtype) == args[0].dtype


# ---------------------------------------------------------------------------------------------
# Instrumenting a model


def _counting_backend(backend: Any, xp: CountingNamespace) -> Any:
    """A subclass instance of the model's Backend whose ``xp`` counts and whose arrays count."""
    base_cls = type(backend)

    class CountingBackend(base_cls):
        def asarray(self, x, dtype=None):
            with _Op("asarray(host)") if not isinstance(x, np.ndarray) else _NoOp():
                return wrap(super().asarray(unwrap(x), dtype))

        def zeros(self, shape, dtype):
            with _Op("zeros"):
                return wrap(super().zeros(shape, dtype))

    CountingBackend.__name__ = f"Counting{base_cls.__name__}"
    fields = {f.name: getattr(backend, f.name) for f in dataclasses.fields(backend)}
    fields["xp"] = xp
    return CountingBackend(**fields)


class _NoOp:
    def __enter__(self) -> None:
        pass

    def __exit__(self, *exc) -> None:
        pass


def _owned(obj: Any) -> bool:
    """Objects of backprop (model, layers, activations, losses, optimizers...) are walked."""
    return type(obj).__module__.split(".")[0] in ("backprop", "bench") and hasattr(obj, "__dict__")


def instrument(root: Any, counter: OpCounter) -> None:
    """Make every array, namespace and backend reachable from ``root`` a counting one, in place.

    Arrays become counting *views* of the same memory (one view per array, so aliasing is
    kept), so updates made in place after this still reach the model.
    """
    import array_api_compat.numpy as compat_np

    from backprop.backend import Backend

    memo: dict[int, Any] = {}
    seen: set[int] = set()
    namespaces = {id(compat_np): counter.namespace(compat_np), id(np): counter.namespace(np)}

    def convert(v: Any) -> Any:
        if isinstance(v, np.ndarray) and not isinstance(v, CountingArray):
            if id(v) not in memo:
                memo[id(v)] = (v, v.view(CountingArray))
            return memo[id(v)][1]
        if isinstance(v, types.ModuleType) and id(v) in namespaces:
            return namespaces[id(v)]
        if isinstance(v, Backend) and not isinstance(v.xp, CountingNamespace):
            if id(v) not in memo:
                ns = namespaces.get(id(v.xp), counter.namespace(v.xp))
                memo[id(v)] = (v, _counting_backend(v, ns))
            return memo[id(v)][1]
        if isinstance(v, tuple) and not hasattr(v, "_fields"):
            return tuple(convert(e) for e in v)
        return v

    def visit(obj: Any, depth: int) -> None:
        if depth > 8 or id(obj) in seen:
            return
        seen.add(id(obj))
        if isinstance(obj, dict):
            for k, v in list(obj.items()):
                obj[k] = convert(v)
                visit(v, depth + 1)
        elif isinstance(obj, list):
            for i, v in enumerate(obj):
                obj[i] = convert(v)
                visit(v, depth + 1)
        elif isinstance(obj, tuple):
            for v in obj:
                visit(v, depth + 1)
        elif _owned(obj):
            for k, v in list(vars(obj).items()):
                new = convert(v)
                if new is not v:
                    object.__setattr__(obj, k, new)
                visit(v, depth + 1)

    visit(root, 0)


def iter_arrays(root: Any) -> Iterator[np.ndarray]:
    """Every NumPy array reachable from ``root`` through backprop objects, dicts and lists."""
    seen: set[int] = set()
    stack = [(root, 0)]
    while stack:
        obj, depth = stack.pop()
        if depth > 8 or id(obj) in seen:
            continue
        seen.add(id(obj))
        if isinstance(obj, np.ndarray):
            yield obj
        elif isinstance(obj, dict):
            stack += [(v, depth + 1) for v in obj.values()]
        elif isinstance(obj, list | tuple):
            stack += [(v, depth + 1) for v in obj]
        elif _owned(obj):
            stack += [(v, depth + 1) for v in vars(obj).values()]


# ---------------------------------------------------------------------------------------------
# The count per training step


def count_ops(
    workload: str = "seed",
    dtype: str = "float32",
    metrics: Any = None,
    window: int | None = None,
    batchnorm: bool = False,
) -> dict:
    """Count the operations of the backprop model of ``workload`` (NumPy backend).

    Parameters
    ----------
    window : int, optional
        Also count over ``window`` more steps (the data tiled as needed), so that operations
        an optimizer runs every k steps (a subnormal flush, say) show, amortized, in
        ``per_step_amortized``.
    batchnorm : bool
        Count a variant of the workload's network instead, with a BatchNormalization after
        each hidden Dense, before its ReLU (``Dense(h) -> BatchNormalization() ->
        Activation("relu")``); the workloads themselves are unchanged.

    Returns
    -------
    dict
        ``per_step``: operations one more step costs inside ``fit`` (the headline number);
        ``by_op``: that count by operation name; ``syncs_per_step``: host read-backs per step;
        ``train_step``: the count of one public ``model.train_step(x, y)`` call (forward,
        loss value, backward, update); ``per_fit_call``: what a ``fit`` call costs beyond
        its steps (the epoch's loss, the dead-layer check...).
    """
    from bench import workloads
    from bench.peers.backprop_peer import build_model

    wl = workloads.get(workload)
    X, y = wl.data(dtype)
    b = wl.batch_size
    model = _batchnorm_model(wl, dtype) if batchnorm else build_model(wl, dtype)
    if metrics:
        model.compile(loss=wl.loss, optimizer=model.optimizer, metrics=list(metrics))
    counter = OpCounter()

    def fit(steps: int) -> tuple[Counter[str], Counter[str]]:
        reps = -(-steps * b // X.shape[0])
        Xs = np.concatenate([X] * reps) if reps > 1 else X
        ys = np.concatenate([y] * reps) if reps > 1 else y
        counter.reset()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model.fit(
                Xs[: steps * b], ys[: steps * b], epochs=1, batch_size=b, shuffle=False, verbose=0
            )
        return Counter(counter.ops), Counter(counter.syncs)

    # steady state first: weights, optimizer state and caches exist before anything is counted
    fit(1)
    train_step = train_step_by_op = None
    amortized = None
    with counter:
        instrument(model, counter)
        ops2, syncs2 = fit(2)
        ops4, syncs4 = fit(4)
        if window:
            opsw, _ = fit(2 + window)
            amortized = (sum(opsw.values()) - sum(ops2.values())) / window
        if callable(getattr(model, "train_step", None)):
            xp = counter.namespace()
            xb = wrap(np.ascontiguousarray(X[:b]))
            yb = model.loss.prepare_targets(xp.asarray(y[:b]), model.output_dim, model.dtype, xp)
            counter.reset()
            model.train_step(xb, yb)
            train_step, train_step_by_op = counter.total, dict(sorted(counter.ops.items()))
    diff = ops4.copy()
    diff.subtract(ops2)
    per_step = sum(diff.values()) / 2
    sync_diff = syncs4.copy()
    sync_diff.subtract(syncs2)

    def integral(v: float) -> float | int:
        return int(v) if v == int(v) else v

    return {
        "workload": workload,
        "batchnorm": batchnorm,
        "dtype": dtype,
        "metrics": list(metrics or []),
        "per_step": integral(per_step),
        "by_op": {k: integral(v / 2) for k, v in sorted(diff.items()) if v},
        "syncs_per_step": integral(sum(sync_diff.values()) / 2),
        "per_step_amortized": amortized,
        "window": window,
        "train_step": train_step,
        "train_step_by_op": train_step_by_op,
        "per_fit_call": integral(sum(ops2.values()) - 2 * per_step),
        "dense_layers": len(wl.sizes) - 1,
    }


def _batchnorm_model(wl: Any, dtype: str) -> Any:
    """The workload's network with ``Dense(h) -> BatchNormalization() -> ReLU`` hidden layers."""
    import backprop as bp

    layers: list = []
    for i, h in enumerate(wl.hidden):
        first = {"input_dim": wl.sizes[0]} if i == 0 else {}
        layers += [
            bp.layers.Dense(h, **first),
            bp.layers.BatchNormalization(),
            bp.layers.Activation("relu"),
        ]
    layers.append(bp.layers.Dense(wl.sizes[-1], activation=wl.output))
    model = bp.Sequential(layers, backend="numpy", dtype=dtype, seed=0)
    model.compile(loss=wl.loss, optimizer=bp.optimizers.Adam(learning_rate=1e-3))
    return model


def count_ops_per_step(workload: str = "seed", dtype: str = "float32") -> int:
    """Array operations one training step launches inside ``fit`` (see :func:`count_ops`)."""
    return count_ops(workload, dtype)["per_step"]


# The target of the issue: at most this many operations per step of the seed workload.
SEED_STEP_BUDGET = 85


if __name__ == "__main__":
    import json
    import os
    import sys

    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    # python -m bench.opcount [--batchnorm] [workload ...]
    batchnorm = "--batchnorm" in sys.argv[1:]
    names = [a for a in sys.argv[1:] if a != "--batchnorm"] or ["seed", "digits", "large"]
    for name in names:
        print(json.dumps(count_ops(name, batchnorm=batchnorm), indent=1))
