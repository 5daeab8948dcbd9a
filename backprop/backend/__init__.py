"""Array backends: names -> (Array API namespace, device), and moves between host and device.

This is the only package of backprop that names an array library. Everything else receives a
:class:`Backend` (or an ``xp`` namespace taken from one) and speaks the Python Array API standard.

Precedence of the backend choice, highest first: an explicit ``backend=``/``device=`` argument;
``with use_backend(...)``; ``set_backend(...)``; the environment variable ``BACKPROP_BACKEND``
(``"cupy"``, ``"torch:cuda:0"``, ``"array_api_strict:device1"``); the default ``"numpy"``.

Examples
--------
>>> import backprop as bp
>>> with bp.use_backend("numpy"):
...     bp.get_backend().name
'numpy'
"""

from __future__ import annotations

import inspect
import sys
from types import ModuleType
from typing import Any

from . import arrays, capture, core, kernels, namespaces, selection, threads, transfer
from .arrays import array_backend_name, device_of, to_numpy
from .capture import CaptureError
from .core import Backend, BackendError, BackendNotInstalledError
from .kernels import fused
from .selection import (
    BACKENDS,
    ENV_VAR,
    available_backends,
    backend_of,
    get_backend,
    resolve,
    set_backend,
    use_backend,
)
from .threads import limit_cpu_threads
from .transfer import Transfer, uses_copy_stream

__all__ = [
    "BACKENDS",
    "ENV_VAR",
    "FUSE",
    "Backend",
    "BackendError",
    "BackendNotInstalledError",
    "CaptureError",
    "Transfer",
    "array_backend_name",
    "available_backends",
    "backend_of",
    "device_of",
    "fused",
    "get_backend",
    "limit_cpu_threads",
    "resolve",
    "set_backend",
    "to_numpy",
    "use_backend",
    "uses_copy_stream",
]

# The modules, each importing only modules further down (an import-linter contract keeps it so):
#   selection   which backend a name means, and which is current (resolve, set/get/use)
#   core        the Backend class and its errors
#   kernels     the fused CuPy kernels (FUSE)
#   namespaces  each library's namespace, safe to record
#   capture     CUDA-graph recording (CuPy, torch) and the recording's matrix product
#   arrays      which library an array belongs to, its device, to_numpy
#   threads     the CPU threads of torch's kernels, limited for a command
#   transfer    batches from the host to the device (CUDA: pinned memory, a copy stream)
_PARTS: tuple[ModuleType, ...] = (
    selection,
    core,
    kernels,
    namespaces,
    capture,
    arrays,
    threads,
    transfer,
)


# The package is one namespace to its users, as when it was one module: ``bp.backend.NAME``
# reads NAME from the module of the package that holds it, and writing ``bp.backend.NAME``
# writes it in every module that holds it. So the setting ``bp.backend.FUSE = False`` reaches
# the kernels that read it, ``bp.backend._global`` follows ``set_backend``, and a test's
# monkeypatch of a private name (``_GEMMS``, ``_global``) changes what the package's code
# uses, while no module of the package imports this one back. Each such name is a property of
# the package's class: a data descriptor, which monkeypatch reads and restores by value.
def _shared(name: str) -> property:
    holders = [part for part in _PARTS if name in vars(part)]
    first = vars(holders[0])

    def get(self: ModuleType) -> Any:
        return first[name]

    def put(self: ModuleType, value: Any) -> None:
        for part in holders:
            setattr(part, name, value)
        if name in vars(self):  # the public names are bound here too, for readers and tools
            vars(self)[name] = value

    return property(get, put, doc=f"``{name}`` of {holders[0].__name__}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(vars(_Package)) - set(vars(ModuleType)))


_Package = type(
    "_Package",
    (ModuleType,),
    {
        name: _shared(name)
        for part in _PARTS
        for name in vars(part)
        if not (name.startswith("__") and name.endswith("__"))  # each module's own
    },
)

# repr, tracebacks and pickles name the objects where users reach them, as before the split
for _name in __all__:
    _obj = globals().get(_name)
    if inspect.isclass(_obj) or inspect.isfunction(_obj):
        _obj.__module__ = __name__
del _name, _obj

sys.modules[__name__].__class__ = _Package
