"""One runner per framework, all with the same interface.

A runner is made once per (workload, dtype) in its worker process::

    runner = RUNNERS[name](workload, dtype, threads)   # imports, data in the library's arrays
    runner.prepare()      # untimed: a fresh model (same seed every time)
    runner.run(epochs)    # timed: train it for `epochs` epochs; returns when the work is done
    runner.info()         # JSON-able facts (library version, dtype really used, ...)

Each module imports its library lazily, so a worker only loads the framework it measures.
"""

from __future__ import annotations

import importlib
import importlib.util

# framework name -> (module in bench.peers, class, the import that must be available)
_PEERS = {
    "backprop": ("backprop_peer", "BackpropRunner", "backprop"),
    "numpy": ("numpy_peer", "NumpyLoopRunner", "numpy"),
    "gemm": ("gemm_floor", "GemmFloorRunner", "numpy"),
    "sklearn": ("sklearn_peer", "SklearnRunner", "sklearn"),
    "backprop_sklearn": ("backprop_sklearn_peer", "BackpropSklearnRunner", "sklearn"),
    "torch": ("torch_peer", "TorchRunner", "torch"),
    "torch_fused": ("torch_peer", "TorchFusedRunner", "torch"),
    "jax": ("jax_peer", "JaxRunner", "jax"),
    "backprop_jax": ("backprop_jax_peer", "BackpropJaxRunner", "jax"),
}

FRAMEWORKS = tuple(_PEERS)

LABELS = {
    "backprop": "backprop",
    "numpy": "hand-written NumPy loop",
    "gemm": "GEMM floor (NumPy matmul only)",
    "sklearn": "scikit-learn MLPClassifier",
    "backprop_sklearn": "backprop.sklearn MLPClassifier",
    "torch": "PyTorch eager, Adam",
    "torch_fused": "PyTorch eager, Adam(fused=True)",
    "jax": "JAX, one jitted step",
    "backprop_jax": "backprop, JAX backend (compiled epoch)",
}


def available(name: str) -> bool:
    return importlib.util.find_spec(_PEERS[name][2]) is not None


def runner_class(name: str):
    if name not in _PEERS:
        raise ValueError(f"unknown framework {name!r}; expected one of {list(_PEERS)}")
    module, cls, _ = _PEERS[name]
    return getattr(importlib.import_module(f"bench.peers.{module}"), cls)
