"""The dead-network probe: hidden ReLU layers whose every unit is off on the training data."""

from __future__ import annotations

import warnings
from typing import Any

from .errors import DeadNetworkWarning

Array = Any

# rows of the training data used to look for dead layers: enough to see a live unit
DEAD_CHECK_ROWS = 512


def relu_hidden(model: Any) -> list:
    """The hidden layers with a ReLU activation, bottom first."""
    return [
        layer
        for layer in model.layers[:-1]
        if getattr(getattr(layer, "activation", None), "name", None) == "relu"
    ]


def dead_layers(model: Any, X: Array) -> list[str]:
    """Names of the hidden ReLU layers inactive on all of ``X`` (on the device already)."""
    hidden = relu_hidden(model)
    if not hidden:
        return []
    program = compiled_probe(model)
    if program is None:
        flags = dead_flags(model, model._theta, model._get_buffers(), X)
    else:
        theta, buffers = model._theta, model._get_buffers()
        try:
            flags = program(theta, buffers, X)
        finally:  # the trace left its placeholders in the layers
            model._theta = theta
            model._bind_views()
            model._set_buffers(buffers)
    return [
        layer.name
        for layer, dead in zip(hidden, model.backend.to_numpy(flags), strict=True)
        if dead
    ]


def dead_flags(model: Any, theta: Array, buffers: list, X: Array) -> Array:
    """For each hidden ReLU layer, whether all its pre-activations on ``X`` are <= 0.

    The weights are inputs (``theta`` and the ``buffers``: moving statistics, frozen layers),
    not constants baked into the compiled probe.
    """
    xp = model.xp
    if theta is not model._theta:  # a traced theta (the compiled probe)
        model._theta = theta
        model._bind_views(compiled=False)
        model._set_buffers(buffers)
    model._forward(X, training=False)
    return xp.stack([xp.all(layer.z <= 0) for layer in relu_hidden(model)])


def compiled_probe(model: Any) -> Any:
    """``dead_flags`` compiled (JAX: one call instead of an eager forward), or None."""
    key = (model.backend, tuple(model._bounds), model._trainable_key, tuple(map(id, model.layers)))
    if getattr(model, "_probe", (None, None))[0] != key:
        program = model.backend.compile(
            lambda theta, buffers, X: dead_flags(model, theta, buffers, X)
        )
        model._probe = (key, program)
    return model._probe[1]


def warn_dead(model: Any, X: Array, when: str) -> bool:
    """Warn (on rank 0) when a hidden layer is dead on ``X``; returns whether one is."""
    dead = dead_layers(model, X)
    if dead and (model._comm is None or model._comm.is_root):
        warnings.warn(
            f"Dead network {when}: every unit of hidden layer(s) {', '.join(dead)} is "
            "inactive (ReLU input <= 0) on the training data, so no gradient reaches the "
            "layers below and the model predicts a constant. Remedies: another seed, "
            "kernel_initializer='he_uniform', activation='leaky_relu', or a lower learning "
            "rate.",
            DeadNetworkWarning,
            # warn_dead < _run < _epochs < loop.fit < Sequential.fit < _on_device < the user
            stacklevel=7,
        )
    return bool(dead)
