"""Whether the ranks run the same thing: data fingerprints, and the fields where ranks differ.

Before a data-parallel ``fit`` or ``evaluate``, every rank sends rank 0 a small signature of what
it is about to run (model, settings, data) and all of them stop with the same error when any
differs (:meth:`Communicator.agree`). Arrays in a signature travel as a :class:`Fingerprint`:
their shape and dtype, a digest of rows spread through the whole array, and a digest of the
per-column sums. One reduction and a few rows to the host per array: a small fraction of an
epoch's work, and it tells another data set, split, shuffle or preprocessing apart, not only
another first or last row.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

import numpy as np

from .. import backend as _backend

# Rows sampled per array: the first and last few (where files and splits tend to differ) and
# the others evenly spaced in between.
_ROWS = 64
_ENDS = 4


@dataclass(frozen=True)
class Fingerprint:
    """What the ranks compare of an array (small and picklable).

    Attributes
    ----------
    shape : tuple of int
        The array's shape.
    dtype : str
        Its dtype's name.
    rows : str
        Digest of up to 64 rows: the first and last four, the rest evenly spaced.
    sums : str
        Digest of the per-column sums (accumulated in float64 where the backend has it,
        rounded so that another order of summation, e.g. another number of threads, does
        not count as other data).
    """

    shape: tuple[int, ...]
    dtype: str
    rows: str
    sums: str

    def difference(self, root: Fingerprint) -> str | None:
        """How this array differs from rank 0's ``root``, in words; None if it does not."""
        if self.shape != root.shape:
            if self.shape[1:] == root.shape[1:]:
                return f"{self.shape[0]} rows where rank 0 has {root.shape[0]}"
            return f"shape {self.shape} where rank 0 has {root.shape}"
        if self.dtype != root.dtype:
            return f"dtype {self.dtype} where rank 0 has {root.dtype}"
        if self.rows != root.rows:
            return "other values than rank 0's (in the rows compared)"
        if self.sums != root.sums:
            return "other values than rank 0's (the column sums differ)"
        return None


def fingerprint(a: Any) -> Fingerprint:
    """The :class:`Fingerprint` of an array of any supported library, on its device.

    Parameters
    ----------
    a : array, shape (n,) or (n, ...)
        A NumPy array (memmaps too) or an array of a supported backend.

    Returns
    -------
    Fingerprint

    Examples
    --------
    >>> a = np.arange(12.0).reshape(6, 2)
    >>> b = a.copy()
    >>> b[3, 1] = -1.0
    >>> fingerprint(a) == fingerprint(a.copy()), fingerprint(a) == fingerprint(b)
    (True, False)
    """
    backend = _backend.backend_of(a)
    xp = backend.xp
    shape = tuple(int(d) for d in a.shape)
    n = shape[0] if shape else 0
    dtype = str(a.dtype).rsplit(".", 1)[-1]  # "float32", also for torch.float32
    if n == 0:
        return Fingerprint(shape, dtype, "", "")
    ends = min(_ENDS, n)
    index = np.unique(
        np.concatenate(
            [
                np.arange(ends),
                np.arange(n - ends, n),
                np.round(np.linspace(0, n - 1, min(_ROWS, n))).astype(np.int64),
            ]
        )
    )
    picked = xp.take(a, xp.asarray(index, device=_device(a)), axis=0)
    rows = hashlib.sha256(np.ascontiguousarray(backend.to_numpy(picked)).tobytes())
    sums = _column_sums(a, xp, backend)
    return Fingerprint(shape, dtype, rows.hexdigest()[:16], sums)


def _device(a: Any) -> Any:
    return getattr(a, "device", None) if not isinstance(a, np.ndarray) else None


def _column_sums(a: Any, xp: Any, backend: Any) -> str:
    """Digest of ``a``'s sums over its rows, rounded to the digits their dtype keeps."""
    if xp.isdtype(a.dtype, "bool"):  # the standard sums numbers only
        a = xp.astype(a, xp.int32)
    if xp.isdtype(a.dtype, "integral"):
        total = xp.sum(a, axis=0, dtype=backend.int_dtype)
        digits = None
    else:
        wide = backend.supports_float64
        total = xp.sum(a, axis=0, dtype=xp.float64 if wide else a.dtype)
        digits = 9 if wide else 4
    host = np.asarray(backend.to_numpy(total)).ravel()
    if digits is None:
        text = json.dumps(host.tolist())
    else:
        text = json.dumps([f"{v:.{digits}g}" for v in host.tolist()])
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def comparable(value: Any) -> Any:
    """``value`` as the ranks compare it: arrays as fingerprints, JSON objects as dicts.

    Dicts, lists and tuples are converted item by item; a string holding a JSON object is
    decoded, so that a difference inside a layer's or an optimizer's config is named by its
    field rather than shown as two long strings.
    """
    if isinstance(value, dict):
        return {k: comparable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(comparable(v) for v in value)
    if isinstance(value, str) and value.startswith("{"):
        try:
            decoded = json.loads(value)
        except ValueError:
            return value
        return comparable(decoded) if isinstance(decoded, dict) else value
    if _backend.array_backend_name(value) is not None:
        if len(getattr(value, "shape", ())) == 0:  # a scalar: compared, and shown, by value
            return np.asarray(_backend.backend_of(value).to_numpy(value)).item()
        return fingerprint(value)
    return value


def differences(mine: Any, root: Any, path: str = "") -> list[str]:
    """Where ``mine`` differs from rank 0's ``root`` (both made by :func:`comparable`).

    Parameters
    ----------
    mine, root : object
        The two signatures.
    path : str
        The name of the field being compared (nested fields joined by dots).

    Returns
    -------
    list of str
        One entry per differing field, e.g. ``"seed=1 where rank 0 has 0"``,
        ``"layer 1.units=6 where rank 0 has 5"`` or ``"X: 30 rows where rank 0 has 37"``.

    Examples
    --------
    >>> differences({"seed": 1, "layer": {"units": 6, "act": "relu"}},
    ...             {"seed": 0, "layer": {"units": 5, "act": "relu"}})
    ['seed=1 where rank 0 has 0', 'layer.units=6 where rank 0 has 5']
    >>> mine = comparable({"step": np.int64(3), "X": np.zeros((30, 2))})
    >>> differences(mine, comparable({"step": np.int64(2), "X": np.zeros((37, 2))}))
    ['step=3 where rank 0 has 2', 'X: 30 rows where rank 0 has 37']
    """
    if isinstance(mine, dict) and isinstance(root, dict):
        found = []
        for key in list(root) + [k for k in mine if k not in root]:
            name = f"{path}.{key}" if path else str(key)
            if key not in mine:
                found.append(f"{name} missing where rank 0 has {_short(root[key])}")
            elif key not in root:
                found.append(f"{name}={_short(mine[key])} where rank 0 has none")
            else:
                found += differences(mine[key], root[key], name)
        return found
    if isinstance(mine, Fingerprint) and isinstance(root, Fingerprint):
        what = mine.difference(root)
        return [] if what is None else [f"{path}: {what}"]
    if isinstance(mine, Fingerprint) or isinstance(root, Fingerprint):
        given = "an array" if isinstance(mine, Fingerprint) else _short(mine)
        wanted = "an array" if isinstance(root, Fingerprint) else _short(root)
        return [f"{path}: {given} where rank 0 has {wanted}"]
    if mine != root:
        return [f"{path}={_short(mine)} where rank 0 has {_short(root)}"]
    return []


def _short(value: Any, limit: int = 120) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."
