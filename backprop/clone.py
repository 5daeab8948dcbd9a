"""Copies of a model: ``bp.clone_model`` (Keras's semantics) and the working copy built on it.

:func:`clone_model` makes a new model of the same class and architecture, as
``keras.models.clone_model`` does: new layers from the layers' configs, so new weights (drawn
from the model's seed: the weights the model itself started from), and not compiled.

``explain`` and ``gradcheck`` need more: a copy with the model's *current* weights and its
compile settings, to run a step on without touching the model. :func:`_working_copy` builds
that on top of :func:`clone_model` (``set_weights``, then ``compile`` with a fresh optimizer of
the same config).

This module sits just below the model (``backprop.model``), beside ``io`` and ``explain``: it
builds the clone from the class of the model it is given (``type(model)``), so it never
imports the model, and the model's ``explain`` can hand over to code that clones.
"""

from __future__ import annotations

from typing import Any

from . import layers as _layers
from . import optimizers as _optimizers
from .backend import resolve


def clone_model(
    model: Any,
    *,
    backend: Any = None,
    device: Any = None,
    dtype: str | None = None,
    input_dim: int | None = None,
    input_shape: tuple[int, ...] | None = None,
) -> Any:
    """A new model of the same architecture, with new weights and no compile settings.

    As ``keras.models.clone_model``: the layers are made anew from their configs
    (``type(layer).from_config``-style, through ``bp.layers.from_config``), so the clone shares
    nothing with ``model``. Its weights are drawn from ``model.seed``: for a seeded model they
    are the weights it was initialized with, not its trained ones (copy those with
    ``clone.set_weights(model.get_weights())``). Compile it before training, as in Keras.

    Parameters
    ----------
    model : Sequential
        The model to clone (built or not, compiled or not).
    backend, device : optional
        Where the clone lives; ``model``'s backend and device when both are omitted.
    dtype : {"float32", "float64"}, optional
        The clone's dtype; ``model``'s when omitted.
    input_dim : int, optional
        Builds the clone of an unbuilt model for this many input features.
    input_shape : tuple of int, optional
        Builds the clone of an unbuilt model for samples of this shape (``input_dim=k`` is
        short for ``input_shape=(k,)``).

    Returns
    -------
    Sequential
        A new, uncompiled model of ``type(model)``, built for ``model``'s input shape when
        ``model`` is built (or when ``input_shape`` or ``input_dim`` is given).

    Examples
    --------
    >>> import numpy as np, backprop as bp
    >>> model = bp.Sequential([bp.layers.Dense(2, "relu", input_dim=3),
    ...                        bp.layers.Dense(1, "sigmoid")], seed=0)
    >>> clone = bp.clone_model(model)
    >>> clone.layers[0] is model.layers[0], clone.loss is None
    (False, True)
    >>> all(np.array_equal(a, b) for a, b in zip(clone.get_weights(), model.get_weights()))
    True
    """
    if backend is None and device is None:
        target = model.backend
    else:
        target = resolve(backend if backend is not None else model.backend.name, device)
    config = model.get_config()
    layers = [_layers.from_config(s["class_name"], s["config"]) for s in config["layers"]]
    clone = type(model)(
        layers,
        backend=target,
        dtype=dtype or config["dtype"],
        seed=model.seed,
        name=model.name,
        capture=model.capture,
    )
    shape = model.input_shape or input_shape or (None if input_dim is None else (input_dim,))
    if not clone.built and shape is not None:
        clone.build(shape)
    return clone


def _working_copy(
    model: Any,
    dtype: str | None = None,
    backend: Any = None,
    input_dim: int | None = None,
    input_shape: tuple[int, ...] | None = None,
) -> Any:
    """``model`` copied: architecture, current weights and compile settings, on ``backend``.

    :func:`clone_model`, then the model's weights and, when it is compiled, its loss, metrics
    (weighted ones included) and a new optimizer of the same config (fresh state: the copy's
    step is a first step).
    What ``explain`` and ``gradcheck`` run on, so that the model itself is not changed.
    float64 copies of a model whose device has no float64 go to NumPy. An unbuilt model is
    built for ``input_dim`` features: its seed gives the weights it would have drawn itself.

    Parameters
    ----------
    model : Sequential
        The model copied.
    dtype : str, optional
        The copy's dtype; the model's when omitted.
    backend : str or Backend, optional
        The copy's backend; the model's when omitted.
    input_dim : int, optional
        The input width to build an unbuilt model for.
    input_shape : tuple of int, optional
        The sample shape to build an unbuilt model for (instead of ``input_dim``).

    Returns
    -------
    Sequential
        The copy.
    """
    target = model.backend if backend is None else resolve(backend)
    if dtype == "float64" and not target.supports_float64:
        target = resolve("numpy")
    copy = clone_model(
        model, backend=target, dtype=dtype, input_dim=input_dim, input_shape=input_shape
    )
    if not copy.built:  # as the model's own build would say it
        copy.build(input_shape or input_dim)
    if model.built:
        copy.set_weights(model.get_weights())
    if model.loss is not None:
        optimizer = _optimizers.get(model.optimizer.get_config())
        weighted = model._weighted_metric_specs
        copy.compile(model.loss, optimizer, model._metric_specs, weighted)
    return copy
