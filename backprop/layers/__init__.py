"""Layers: the package; ``core`` holds every layer for now (the split follows)."""

from __future__ import annotations

import inspect

from . import core
from .core import (  # noqa: F401
    _REGISTRY,
    Activation,
    Array,
    BatchNormalization,
    Dense,
    Dropout,
    Layer,
    LayerNormalization,
    _auto_name,
    _check_epsilon,
    _check_positive_int,
    _counters,
    _initializer_config,
    _known_layers,
    _Normalization,
    _Unresolvable,
    from_config,
)

__all__ = [
    "Activation",
    "BatchNormalization",
    "Dense",
    "Dropout",
    "Layer",
    "LayerNormalization",
    "from_config",
]

for _name in __all__:
    _obj = globals()[_name]
    if inspect.isclass(_obj) or inspect.isfunction(_obj):
        _obj.__module__ = __name__
del _name, _obj
