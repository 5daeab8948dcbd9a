"""The epoch's loss and metrics: sums on the device, one transfer to the host per epoch."""

from __future__ import annotations

from typing import Any

from .. import data as _data

Array = Any


def split(model: Any, Y: Array) -> tuple[Array, Array | None]:
    """The targets and the sample weights of ``Y`` (see :func:`backprop.data.split_weights`)."""
    return _data.split_weights(Y, model.output_dim)


def loss_value(model: Any, Y: Array, Y_hat: Array, Z: Array | None) -> Array:
    """The mean loss of ``(Y, Y_hat)``, from the logits ``Z`` when the loss is fused.

    With sample weights (a last column of ``Y``), Keras's ``sum_over_batch_size``: the sum
    of the weighted per-sample losses over the rows.
    """
    Y, w = split(model, Y)
    if w is not None:
        return model.loss.weighted(Y, Y_hat, w, model.xp, Z)
    if Z is not None:
        return model.loss.from_logits(Y, Z, Y_hat, model.xp)[0]
    return model.loss.forward(Y, Y_hat, model.xp)


def metric_stats(model: Any, y: Array, y_hat: Array) -> list:
    """The metrics' statistics of a batch.

    The metrics of ``compile(metrics=...)`` are unweighted; those of ``weighted_metrics``
    weigh each row by the weights column of ``y`` (its rows counted without one).
    """
    y, w = split(model, y)
    return [s for _, m in model.metrics for s in m._logged_stats(y, y_hat, model.xp, w)]


def epoch_sums(model: Any, Y, Y_hat, Z, penalties: list, dead: list) -> tuple:
    """The epoch's summed loss and metric statistics, and the dead-layer flags.

    The loss and the metrics of every step, computed once from the outputs each step
    produced (with that step's weights): the numbers per-step sums would give, for a
    handful of operations per epoch instead of a dozen per step.
    """
    xp = model.xp
    total_loss = loss_value(model, Y, Y_hat, Z) * Y.shape[0]
    if penalties:
        total_loss = total_loss + xp.sum(xp.stack(penalties))
    totals = metric_stats(model, Y, Y_hat)
    flags = [xp.astype(flag, total_loss.dtype) for flag in dead]
    return total_loss, [*totals, *flags]


def accumulate(model: Any, totals: list[Any], y: Array, y_hat: Array) -> list[Any]:
    """``totals`` plus the metric statistics of one batch."""
    stats = metric_stats(model, y, y_hat)
    if not totals:
        return stats
    return [a + b for a, b in zip(totals, stats, strict=True)]


def stack(model: Any, total_loss: Any, totals: list[Any]) -> Array:
    """The loss and the statistics as one device array: one transfer brings them all."""
    return model.xp.stack([total_loss, *totals])


def batch_sums(model: Any, y: Array, y_hat: Array, z: Array | None, penalty: Any) -> Array:
    """One batch's summed loss and metric statistics, as :func:`stack` lays them out.

    ``penalty`` is the regularization penalty times the batch's rows (or None). Summed over
    the batches so far and handed to :func:`finish`, they give the running averages the
    batch logs hold.
    """
    total_loss = loss_value(model, y, y_hat, z) * y.shape[0]
    if penalty is not None:
        total_loss = total_loss + penalty
    return stack(model, total_loss, accumulate(model, [], y, y_hat))


def finish(model: Any, sums: Array, n: int, n_extra: int = 0, local: bool = False) -> dict:
    """Bring the epoch's device sums to the host in one transfer and finish the metrics.

    ``n_extra`` trailing entries of ``sums`` are dead-layer flags of the last batch. Under
    data parallelism the sums are added over the ranks first, unless ``local``.
    """
    if model._comm is not None and not local:  # one sum over the ranks per epoch
        sums = model._comm.allreduce(sums, model.backend)
    host = [float(v) for v in model.backend.to_numpy(sums)]
    logs: dict[str, Any] = {}
    if n_extra:
        logs["_dead_in_last_batch"] = any(host[-n_extra:])
        host = host[:-n_extra]
    logs = {"loss": host[0] / n, **logs}
    i, k = 1, model.output_dim
    for name, metric in model.metrics:
        logs[name] = float(metric.result(host[i : i + metric.n_stats], n, k))
        i += metric.n_stats
    return logs
