"""Saving and loading models without pickle: one ``.npz`` file of arrays plus a JSON header.

The file holds the architecture (``Sequential.get_config``), the weights, the compile settings
and the optimizer's state, all as plain arrays and JSON text, so loading never executes code
(``numpy.load(..., allow_pickle=False)``). Weights are stored as host NumPy arrays and can be
loaded onto any backend and device.
"""

from __future__ import annotations

import json
import os
from typing import Any

import numpy as np

from . import layers as _layers
from . import losses as _losses
from . import optimizers as _optimizers

FORMAT = "backprop-sequential"
VERSION = 1


def save(model: Any, path: str | os.PathLike) -> None:
    """Write ``model`` to ``path`` (``.npz`` is appended by NumPy when missing)."""
    if not model.built:
        raise RuntimeError("save() needs a built model: fit it or give the first layer input_dim.")
    config = {
        "format": FORMAT,
        "version": VERSION,
        "model": model.get_config(),
        "rng_state": model.streams.get_state(),
    }
    arrays: dict[str, np.ndarray] = {}
    for i, w in enumerate(model.get_weights()):
        arrays[f"weight_{i}"] = w
    if model.loss is not None:
        opt = model.optimizer
        config["compile"] = {
            "loss": model.loss.get_config(),
            "optimizer": opt.get_config(),
            "metrics": [m if isinstance(m, str) else m.name for m in model._metric_specs],
            "iterations": opt.iterations,
            "state_keys": [sorted(s) for s in opt.state],
        }
        for i, s in enumerate(opt.state):
            for k, v in s.items():
                arrays[f"opt_{i}_{k}"] = model.backend.to_numpy(v)
    arrays["__config__"] = np.array(json.dumps(config))
    np.savez(path, **arrays)


def load(path: str | os.PathLike, backend: str | None = None, device: Any = None) -> Any:
    """Load a model saved with :meth:`Sequential.save` onto ``backend``/``device``.

    Parameters
    ----------
    path : str or path
        The ``.npz`` file.
    backend, device : optional
        Where to put the model; None follows the usual precedence (current backend).
    """
    from .model import Sequential

    with np.load(path, allow_pickle=False) as f:
        if "__config__" not in f:
            raise ValueError(f"{path} is not a backprop model file (no __config__ entry).")
        config = json.loads(str(f["__config__"]))
        arrays = {k: f[k] for k in f.files if k != "__config__"}
    if config.get("format") != FORMAT:
        raise ValueError(f"{path} is not a backprop model file (format {config.get('format')!r}).")
    mc = config["model"]
    layers = [_layers.from_config(spec["class_name"], spec["config"]) for spec in mc["layers"]]
    model = Sequential(
        layers, backend=backend, device=device, dtype=mc["dtype"], seed=mc["seed"], name=mc["name"]
    )
    if "rng_state" in config:  # the next shuffles and dropout masks continue the saved streams
        model.streams.set_state(config["rng_state"])
    n_weights = sum(1 for k in arrays if k.startswith("weight_"))
    model.set_weights([arrays[f"weight_{i}"] for i in range(n_weights)])
    compiled = config.get("compile")
    if compiled is not None:
        optimizer = _optimizers.get(compiled["optimizer"])
        model.compile(_losses.get(compiled["loss"]), optimizer, compiled["metrics"])
        optimizer.state = [
            {k: model.backend.asarray(arrays[f"opt_{i}_{k}"], model.dtype) for k in keys}
            for i, keys in enumerate(compiled["state_keys"])
        ]
        optimizer.iterations = compiled["iterations"]
    return model


def _clone(model: Any, dtype: str | None = None, backend: Any = None) -> Any:
    """A copy of ``model`` (architecture, weights, loss) on ``backend`` in ``dtype``.

    float64 copies of a model whose device has no float64 go to NumPy.
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
        clone.build(model.input_dim)
    clone.set_weights(model.get_weights())
    if model.loss is not None:
        optimizer = _optimizers.get(model.optimizer.get_config())
        clone.compile(model.loss, optimizer, model._metric_specs)
    return clone
