"""Saving and loading models: one ``.npz`` of plain arrays plus a JSON document, never a pickle.

The format (version 2)
----------------------
A NumPy ``.npz`` (zip) archive with

- ``weight_0 ... weight_{k-1}``: the weights in Keras order (W1, b1, W2, b2, ...);
- ``opt_{i}_{name}``: the optimizer's state (``m``, ``v``, ...), when compiled: i counts the
  arrays the optimizer updates, which is one flat vector of all the weights (i = 0), or each
  weight array when ``clipnorm`` (per-array clipping) is set;
- ``__config__``: a 0-d unicode array holding a JSON document::

    {"format": "backprop-sequential", "version": 2, "library_version": "0.1.0",
     "model": {"name", "dtype", "seed", "layers": [{"class_name", "config"}, ...],
               "input_shape"},
     "compile": {"loss", "optimizer", "metrics", "weighted_metrics", "iterations",
                 "state_keys"} or absent,
     "rng_state": {...}, "arrays": ["weight_0", ...], "checksum": "sha256:<hex>"}

The checksum is SHA-256 over the header itself (every key but ``checksum``, as canonical JSON)
and then every listed array's name, dtype, shape and bytes, in order; version 1 files, whose
checksum covers the arrays only, still load with that check. Loading uses
``allow_pickle=False`` and rebuilds layers, losses and optimizers only from the registries of
known names, so a crafted file cannot run code. Writes go to a temporary file in the same
folder that is renamed over the target (through a symbolic link, over the link's target), so a
crash mid-save leaves the previous file intact. Damaged, foreign, future-version or tampered
files raise ``ValueError`` naming the file and the problem; a missing file raises
``FileNotFoundError``.

:func:`load` builds a new model from a file; :func:`read` and :func:`restore` write a file into
an existing model instead, checked against its architecture first: the weights only
(``Sequential.load_weights``, as Keras's) or the whole training state as well (what
``BackupAndRestore`` resumes from).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import tempfile
from typing import Any, NamedTuple

import numpy as np

from . import layers as _layers
from . import losses as _losses
from . import metrics as _metrics
from . import optimizers as _optimizers
from . import registry as _registry
from ._version import __version__
from .backend import BackendError

FORMAT = "backprop-sequential"
MODEL_CLASS = "Sequential"  # the class, registered by name, that a file of FORMAT holds
VERSION = 2  # 2: the checksum covers the header too; 1: the arrays only (still read)

# bytes hashed at a time from an array that is not C-contiguous (contiguous ones are hashed
# in place): a checksum never holds a copy of a whole array
_HASH_CHUNK = 1 << 24


def _canonical_header(config: dict) -> bytes:
    """The header as the checksum sees it: every key but ``checksum``, as canonical JSON.

    Sorted keys, no spaces, ASCII escapes: the same bytes for the same content however the
    JSON was spaced or ordered, so the digest covers what loading reads, not its spelling.
    """
    body = {k: v for k, v in config.items() if k != "checksum"}
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()


def _checksum(arrays: dict[str, np.ndarray], names: list[str], header: dict | None = None) -> str:
    """``"sha256:<hex>"`` of ``header`` (version 2; None for version 1) and the ``names`` arrays.

    Each array contributes ``f"{name}|{dtype.str}|{shape}|"`` then its bytes in C order,
    hashed where they lie (no copy of the array, which may be most of the file's size).
    """
    h = hashlib.sha256()
    if header is not None:
        h.update(_canonical_header(header))
        h.update(b"\n")
    for name in names:
        a = arrays[name]
        h.update(f"{name}|{a.dtype.str}|{a.shape}|".encode())
        if a.flags.c_contiguous:
            h.update(a.reshape(-1).view(np.uint8) if a.size else b"")
        else:  # C-order bytes a few rows at a time (e.g. a Fortran-order array)
            rows = max(1, _HASH_CHUNK // max(1, a[0].nbytes)) if a.ndim else 1
            for i in range(0, a.shape[0] if a.ndim else 1, rows):
                h.update(np.ascontiguousarray(a[i : i + rows] if a.ndim else a).tobytes())
    return "sha256:" + h.hexdigest()


def _with_suffix(path: str | os.PathLike) -> str:
    path = os.fspath(path)
    return path if path.endswith(".npz") else path + ".npz"


def save(model: Any, path: str | os.PathLike) -> str:
    """Write ``model`` to ``path`` atomically; returns the path written.

    ``.npz`` is appended when ``path`` lacks it (as ``numpy.savez`` does). When ``path`` is a
    symbolic link, the file it points to is replaced and the link kept.

    Parameters
    ----------
    model : Sequential
        A built model (compiled or not).
    path : str or os.PathLike
        Where to write the file: a file name, not a folder.

    Returns
    -------
    str
        The path written (``path``, ending in ``.npz``).

    Raises
    ------
    RuntimeError
        If ``model`` is not built.
    ValueError
        If ``path`` is empty or ends with a path separator.
    IsADirectoryError
        If ``path`` (or ``path`` with ``.npz``) is an existing folder.
    NotADirectoryError
        If ``path`` runs through a file (``file.npz/x.npz``).
    FileNotFoundError
        If the target's folder does not exist.
    OSError
        If the file cannot be written (e.g. ``PermissionError``); the message names ``path``.
    """
    if not model.built:
        raise RuntimeError(
            "save() needs a built model: fit it, or give the first layer input_shape=... "
            "(or input_dim=...)."
        )
    target, real = _save_target(path)
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
            "metrics": _metric_configs(model._metric_specs),
            "weighted_metrics": _metric_configs(model._weighted_metric_specs),
            "iterations": opt.iterations,
            "state_keys": [sorted(s) for s in opt.state],
        }
        for i, s in enumerate(opt.state):
            for k, v in s.items():
                arrays[f"opt_{i}_{k}"] = model.backend.to_numpy(v)
    config["arrays"] = list(arrays)
    # the checksum covers the header as a reader will parse it (tuples become lists, ...)
    config["checksum"] = _checksum(arrays, config["arrays"], json.loads(json.dumps(config)))
    arrays["__config__"] = np.array(json.dumps(config))

    folder = os.path.dirname(real)
    try:
        fd, tmp = tempfile.mkstemp(prefix=".backprop-", suffix=".npz.tmp", dir=folder)
    except OSError as exc:
        raise _naming(exc, target, folder) from None  # the cause names the temporary file
    try:
        # mkstemp makes the file private (0600): give it the mode a plain open() would (the
        # umask's), or the replaced file's
        os.chmod(tmp, _file_mode(real))
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **arrays)
            f.flush()
            os.fsync(f.fileno())
        _replace(tmp, real)
    except BaseException as exc:
        if os.path.exists(tmp):
            os.remove(tmp)
        named = _naming(exc, target, folder) if isinstance(exc, OSError) else exc
        if named is exc:
            raise
        raise named from None  # the cause names the temporary file, this names the target
    return target


def _metric_configs(specs: list) -> list:
    """The compile's metric specs as JSON: names as given, instances as their configs."""
    return [m if isinstance(m, str) else m.get_config() for m in specs]


def _metrics_of(configs: list) -> list:
    """The metric specs of saved configs (``weighted_metrics`` is absent from older files)."""
    return [m if isinstance(m, str) else _metrics.get(m) for m in configs]


def _save_target(path: str | os.PathLike) -> tuple[str, str]:
    """The file ``save`` writes: ``(path with .npz, the real file behind any link)``.

    Refuses what is not a file name, with the reason, before any temporary file exists.
    """
    raw = os.fspath(path)
    if isinstance(raw, bytes):
        raw = os.fsdecode(raw)
    example = "e.g. model.save('models/model.npz')"
    if not raw:
        raise ValueError(f"save() expects a file name, received ''. Give one, {example}.")
    if raw.endswith(os.sep) or (os.altsep is not None and raw.endswith(os.altsep)):
        inside = os.path.join(raw, "model.npz")
        if os.path.isdir(raw):
            raise IsADirectoryError(
                f"Cannot save to {raw!r}: it names a folder, not a file. Give a file name "
                f"inside it, e.g. {inside!r}."
            )
        raise ValueError(
            f"Cannot save to {raw!r}: a path ending with a separator names a folder. Give a "
            f"file name, e.g. {inside!r} (create the folder first)."
        )
    target = _with_suffix(raw)
    for candidate in dict.fromkeys((raw, target)):  # 'models' would write models.npz beside it
        if os.path.isdir(candidate):
            raise IsADirectoryError(
                f"Cannot save to {raw!r}: {candidate} is a folder, not a file. Give a file "
                f"name inside it, e.g. {os.path.join(candidate, 'model.npz')!r}."
            )
    _check_folder(target, os.path.dirname(os.path.abspath(target)))
    # a link is written through: its target is replaced, in the target's folder
    real = os.path.realpath(target)
    if real != os.path.abspath(target):
        if os.path.isdir(real):
            raise IsADirectoryError(
                f"Cannot save to {target}: it is a link to the folder {real}, not to a file."
            )
        _check_folder(target, os.path.dirname(real))
    return target, real


def _check_folder(target: str, folder: str) -> None:
    """``folder`` must exist and be a folder: say which part of the path is wrong, if not."""
    if os.path.isdir(folder):
        return
    existing = folder
    while existing and not os.path.lexists(existing) and os.path.dirname(existing) != existing:
        existing = os.path.dirname(existing)
    if os.path.lexists(existing) and not os.path.isdir(existing):
        raise NotADirectoryError(
            f"Cannot save to {target}: {existing} is a file, not a folder, so nothing can be "
            "written inside it. Choose another path, or remove or rename that file."
        )
    raise FileNotFoundError(
        f"Cannot save to {target}: the folder {folder} does not exist. Create it first "
        "(e.g. os.makedirs(folder, exist_ok=True))."
    )


def _naming(exc: OSError, target: str, folder: str) -> OSError:
    """``exc`` with a message naming ``target`` (not the temporary file it was raised for)."""
    reason = exc.strerror or str(exc) or type(exc).__name__
    message = (
        f"Cannot save to {target}: {reason} (save writes a temporary file in {folder} and "
        "renames it over the target; check that you may write there)."
    )
    try:
        return type(exc)(exc.errno, message) if exc.errno is not None else type(exc)(message)
    except Exception:  # an OSError subclass with its own constructor: keep it as it was
        return exc


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
            head = fh.read(8)
            # NumPy takes any other start for a pickle and suggests unpickling it: say what
            # was found instead (a model file is a zip archive, which starts with "PK")
            if not head.startswith((b"PK", b"\x93NUMPY")):
                raise ValueError(
                    f"{path} is damaged or not a backprop model file: it is not a zip archive "
                    f"(it starts with {head!r}; a model file starts with b'PK')."
                )
            fh.seek(0)
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
        found = str(exc)
        if "pickle" in found:  # NumPy's advice to unpickle would run the file's code
            found = "it holds object arrays, which a model file never has"
        raise ValueError(f"{path} is damaged or not a backprop model file: {found}") from None
    except Exception as exc:  # untrusted bytes: any failure of the parsers means a damaged file
        raise ValueError(
            f"{path} is damaged or not a backprop model file: {type(exc).__name__}: {exc}"
        ) from None
    if not isinstance(config, dict) or config.get("format") != FORMAT:
        found = config.get("format") if isinstance(config, dict) else type(config).__name__
        raise ValueError(f"{path} is not a backprop model file (format {found!r}).")
    version = config.get("version")
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise ValueError(
            f"{path} is damaged: its header has format version {version!r}, which no backprop "
            "writes (versions are whole numbers from 1)."
        )
    if version > VERSION:
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
    if "checksum" not in config:
        raise ValueError(
            f"{path} is damaged or was not written by backprop's save: its header has no "
            "checksum, so its contents cannot be checked."
        )
    # version 1 checksums cover the arrays; version 2 ones the header too
    try:
        digest = _checksum(arrays, listed, config if version >= 2 else None)
    except (ValueError, RecursionError) as exc:  # a header JSON can parse but not re-encode
        raise ValueError(f"{path} is damaged: {type(exc).__name__}: {exc}") from None
    if digest != config["checksum"]:
        what = (
            "the header or the arrays were altered" if version >= 2 else "the arrays were altered"
        )
        raise ValueError(f"{path} is damaged: checksum mismatch ({what}).")
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
    path = os.fspath(path)
    config, arrays = _read(path)
    _check_layer_classes(path, config)
    # the model class registers itself by name (backprop.model): io sits below the model
    Sequential = _registry.lookup("model", MODEL_CLASS, hint="import backprop.model first.")
    try:
        mc = config["model"]
        layers = [_layers.from_config(s["class_name"], s["config"]) for s in mc["layers"]]
        model = Sequential(
            backend=backend, device=device, dtype=mc["dtype"], seed=mc["seed"], name=mc["name"]
        )
        # the layers take the saved arrays as they are built: no initial weights are drawn,
        # and each array leaves ``arrays`` as its layer takes it, so that memory holds about
        # one copy of the weights (see Sequential._add_built)
        n_weights = sum(1 for k in arrays if k.startswith("weight_"))
        weights = (arrays.pop(f"weight_{i}") for i in range(n_weights))
        standin = _Unset(np.dtype(mc["dtype"]))
        model._add_built(layers, weights, standin, mc.get("input_shape"))
        if "rng_state" in config:  # the next shuffles and dropout masks continue the streams
            model.streams.set_state(config["rng_state"])
        compiled = config.get("compile")
        if compiled is not None:
            optimizer = _optimizers.get(compiled["optimizer"])
            metrics = _metrics_of(compiled["metrics"])
            weighted = _metrics_of(compiled.get("weighted_metrics", []))  # absent: older files
            model.compile(_losses.get(compiled["loss"]), optimizer, metrics, weighted)
            optimizer.state = [
                {k: model.backend.asarray(arrays.pop(f"opt_{i}_{k}"), model.dtype) for k in keys}
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


class Saved(NamedTuple):
    """A model file read and checked by :func:`read`: what :func:`restore` writes into a model.

    Plain values (a path, a JSON document, NumPy arrays), so that one process can read a file
    and send it to others (data-parallel training restores rank 0's backup on every rank).
    """

    path: str
    config: dict
    arrays: dict[str, np.ndarray]


def read(path: str | os.PathLike, comm: Any = None) -> Saved:
    """Read and check a model file (format, version, checksum) without building a model.

    Parameters
    ----------
    path : str or os.PathLike
        The ``.npz`` file (``.npz`` may be left out, as for :func:`load`).
    comm : Communicator, optional
        Read on rank 0 only and sent to every rank (every rank calls ``read``; no shared
        file system is needed). A failure to read is raised on every rank, so that none
        waits for a file never sent.

    Returns
    -------
    Saved
        The path, the header and the arrays; give it to :func:`restore`.

    Raises
    ------
    FileNotFoundError
        No file at ``path``.
    ValueError
        A damaged, foreign, future-version or tampered file (the message says which).
    """
    path = os.fspath(path)
    if comm is None:
        return Saved(path, *_read(path))
    saved: Any = None
    if comm.is_root:
        try:
            saved = Saved(path, *_read(path))
        except Exception as exc:  # sent on as well
            saved = exc
    saved = comm.bcast(saved)
    if isinstance(saved, BaseException):
        if comm.is_root:
            raise saved
        raise ValueError(f"Rank 0 could not read the model file: {saved}")
    return saved


def restore(
    model: Any, saved: Saved, training_state: bool = False, own_dropout: bool = False
) -> None:
    """Write the weights of ``saved`` (and the training state) into the existing ``model``.

    Everything is checked before anything is written: a refused file leaves the model as it
    was. With ``training_state``, the optimizer's state, step count and learning rate (a
    schedule stays the model's) and the random streams follow the weights, so that training
    goes on as the saved model's would have (what ``BackupAndRestore`` resumes from).

    Parameters
    ----------
    model : Sequential
        A built model; compiled, with the file's optimizer class, for ``training_state``.
    saved : Saved
        A file read by :func:`read`.
    training_state : bool, default False
        Restore the optimizer and the random streams as well as the weights.
    own_dropout : bool, default False
        Keep the model's own dropout stream (the ranks but 0 of data-parallel training,
        whose masks differ from rank 0's).

    Raises
    ------
    RuntimeError
        If ``model`` is not built, or (``training_state``) not compiled.
    ValueError
        If the file holds another architecture (other layer classes or weight shapes), or
        (``training_state``) no optimizer state, or that of another optimizer.
    """
    path, config, arrays = saved
    verb = "_restore_training_state" if training_state else "load_weights"
    if not model.built:
        raise RuntimeError(
            f"{verb} needs a built model: give the first layer input_shape=... (or call "
            "model.build(shape)) first. bp.load(path) builds the model a file describes."
        )
    try:
        mc = config["model"]
        saved_classes = [str(s["class_name"]) for s in mc["layers"]]
        n_weights = sum(1 for k in arrays if k.startswith("weight_"))
        weights = [arrays[f"weight_{i}"] for i in range(n_weights)]
    except Exception as exc:  # a header that parses but does not describe a model
        raise ValueError(
            f"{path} is damaged: its header does not describe a valid model "
            f"({type(exc).__name__}: {exc})."
        ) from None
    classes = [type(layer).__name__ for layer in model.layers]
    shapes = [tuple(getattr(layer, store)[k].shape) for layer, store, k in model._weight_slots]
    saved_shapes = [tuple(w.shape) for w in weights]
    if saved_classes != classes or saved_shapes != shapes:
        if saved_classes != classes:
            differs = f"layers {', '.join(saved_classes)}; this model has {', '.join(classes)}"
        elif len(saved_shapes) != len(shapes):
            differs = f"{len(saved_shapes)} weight arrays; this model has {len(shapes)}"
        else:
            i = next(i for i, (a, b) in enumerate(zip(saved_shapes, shapes, strict=True)) if a != b)
            layer, _, k = model._weight_slots[i]
            differs = (
                f"weight {i} ({layer.name}.{k}) has shape {saved_shapes[i]}; this model's "
                f"has shape {shapes[i]}"
            )
        raise ValueError(
            f"{path} holds a model of another architecture: {differs}. Load it into a model "
            "built like the one saved, or with bp.load(path), which builds that model."
        )
    state: list[dict[str, np.ndarray]] = []
    if training_state:
        state = _saved_optimizer_state(model, saved)
    model.set_weights(weights)
    if not training_state:
        return
    opt, compiled = model.optimizer, config["compile"]
    # copies: a file read once may be restored into several models (the ranks of a process)
    opt.state = [
        {k: model.backend.asarray(np.array(v), model.dtype) for k, v in s.items()} for s in state
    ]
    opt.iterations = compiled["iterations"]
    lr = compiled["optimizer"].get("learning_rate")
    if (
        isinstance(lr, int | float)
        and not isinstance(lr, bool)
        and not hasattr(opt.learning_rate, "get_config")
    ):  # a constant rate changed in training (ReduceLROnPlateau); a schedule is the model's
        opt.learning_rate = float(lr)
    rng = dict(config.get("rng_state") or {})
    if own_dropout:
        rng.pop("dropout", None)
    model.streams.set_state(rng)


def _saved_optimizer_state(model: Any, saved: Saved) -> list[dict[str, np.ndarray]]:
    """The optimizer state of ``saved``, checked against ``model``'s optimizer and weights."""
    path, config, arrays = saved
    opt = model.optimizer
    if opt is None or model.loss is None:
        raise RuntimeError(
            "Restoring the training state needs a compiled model: call model.compile(...) "
            "with the loss and optimizer of the saved model first."
        )
    compiled = config.get("compile")
    if not isinstance(compiled, dict):
        raise ValueError(
            f"{path} holds no optimizer state (its model was not compiled when saved): "
            "restore the weights only, with model.load_weights(path)."
        )
    try:
        name = compiled["optimizer"]["name"]
        keys = [list(map(str, k)) for k in compiled["state_keys"]]
        state = [{k: arrays[f"opt_{i}_{k}"] for k in ks} for i, ks in enumerate(keys)]
        iterations = compiled["iterations"]
    except Exception as exc:
        raise ValueError(
            f"{path} is damaged: its header does not describe an optimizer state "
            f"({type(exc).__name__}: {exc})."
        ) from None
    if isinstance(iterations, bool) or not isinstance(iterations, int) or iterations < 0:
        raise ValueError(
            f"{path} is damaged: iterations must be an integer >= 0, not {iterations!r}."
        )
    if name != opt.name:
        raise ValueError(
            f"{path} holds the state of the optimizer {name!r}, but this model was compiled "
            f"with {opt.name!r}: it is the state of another training. "
            "Compile the model with the optimizer that was saved."
        )
    names = sorted(opt.state_names)
    found = [sorted(s) for s in state]
    if any(k != names for k in found):
        raise ValueError(
            f"{path} holds the optimizer state {found}, but {type(opt).__name__} keeps {names} "
            "(another setting of the optimizer, e.g. momentum or amsgrad): compile the model "
            "with the optimizer that was saved."
        )
    # one flat vector of the trainable weights, or one array per weight (clipnorm)
    model._sync_trainable()
    theta = model._theta
    if opt.clipnorm is None:
        expected = [(0 if theta is None else int(theta.shape[0]),)]
    else:
        expected = [tuple(layer.params[k].shape) for layer, k in model._param_slots]
    shapes = [tuple(v.shape) for s in state for v in s.values()]
    per_array = [sh for sh in expected for _ in names]
    if state and shapes != per_array:
        raise ValueError(
            f"{path} holds optimizer state of shapes {shapes}, but this model's trainable "
            f"weights need {per_array}: other layers were frozen, or clipnorm differs. "
            "Set them as they were when the file was saved."
        )
    return state


class _Unset:
    """Stands in for the initializers of a model being loaded: ``numpy.empty``, nothing drawn.

    Not an ``Initializer``: it is never saved nor named, and exists only during ``build``.
    The memory it asks for is not touched (the OS gives pages as they are written), and the
    saved arrays replace it at once.
    """

    def __init__(self, dtype: np.dtype):
        self.dtype = dtype

    def __call__(self, shape: tuple[int, ...], rng: Any) -> np.ndarray:
        return np.empty(shape, self.dtype)


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
