"""One training step on a batch: forward, backward, the optimizer's update of the flat vector.

The engines share it: the eager engine runs it step by step, the sharded one sums the gradient
over the ranks between the backward pass and the update, the compiled one traces the same
forward and backward into its program.
"""

from __future__ import annotations

from typing import Any

Array = Any


def update(model: Any, g: Array | None = None) -> None:
    """The optimizer's step on the flat vector (per weight array for per-array clipnorm).

    ``g`` is the flat gradient when it comes from elsewhere (summed over ranks), else the
    layers' gradients are used.
    """
    xp, opt = model.xp, model.optimizer
    if model._theta is None:
        return
    if opt.clipnorm is None:
        theta = opt.apply([model._theta], [model._flat_grads() if g is None else g], xp)[0]
        if theta is not model._theta:  # immutable arrays (JAX): the update rebound it
            model._theta = theta
            model._bind_views()
        return
    views = [layer.params[k] for layer, k in model._param_slots]
    grads = [layer.grads[k] for layer, k in model._param_slots] if g is None else model._split(g)
    new = opt.apply(views, grads, xp)
    if any(W is not V for W, V in zip(new, views, strict=True)):
        for (layer, k), W in zip(model._param_slots, new, strict=True):
            layer.params[k] = W
        model._collect_params()


def train_step(model: Any, x: Array, y: Array) -> tuple[Array, Array]:
    """One step of gradient descent; returns the batch loss and ``y_hat`` (on the device)."""
    y_hat = model._forward(x, training=True)
    loss = model._loss_and_backward(y, y_hat)
    update(model)
    return loss, y_hat


def step(model: Any, x: Array, y: Array) -> Array:
    """``train_step`` without the loss value.

    ``fit`` computes an epoch's loss once, from the outputs its steps produced, instead of
    once per step.
    """
    y_hat = model._forward(x, training=True)
    model._backward_from_loss(y, y_hat)
    update(model)
    return y_hat
