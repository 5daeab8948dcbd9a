"""One training step on a batch: forward, backward, the optimizer's update of the flat vector.

The engines share it: the eager engine runs it step by step, the sharded one sums the gradient
over the ranks between the backward pass and the update, the compiled one traces the same
forward and backward into its program.
"""

from __future__ import annotations

from typing import Any

from .. import data as _data

Array = Any


def update(model: Any, g: Array | None = None) -> None:
    """The optimizer's step on the flat vector (per weight array for per-array clipnorm).

    ``g`` is the flat gradient when it comes from elsewhere (summed over ranks), else the
    layers' gradients are used. Then the layers' weight constraints, as in Keras: each
    constrained weight is assigned ``constraint(weight)`` after the update.
    """
    xp, opt = model.xp, model.optimizer
    if model._theta is None:
        return
    if opt.clipnorm is None:
        theta = opt.apply([model._theta], [model._flat_grads() if g is None else g], xp)[0]
        if model._constrained:
            theta = model._constrain(theta)
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
    if model._constrained:
        theta = model._constrain(model._theta)
        if theta is not model._theta:  # immutable arrays (JAX)
            model._theta = theta
            model._bind_views()


def backward(model: Any, y: Array, y_hat: Array) -> None:
    """The backward pass of the loss of ``(y, y_hat)``, with the sample weights ``y`` carries.

    Without weights, the model's own pass. With them (a last column of ``y``), the loss is
    ``sum_i w_i L_i / n``, so dL/dy_hat (dL/dz for a fused loss) is the unweighted one with
    row ``i`` scaled by ``w_i``; the regularization penalties stay unweighted.
    """
    y, w = _data.split_weights(y, y_hat.shape[-1])
    if w is None:
        model._backward_from_loss(y, y_hat)
        return
    xp, layers = model.xp, model.layers
    w = xp.reshape(w, (-1, 1))
    first = layers[0]
    first.need_dx = False  # nothing needs the gradient of the data (as the model's pass)
    try:
        if model._fused:
            dy = layers[-1].backward_from_logits(w * model.loss.logits_gradient(y, y_hat, xp))
        else:
            dy = layers[-1].backward(w * model.loss.gradient(y, y_hat, xp))
        for layer in reversed(layers[:-1]):
            dy = layer.backward(dy)
    finally:
        first.need_dx = True


def loss_and_backward(model: Any, y: Array, y_hat: Array) -> Array:
    """The batch loss (with the penalties of these weights) and the backward pass."""
    targets, w = _data.split_weights(y, y_hat.shape[-1])
    if w is None:
        return model._loss_and_backward(y, y_hat)
    z = model.layers[-1].z if model._fused else None
    loss = model.loss.weighted(targets, y_hat, w, model.xp, z)
    backward(model, y, y_hat)
    penalty = model._penalty()
    return loss if penalty is None else loss + penalty


def train_step(model: Any, x: Array, y: Array) -> tuple[Array, Array]:
    """One step of gradient descent; returns the batch loss and ``y_hat`` (on the device)."""
    y_hat = model._forward(x, training=True)
    if y.shape[-1] != y_hat.shape[-1]:  # sample weights ride along, a last column of y
        loss = loss_and_backward(model, y, y_hat)
        update(model)
        return loss, y_hat
    loss = model._loss_and_backward(y, y_hat)
    update(model)
    return loss, y_hat


def step(model: Any, x: Array, y: Array) -> Array:
    """``train_step`` without the loss value.

    ``fit`` computes an epoch's loss once, from the outputs its steps produced, instead of
    once per step.
    """
    y_hat = model._forward(x, training=True)
    backward(model, y, y_hat)
    update(model)
    return y_hat
