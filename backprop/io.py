"""Saving and loading models: one ``.npz`` of plain arrays plus a JSON document, never a pickle.

The format (version 1)
----------------------
A NumPy ``.npz`` (zip) archive with

- ``weight_0 ... weight_{k-1}``: the weights in Keras order (W1, b1, W2, b2, ...);
- ``opt_{i}_{name}``: the optimizer's state (``m``, ``v``, ...), when compiled: i counts the
  arrays the optimizer updates, which is one flat vector of all the weights (i = 0), or each
  weight array when ``clipnorm`` (per-array clipping) is set;
- ``__config__``: a 0-d unicode array holding a JSON document::

    {"format": "backprop-sequential", "version": 1, "library_version": "0.1.0",
     "model": {"name", "dtype", "seed", "layers": [{"class_name", "config"}, ...]},
     "compile": {"loss", "optimizer", "metrics", "iterations", "state_keys"} or absent,
     "rng_state": {...}, "arrays": ["weight_0", ...], "checksum": "sha256:<hex>"}

The checksum is SHA-256 over every listed array's name, dtype, shape and bytes, in order.
Loading uses ``allow_pickle=False`` and rebuilds layers, losses and optimizers only from the
registries of known names, so a crafted file cannot run code. Writes go to a temporary file in
the same folder that is renamed over the target, so a crash mid-save leaves the previous file
intact. Damaged, foreign, future-version or tampered files raise ``ValueError`` naming the file
and the problem; a missing file raises ``FileNotFoundError``.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import tempfile
from typing import Any

import numpy as np

from . import layers as _layers
from . import losses as _losses
from . import metrics as _metrics
from . import optimizers as _optimizers
from ._version import __version__
from .backend import BackendError

FORMAT = "backprop-sequential"
VERSION = 1


def _checksum(arrays: dict[str, np.ndarray], names: list[str]) -> str:
    h = hashlib.sha256()
    for name in names:
        a = np.ascontiguousarray(arrays[name])
        h.update(f"{name}|{a.dtype.str}|{a.shape}|".encode())
        h.update(a.tobytes())
    return "sha256:" + h.hexdigest()


def _with_suffix(path: str | os.PathLike) -> str:
    path = os.fspath(path)
    return path if path.endswith(".npz") else path + ".npz"


def save(model: Any, path: str | os.PathLike) -> str:
    """Write ``model`` to ``path`` atomically; returns the path written.

    ``.npz`` is appended when ``path`` lacks it (as ``numpy.savez`` does).

    Parameters
    ----------
    model : Sequential
        A built model (compiled or not).
    path : str or os.PathLike
        Where to write the file.

    Returns
    -------
    str
        The path written, ending in ``.npz``.

    Raises
    ------
    RuntimeError
        If ``model`` is not built.
    FileNotFoundError
        If the target's folder does not exist.
    """
    if not model.built:
        raise RuntimeError("save() needs a built model: fit it or give the first layer input_dim.")
    if model.loss is not None:  # the optimizer's state must be that of the weights saved
        from .training.compilation import check_optimizer_state

        check_optimizer_state(model)
    arrays: dict[str, np.ndarray] = {}
    for i, w in enumerate(model.get_weights()):
        arrays[f"weight_{i}"] = w
    config: dict[str, Any] = {
        "format": FORMAT,
        "version": VERSION,
        "library_version": __version__,
        "model": model.get_config(),
        "rng_state": model.streams.get_state(),
    }
    if model.loss is not None:
        opt = model.optimizer
        config["compile"] = {
            "loss": model.loss.get_config(),
            "optimizer": opt.get_config(),
            "metrics": [m if isinstance(m, str) else m.get_config() for m in model._metric_specs],
            "iterations": opt.iterations,
            "state_keys": [sorted(s) for s in opt.state],
        }
        for i, s in enumerate(opt.state):
            for k, v in s.items():
                arrays[f"opt_{i}_{k}"] = model.backend.to_numpy(v)
    config["arrays"] = list(arrays)
    config["checksum"] = _checksum(arrays, config["arrays"])
    arrays["__config__"] = np.array(json.dumps(config))

    target = _with_suffix(path)
    folder = os.path.dirname(os.path.abspath(target))
    if not os.path.isdir(folder):  # say so before mkstemp names its temporary file
        raise FileNotFoundError(
            f"Cannot save to {target}: the folder {folder} does not exist. Create it first "
            "(e.g. os.makedirs(folder, exist_ok=True))."
        )
    fd, tmp = tempfile.mkstemp(prefix=".backprop-", suffix=".npz.tmp", dir=folder)
    try:
        # mkstemp makes the file private (0600): give it the mode a plain open() would (the
        # umask's), or the replaced file's
        os.chmod(tmp, _file_mode(target))
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **arrays)
            f.flush()
            os.fsync(f.fileno())
        _replace(tmp, target)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise
    return target


def _file_mode(path: str) -> int:
    """The permissions of an existing ``path``, else those the umask gives a new file."""
    try:
        return os.stat(path).st_mode & 0o777
    except FileNotFoundError:
        umask = os.umask(0)
        os.umask(umask)
        return 0o666 & ~umask


def _replace(src: str, dst: str) -> None:
    """The rename that makes a save visible (a separate function so tests can interrupt it)."""
    os.replace(src, dst)


def _read(path: str) -> tuple[dict, dict[str, np.ndarray]]:
    """The JSON document and the arrays of a model file, with every failure as ValueError."""
    if not os.path.exists(path):
        if os.path.exists(_with_suffix(path)):
            path = _with_suffix(path)
        else:
            raise FileNotFoundError(f"No model file at {path!r}.")
    if os.path.getsize(path) == 0:
        raise ValueError(f"{path} is empty: not a backprop model file.")
    if os.path.isdir(path):
        raise ValueError(f"{path} is a directory, not a backprop model file.")
    try:
        # our own handle: numpy does not close it when the zip directory is unreadable
        with open(path, "rb") as fh:
            loaded = np.load(fh, allow_pickle=False)
            if not isinstance(loaded, np.lib.npyio.NpzFile):
                raise ValueError(f"{path} holds a single array (.npy), not a backprop model file.")
            with loaded as f:
                names = f.files
                if "__config__" not in names:
                    raise ValueError(f"{path} is not a backprop model file (no __config__ entry).")
                config = json.loads(str(f["__config__"]))
                arrays = {k: f[k] for k in names if k != "__config__"}
    except ValueError as exc:
        if str(exc).startswith(str(path)):
            raise
        raise ValueError(f"{path} is damaged or not a backprop model file: {exc}") from None
    except Exception as exc:  # untrusted bytes: any failure of the parsers means a damaged file
        raise ValueError(
            f"{path} is damaged or not a backprop model file: {type(exc).__name__}: {exc}"
        ) from None
    if not isinstance(config, dict) or config.get("format") != FORMAT:
        found = config.get("format") if isinstance(config, dict) else type(config).__name__
        raise ValueError(f"{path} is not a backprop model file (format {found!r}).")
    version = config.get("version")
    if isinstance(version, bool) or not isinstance(version, int) or not 1 <= version <= VERSION:
        raise ValueError(
            f"{path} has format version {version!r}; this backprop reads versions up to "
            f"{VERSION}. Upgrade backprop to load it."
        )
    listed = config.get("arrays")
    if (
        not isinstance(listed, list)
        or not all(isinstance(k, str) for k in listed)
        or sorted(listed) != sorted(arrays)
    ):
        raise ValueError(f"{path} is damaged: its arrays do not match the list in its header.")
    if _checksum(arrays, listed) != config.get("checksum"):
        raise ValueError(f"{path} is damaged: checksum mismatch (the arrays were altered).")
    return config, arrays


def load(path: str | os.PathLike, backend: str | None = None, device: Any = None) -> Any:
    """Load a model saved with :meth:`Sequential.save` onto ``backend``/``device``.

    Parameters
    ----------
    path : str or path
        The ``.npz`` file.
    backend, device : optional
        Where to put the model; None follows the usual precedence (current backend).

    Returns
    -------
    Sequential
        The model with its weights, random-stream states and, when it was compiled, its
        loss, optimizer (state and iteration count) and metrics.

    Raises
    ------
    FileNotFoundError
        No file at ``path``.
    ValueError
        A damaged, foreign, future-version or tampered file (the message says which).
    BackendError
        If ``backend``/``device`` cannot be used here.
    """
    from .model import Sequential

    path = os.fspath(path)
    config, arrays = _read(path)
    _check_layer_classes(path, config)
    try:
        mc = config["model"]
        layers = [_layers.from_config(s["class_name"], s["config"]) for s in mc["layers"]]
        model = Sequential(
            layers,
            backend=backend,
            device=device,
            dtype=mc["dtype"],
            seed=mc["seed"],
            name=mc["name"],
        )
        if "rng_state" in config:  # the next shuffles and dropout masks continue the streams
            model.streams.set_state(config["rng_state"])
        n_weights = sum(1 for k in arrays if k.startswith("weight_"))
        if not model.built:
            raise ValueError("the first layer has no input_dim")
        model.set_weights([arrays[f"weight_{i}"] for i in range(n_weights)])
        compiled = config.get("compile")
        if compiled is not None:
            optimizer = _optimizers.get(compiled["optimizer"])
            metrics = [m if isinstance(m, str) else _metrics.get(m) for m in compiled["metrics"]]
            model.compile(_losses.get(compiled["loss"]), optimizer, metrics)
            optimizer.state = [
                {k: model.backend.asarray(arrays[f"opt_{i}_{k}"], model.dtype) for k in keys}
                for i, keys in enumerate(compiled["state_keys"])
            ]
            iterations = compiled["iterations"]
            if isinstance(iterations, bool) or not isinstance(iterations, int) or iterations < 0:
                raise ValueError(f"iterations must be an integer >= 0, not {iterations!r}")
            optimizer.iterations = iterations
            _check_state(model, optimizer)
    except BackendError:
        raise  # the requested backend/device, not the file, is the problem
    except Exception as exc:  # whatever the header makes a constructor raise: a damaged file
        raise ValueError(
            f"{path} is damaged: its header does not describe a valid model "
            f"({type(exc).__name__}: {exc})."
        ) from None
    return model


def _check_layer_classes(path: str, config: Any) -> None:
    """A layer class this process does not define: say so (the file is not damaged)."""
    try:
        names = [s["class_name"] for s in config["model"]["layers"]]
    except Exception:  # a malformed header: reported as damaged by load
        return
    known = _layers._known_layers()
    missing = [n for n in names if isinstance(n, str) and n not in known]
    if missing:
        public = sorted(n for n in known if not n.startswith("_"))
        raise ValueError(
            f"{path} holds layers of class {', '.join(map(repr, missing))}, which this process "
            "does not define: import (or define) the class before bp.load; a model file never "
            f"runs code. Layers defined here: {public}."
        )


def _check_state(model: Any, optimizer: Any) -> None:
    """The optimizer state must fit the weights: one flat vector, or one array per weight."""
    state, names = optimizer.state, sorted(optimizer.state_names)
    if not state:
        if optimizer.iterations and names:
            raise ValueError(f"{optimizer.iterations} steps were taken but no state was saved")
        return
    if any(sorted(s) != names for s in state):
        raise ValueError(f"optimizer state keys {[sorted(s) for s in state]}, expected {names}")
    shapes = [tuple(layer.params[k].shape) for layer, k in model._param_slots]
    flat = [(sum(math.prod(sh) for sh in shapes),)]
    found = [tuple(s[k].shape) for s in state for k in names]
    expected_flat = [sh for sh in flat for _ in names]
    expected_per = [sh for sh in shapes for _ in names]
    if found not in (expected_flat, expected_per):
        raise ValueError(f"optimizer state shapes {found} do not fit the weights {shapes}")


def _clone(
    model: Any, dtype: str | None = None, backend: Any = None, input_dim: int | None = None
) -> Any:
    """A copy of ``model`` (architecture, weights, loss) on ``backend`` in ``dtype``.

    float64 copies of a model whose device has no float64 go to NumPy. An unbuilt model is
    built for ``input_dim`` features: its seed gives the weights it would have drawn itself.
    """
    from .backend import resolve
    from .model import Sequential

    target = model.backend if backend is None else resolve(backend)
    if dtype == "float64" and not target.supports_float64:
        target = resolve("numpy")
    config = model.get_config()
    layers = [_layers.from_config(s["class_name"], s["config"]) for s in config["layers"]]
    clone = Sequential(
        layers, backend=target, dtype=dtype or config["dtype"], seed=model.seed, name=model.name
    )
    if not clone.built:
        clone.build(model.input_dim or input_dim)
    if model.built:
        clone.set_weights(model.get_weights())
    if model.loss is not None:
        optimizer = _optimizers.get(model.optimizer.get_config())
        clone.compile(model.loss, optimizer, model._metric_specs)
    return clone
