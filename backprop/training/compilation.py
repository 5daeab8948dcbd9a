"""What ``compile`` sets on a model: its loss, its optimizer and its metrics, checked first.

A compile that raises leaves the model as it was; an optimizer trains one model only.
"""

from __future__ import annotations

from typing import Any

from .. import losses as _losses
from .. import metrics as _metrics
from .. import optimizers as _optimizers


def compile(
    model: Any, loss: Any, optimizer: Any, metrics: Any, weighted_metrics: Any = None
) -> None:
    """``model.compile``: resolve everything, then assign (see ``Sequential.compile``)."""
    if not model.layers:
        raise ValueError("compile() needs layers: add them before compiling.")
    # everything is resolved before anything is assigned: a compile that raises leaves
    # the model as it was
    loss = _losses.get(loss)
    optimizer = _optimizers.get(optimizer)
    specs = _specs(metrics, "metrics")
    weighted = _specs(weighted_metrics, "weighted_metrics")
    resolved = resolve_metrics(model, specs, loss, weighted)
    model._sync_trainable()  # layers frozen since the last packing leave theta now
    claim(model, optimizer)
    if model.optimizer is not None and model.optimizer is not optimizer:
        model.optimizer._model_token = None  # the one it replaces may train another model
    model.loss, model.optimizer = loss, optimizer
    model._metric_specs, model._weighted_metric_specs = specs, weighted
    model.metrics = resolved
    model._compiled = None  # the compiled epoch depends on the loss, optimizer and metrics


def _specs(metrics: Any, argument: str) -> list:
    """The list of metric specs ``metrics`` (None: none; one name or instance: a list of it)."""
    if metrics is None:
        return []
    if isinstance(metrics, str | _metrics.Metric):
        return [metrics]
    if not isinstance(metrics, list | tuple):
        raise TypeError(
            f"{argument} must be a list of names or Metric instances, received "
            f"{type(metrics).__name__}."
        )
    return list(metrics)


def claim(model: Any, optimizer: _optimizers.Optimizer) -> None:
    """Make ``optimizer`` the model's; refuse one that another model trains with.

    An optimizer's moments and step count belong to the weights it updated (as in Keras 3
    and PyTorch, where an optimizer is built for one set of variables): a second model
    would inherit them, or fail on their shapes.
    """
    owner = getattr(optimizer, "_model_token", None)
    if owner is not None and owner != model._token:
        raise ValueError(
            f"This {type(optimizer).__name__} instance was compiled into another model, whose "
            "optimizer it still is: an optimizer's state (moments, step count) belongs to the "
            "weights it updates. Give each model its own optimizer, e.g. "
            "optimizer=bp.optimizers.get(other.optimizer.get_config())."
        )
    if optimizer.state and not _made_for(model, optimizer):
        optimizer.state, optimizer.iterations = [], 0  # made for other weights: rebuild
    optimizer._model_token = model._token
    model._optimizer_layout = _layout(model)


def _layout(model: Any) -> tuple:
    """Which weights theta holds, in which slices: what the optimizer's state is made for."""
    if not model.built:
        return ()
    return (model._trainable_key, tuple(model._bounds))


def _made_for(model: Any, optimizer: _optimizers.Optimizer) -> bool:
    """Whether the optimizer's state was made for the weights theta holds now.

    The shapes, and the layout recorded when it was built: the same total with other layers
    frozen has the shapes, not the meaning.
    """
    recorded = getattr(model, "_optimizer_layout", None)
    return state_fits(model, optimizer) and recorded in (None, (), _layout(model))


def state_fits(model: Any, optimizer: _optimizers.Optimizer) -> bool:
    """Whether the optimizer's state has the shapes of the model's weights."""
    if not model.built or model._theta is None:
        return not optimizer.state
    if optimizer.clipnorm is None:
        shapes = [tuple(model._theta.shape)]
    else:
        shapes = [tuple(layer.params[k].shape) for layer, k in model._param_slots]
    return len(optimizer.state) == len(shapes) and all(
        tuple(v.shape) == shape
        for s, shape in zip(optimizer.state, shapes, strict=True)
        for v in s.values()
    )


def check_optimizer_state(model: Any) -> None:
    """Refuse to train with optimizer state made for other weights.

    That is model.add after fit, or a layer frozen or unfrozen since; then record the layout
    the state is made for.
    """
    model._sync_trainable()
    if model.optimizer.state and not _made_for(model, model.optimizer):
        trainable = 0 if model._theta is None else int(model._theta.shape[0])
        raise ValueError(
            f"The optimizer's state was made for other weights than the model's {trainable} "
            "trainable parameters: a layer was added, frozen or unfrozen since training began. "
            "Call model.compile(...) again: its state is rebuilt for the new weights."
        )
    model._optimizer_layout = _layout(model)


def resolve_metrics(
    model: Any,
    specs: list | None = None,
    loss: _losses.Loss | None = None,
    weighted: list | None = None,
) -> list[tuple[str, _metrics.Metric]]:
    """``(name, Metric)`` for each spec, then each weighted spec (instances: their own name).

    A weighted metric is logged under its name, or, as Keras 3 names it, under
    ``"weighted_" + name`` when a metric before it has that name already.
    """
    specs = model._metric_specs if specs is None else specs
    if weighted is None:
        weighted = model._weighted_metric_specs
    loss = model.loss if loss is None else loss
    out = model.output_dim if model.built else 1

    def named(spec):
        metric = _metrics.get(spec, loss.kind, out)
        return (spec if isinstance(spec, str) else metric.name), metric

    resolved = [named(spec) for spec in specs]
    for spec in weighted:
        name, metric = named(spec)
        if any(name == taken for taken, _ in resolved):
            name = "weighted_" + name
        resolved.append((name, _metrics._Weighted(metric)))
    _metrics._check_names(resolved)  # two log keys of one name would overwrite each other
    return resolved


def require_compiled(model: Any, what: str) -> None:
    """Raise unless ``compile`` has given the model a loss and an optimizer."""
    if model.loss is None or model.optimizer is None:
        raise RuntimeError(
            f"{what}() needs a compiled model: call model.compile(loss=..., optimizer=...) first."
        )
