"""The data layer: the checks on user input, and (as the package grows) its way to the model.

The modules, each one concept:

- :mod:`~backprop.data.checks`: the checks on in-memory input, run once per call before
  anything touches the model, and :func:`to_device`, its move to the model's backend.

Every name other modules use as ``backprop.data.NAME`` is bound here, as when the package was
one module ``data.py`` (the private helpers of the checks: ``backprop.data.checks._NAME``).
"""

from __future__ import annotations

from . import checks
from .checks import (
    as_array,
    check_class_weight,
    check_device,
    check_fraction,
    check_inputs,
    check_positive_int,
    check_sample_weight,
    check_X,
    check_y,
    class_weight_to_sample_weight,
    split_weights,
    to_device,
)

__all__ = [
    "as_array",
    "check_X",
    "check_class_weight",
    "check_device",
    "check_fraction",
    "check_inputs",
    "check_positive_int",
    "check_sample_weight",
    "check_y",
    "checks",
    "class_weight_to_sample_weight",
    "split_weights",
    "to_device",
]
