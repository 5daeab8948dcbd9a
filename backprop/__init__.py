"""backprop: neural networks with hand-written backpropagation on any Array API library.

Examples
--------
>>> import backprop as bp
>>> model = bp.Sequential([bp.layers.Dense(4, "relu", input_dim=2),
...                        bp.layers.Dense(1, "sigmoid")], seed=0)
>>> model.count_params()
17
"""

from . import (
    activations,
    callbacks,
    constraints,
    data,
    datasets,
    distributed,
    initializers,
    layers,
    losses,
    metrics,
    optimizers,
    regularizers,
    schedules,
)
from ._version import __version__
from .backend import (
    Backend,
    BackendError,
    BackendNotInstalledError,
    available_backends,
    get_backend,
    set_backend,
    to_numpy,
    use_backend,
)
from .clone import clone_model
from .gradcheck import gradcheck
from .io import load
from .model import Sequential

__all__ = [
    "Backend",
    "BackendError",
    "BackendNotInstalledError",
    "Sequential",
    "__version__",
    "activations",
    "available_backends",
    "callbacks",
    "clone_model",
    "constraints",
    "data",
    "datasets",
    "distributed",
    "get_backend",
    "gradcheck",
    "initializers",
    "layers",
    "load",
    "losses",
    "metrics",
    "optimizers",
    "regularizers",
    "schedules",
    "set_backend",
    "to_numpy",
    "use_backend",
]
