"""Fuzzing the model loader, and crash-safety of the saver.

The contract (``backprop/io.py``): loading uses no pickle and rebuilds objects only from the
registries of known names, so no file can run code; a damaged, foreign, future-version or
tampered file raises ``ValueError`` naming the file and the problem; a missing file raises
``FileNotFoundError``; a crash between writing and renaming leaves the previous file intact and
no temporary file behind; and a saved model resumes training exactly.
"""

from __future__ import annotations

import contextlib
import copy
import functools
import gc
import glob
import io
import json
import math
import os
import pickle
import struct
import warnings
import zipfile
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

import backprop as bp
import backprop.io as bpio
from backprop.layers import Dense, Dropout

with warnings.catch_warnings(), contextlib.suppress(ImportError):
    # hypothesis's pytest plugin imports this (and libcst, which warns on import) only when it
    # reports a failing example; under the suite's warnings-as-errors that import would turn a
    # plain test failure into a pytest INTERNALERROR. Importing it here keeps failures readable.
    warnings.simplefilter("ignore", DeprecationWarning)
    import hypothesis.extra._patching  # noqa: F401


@contextlib.contextmanager
def _leaked_handles_ignored():
    """Ignore (and collect) file handles that a refused load leaves open.

    ``numpy.load`` leaks its file handle when a file starts like a zip but is not one; the
    handle sits in a reference cycle, so its ResourceWarning would surface at some later
    garbage collection, in whichever test runs then. The leak is tested once, on its own, in
    ``test_a_refused_file_is_closed``; the fuzzers here look at what ``bp.load`` raises.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)
        try:
            yield
        finally:
            gc.collect()


def _ignoring_leaked_handles(test):
    @functools.wraps(test)
    def wrapper(*args, **kwargs):
        with _leaked_handles_ignored():
            return test(*args, **kwargs)

    return wrapper


def _settings(n: int) -> settings:
    return settings(
        max_examples=n,
        deadline=None,
        derandomize=True,
        phases=[Phase.explicit, Phase.generate, Phase.shrink],
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
    )


# -- a saved model to damage --------------------------------------------------------------------
def _data() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    X = rng.normal(size=(24, 3))
    return X, (X[:, 0] * X[:, 1] > 0).astype(np.int64)


def _model(seed: int = 0, optimizer: Any = "adam", backend: str = "numpy") -> bp.Sequential:
    model = bp.Sequential(
        [
            Dense(5, "leaky_relu", input_dim=3, kernel_regularizer="l2"),
            Dropout(0.25),
            Dense(4, "tanh"),
            Dense(1, "sigmoid"),
        ],
        backend=backend,
        dtype="float64" if backend != "numpy" else "float32",
        seed=seed,
    )
    model.compile(loss="binary_crossentropy", optimizer=optimizer, metrics=["accuracy"])
    return model


class Saved:
    """A trained model's file: its bytes, header, arrays, weights and optimizer state.

    A plain class with a short repr: hypothesis prints a dataclass field by field, and the
    bytes would make every report 40 kB long (a HypothesisWarning, an error in this suite).
    """

    def __init__(self, path, raw, config, arrays, weights, state, iterations):
        self.path, self.raw, self.config, self.arrays = path, raw, config, arrays
        self.weights, self.state, self.iterations = weights, state, iterations

    def __repr__(self) -> str:
        return f"Saved({self.path!r})"


def _state(model: bp.Sequential) -> list[dict[str, np.ndarray]]:
    return [{k: bp.to_numpy(v) for k, v in s.items()} for s in model.optimizer.state]


@pytest.fixture(scope="module")
def saved(tmp_path_factory) -> Saved:
    X, y = _data()
    model = _model()
    model.fit(X, y, epochs=2, batch_size=8, verbose=0)
    path = str(tmp_path_factory.mktemp("saved") / "model.npz")
    model.save(path)
    with open(path, "rb") as f:
        raw = f.read()
    with np.load(path, allow_pickle=False) as f:
        arrays = {k: f[k] for k in f.files}
    config = json.loads(str(arrays.pop("__config__")))
    return Saved(
        path, raw, config, arrays, model.get_weights(), _state(model), model.optimizer.iterations
    )


@pytest.fixture(scope="module")
def scratch(tmp_path_factory) -> str:
    """A folder for the damaged files (module-scoped: hypothesis reruns the test body)."""
    return str(tmp_path_factory.mktemp("damaged"))


def _write(folder: str, data: bytes, name: str = "case.npz") -> str:
    path = os.path.join(folder, name)
    with open(path, "wb") as f:
        f.write(data)
    return path


def _refused(path: str, *words: str) -> str:
    """bp.load(path) raises ValueError naming the file (and each of ``words``)."""
    with pytest.raises(ValueError) as info:  # anything else propagates and fails the test
        bp.load(path)
    message = str(info.value)
    assert path in message, f"the message does not name the file: {message}"
    for word in words:
        assert word.lower() in message.lower(), f"{word!r} not in: {message}"
    return message


def _load_or_refuse(path: str) -> bp.Sequential | None:
    """The only outcomes allowed for a damaged file: a model, or ValueError naming the file."""
    try:
        model = bp.load(path)
    except ValueError as exc:
        assert path in str(exc), f"the message does not name the file: {exc}"
        return None
    return model


def _assert_same(model: bp.Sequential, saved: Saved) -> None:
    """The loaded model is exactly the saved one (an ignored byte changed nothing)."""
    for a, b in zip(saved.weights, model.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
    assert model.optimizer.iterations == saved.iterations
    state = _state(model)
    assert [sorted(s) for s in state] == [sorted(s) for s in saved.state]
    for s1, s2 in zip(saved.state, state, strict=True):
        for k in s1:
            np.testing.assert_array_equal(s1[k], s2[k])
    assert model.get_config() == saved.config["model"]


def _labels_for(model: bp.Sequential, n: int) -> np.ndarray:
    rng = np.random.default_rng(1)
    k, kind = model.output_dim, model.loss.kind
    if kind == "binary":
        return rng.integers(0, 2, (n, k))
    if kind == "categorical":
        return np.eye(k)[rng.integers(0, k, n)]
    if kind == "sparse":
        return rng.integers(0, k, n)
    return rng.normal(size=(n, k))


def _assert_consistent(model: bp.Sequential) -> None:
    """What any model the loader accepts must do: predict, and train on (else the damage
    surfaces later, far from the file, or not at all)."""
    X, _ = _data()
    with warnings.catch_warnings():
        # a header may legitimately hold e.g. a huge learning rate: the documented outcome is
        # NonFiniteLossError (numpy's overflow warnings on the way are not the point here)
        warnings.simplefilter("ignore", RuntimeWarning)
        out = model.predict(X)
        assert out.shape == (X.shape[0], model.output_dim)
        opt = model.optimizer
        if opt is None:
            return
        iterations = opt.iterations
        assert isinstance(iterations, int) and not isinstance(iterations, bool), iterations
        assert iterations >= 0, f"optimizer.iterations={iterations}"
        try:
            model.fit(X, _labels_for(model, X.shape[0]), epochs=1, verbose=0)
        except bp.model.NonFiniteLossError:
            return
        except Exception as exc:
            raise AssertionError(
                f"the loader accepted a model that cannot train: {type(exc).__name__}: {exc}"
            ) from exc
        assert opt.iterations > iterations


# -- (a) truncations ----------------------------------------------------------------------------
@_ignoring_leaked_handles
@_settings(40)
@given(data=st.data())
def test_truncated_file_is_refused(saved, scratch, data):
    offset = data.draw(st.integers(0, len(saved.raw) - 1), label="offset")
    path = _write(scratch, saved.raw[:offset])
    _refused(path, "empty" if offset == 0 else "")


@_ignoring_leaked_handles
def test_every_truncation_is_refused(saved, scratch):
    """The systematic version: a prefix every 11 bytes, and every prefix that cuts into the
    central directory and end records (the last 1 KiB)."""
    n = len(saved.raw)
    offsets = sorted({*range(0, n, 11), *range(max(0, n - 1024), n)})
    _sweep(offsets, lambda offset: _refused(_write(scratch, saved.raw[:offset])))


def _sweep(cases, check) -> None:
    """Run ``check`` on every case; fail once, listing each kind of failure and where."""
    failures: dict[str, list] = {}
    gc.disable()  # thousands of refused loads leave cycles: collect them once, at the end
    try:
        for case in cases:
            try:
                check(case)
            except Exception as exc:
                key = f"{type(exc).__module__}.{type(exc).__name__}: {str(exc)[:120]}"
                failures.setdefault(key.split(":")[0], []).append((case, key))
    finally:
        gc.enable()
    if failures:
        lines = [
            f"{len(found)} x {kind}, e.g. at {found[0][0]!r}: {found[0][1]}"
            for kind, found in failures.items()
        ]
        pytest.fail(
            f"{sum(map(len, failures.values()))} of {len(cases)} cases failed:\n" + "\n".join(lines)
        )


# -- (b) flipped bytes ----------------------------------------------------------------------------
def _zip_layout(raw: bytes) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
    """(structural byte ranges, array payload ranges) of an uncompressed npz.

    Structural: zip local headers, .npy headers, the central directory and end records.
    """
    payloads = []
    with zipfile.ZipFile(io.BytesIO(raw)) as z:
        for info in z.infolist():
            start = info.header_offset
            name_len, extra_len = struct.unpack("<HH", raw[start + 26 : start + 30])
            member = start + 30 + name_len + extra_len
            fp = io.BytesIO(raw[member : member + info.compress_size])
            if np.lib.format.read_magic(fp) == (1, 0):
                np.lib.format.read_array_header_1_0(fp)
            else:
                np.lib.format.read_array_header_2_0(fp)
            payloads.append((member + fp.tell(), member + info.compress_size))
    payloads.sort()
    structural, pos = [], 0
    for lo, hi in payloads:
        if lo > pos:
            structural.append((pos, lo))
        pos = hi
    structural.append((pos, len(raw)))
    return structural, payloads


@st.composite
def flips(draw, structural: list, payloads: list) -> list[tuple[int, int]]:
    """1-4 (offset, xor mask) pairs, aimed at the zip/npy structure half of the time."""
    out = []
    for _ in range(draw(st.integers(1, 4))):
        lo, hi = draw(st.sampled_from(draw(st.sampled_from([structural, payloads]))))
        out.append((draw(st.integers(lo, hi - 1)), draw(st.integers(1, 255))))
    return out


def _flip(raw: bytes, changes: list[tuple[int, int]]) -> bytes:
    b = bytearray(raw)
    for offset, mask in changes:
        b[offset] ^= mask
    return bytes(b)


@_ignoring_leaked_handles
@_settings(60)
@given(data=st.data())
def test_flipped_bytes_are_refused_or_harmless(saved, scratch, data):
    changes = data.draw(flips(*_zip_layout(saved.raw)), label="flips")
    model = _load_or_refuse(_write(scratch, _flip(saved.raw, changes)))
    if model is not None:  # zip metadata that readers ignore: the model must be intact
        _assert_same(model, saved)


@pytest.mark.parametrize("mask", [0xFF, 0x01])
@_ignoring_leaked_handles
def test_every_structural_byte_flip_is_refused_or_harmless(saved, scratch, mask):
    """The exhaustive version over the zip and .npy headers of the first and the last member
    and over the central directory and end records (the headers of the members in between
    are alike, and hypothesis flips them above; a flip in an array's payload always breaks
    its CRC-32)."""
    structural, _ = _zip_layout(saved.raw)
    ranges = [structural[0], structural[-2], structural[-1]]
    offsets = [offset for lo, hi in ranges for offset in range(lo, hi)]

    def check(offset):
        model = _load_or_refuse(_write(scratch, _flip(saved.raw, [(offset, mask)])))
        if model is not None:
            _assert_same(model, saved)

    _sweep(offsets, check)


# -- (c) altered JSON header ----------------------------------------------------------------------
def _savez(
    folder: str, config: Any, arrays: dict, *, raw_config: str | None = None, sign: bool = True
) -> str:
    """Write ``config`` and ``arrays`` as a model file; ``sign``: with the checksum recomputed
    (the checksum covers the header, so an altered header must be signed again to reach the
    loader's other checks, as a tamperer who knows the format would)."""
    path = os.path.join(folder, "case.npz")
    if sign and raw_config is None:
        config = _signed(config, arrays)
    text = raw_config if raw_config is not None else json.dumps(config)
    np.savez(path, __config__=np.array(text), **arrays)
    return path


def _signed(config: Any, arrays: dict) -> Any:
    """``config`` with the checksum its version defines, where it has one to recompute."""
    if not isinstance(config, dict) or "checksum" not in config:
        return config
    listed = config.get("arrays")
    if not isinstance(listed, list) or not all(isinstance(k, str) and k in arrays for k in listed):
        return config
    header = None if config.get("version") == 1 else config
    try:
        return dict(config, checksum=bpio._checksum(arrays, listed, header))
    except (ValueError, TypeError, RecursionError):  # a header JSON cannot encode: left as is
        return config


def _paths(obj: Any, prefix: tuple = ()) -> list[tuple]:
    out = [prefix]
    if isinstance(obj, dict):
        for k, v in obj.items():
            out += _paths(v, (*prefix, k))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            out += _paths(v, (*prefix, i))
    return out


def _code(marker: str) -> list[str]:
    return [
        f"__import__('os').system('touch {marker}')",
        f"os.system('touch {marker}')",
        "os.system",
        "builtins.eval",
        "subprocess.Popen",
        "__class__",
        "__init__",
    ]


def _json_values(marker: str):
    leaves = (
        st.none()
        | st.booleans()
        | st.integers(-10, 1000)
        | st.sampled_from([0, -1, 2**62, 2**64, 2**200, -(2**63), 10**20])
        | st.floats(allow_nan=True, allow_infinity=True)
        | st.text(max_size=8)
        | st.sampled_from(
            [
                "Dense",
                "Dropout",
                "Activation",
                "relu",
                "softmax",
                "float64",
                "float16",
                "adam",
                "sgd",
                "mse",
                "sparse_categorical_crossentropy",
                "backprop-sequential",
                *_code(marker),
            ]
        )
    )
    keys = st.sampled_from(["name", "units", "class_name", "config", "rate", "alpha", "state"])
    return st.recursive(
        leaves,
        lambda children: (
            st.lists(children, max_size=3) | st.dictionaries(keys | st.text(max_size=5), children)
        ),
        max_leaves=6,
    )


def _get(config: Any, path: tuple) -> Any:
    for key in path:
        config = config[key]
    return config


def _mutate(config: dict, path: tuple, action: str, value: Any) -> dict:
    config = copy.deepcopy(config)
    if not path:
        return value
    parent = config
    for key in path[:-1]:
        parent = parent[key]
    if action == "delete":
        del parent[path[-1]]
    else:
        parent[path[-1]] = value
    return config


@_ignoring_leaked_handles
@_settings(150)
@given(data=st.data())
def test_altered_header_is_refused_or_loads_a_consistent_model(saved, scratch, data):
    marker = os.path.join(scratch, "CODE_RAN")
    config = saved.config
    for _ in range(data.draw(st.integers(1, 3), label="n_changes")):
        path = data.draw(st.sampled_from(_paths(config)), label="path")
        deletable = bool(path) and isinstance(_get(config, path[:-1]), dict)
        action = data.draw(st.sampled_from(["replace", "delete"] if deletable else ["replace"]))
        value = data.draw(_json_values(marker), label="value") if action == "replace" else None
        config = _mutate(config, path, action, value)
    model = _load_or_refuse(_savez(scratch, config, saved.arrays))
    assert not os.path.exists(marker), "loading a model file ran code"
    if model is not None:
        _assert_consistent(model)


def _set(path: tuple, value: Any):
    return lambda c: _mutate(c, path, "replace", value)


def _del(path: tuple):
    return lambda c: _mutate(c, path, "delete", None)


L0 = ("model", "layers", 0, "config")
L1 = ("model", "layers", 2, "config")  # the Dense after the Dropout

HEADER_CASES = {
    # name: (change, words the message must contain)
    "format": (_set(("format",), "keras"), ["not a backprop model file"]),
    "future version": (
        _set(("version",), bpio.VERSION + 1),
        [f"version {bpio.VERSION + 1}", "upgrade"],
    ),
    "version as a string": (_set(("version",), "1"), ["version"]),
    "no version": (_del(("version",)), ["version"]),
    "layer class os.system": (_set(("model", "layers", 0, "class_name"), "os.system"), []),
    "layer class __class__": (_set(("model", "layers", 0, "class_name"), "__class__"), []),
    "activation os.system": (_set((*L0, "activation"), {"name": "os.system"}), []),
    "activation with a code string": (
        _set((*L0, "activation"), {"name": "__import__('os').system('true')"}),
        [],
    ),
    "units negative": (_set((*L0, "units"), -4), []),
    "units a string": (_set((*L0, "units"), "4"), []),
    "units changed": (_set((*L1, "units"), 7), []),
    "dtype float16": (_set(("model", "dtype"), "float16"), []),
    "dtype object": (_set(("model", "dtype"), "object"), []),
    "no layers": (_set(("model", "layers"), []), []),
    "missing model": (_del(("model",)), []),
    "missing layer config": (_del(("model", "layers", 0, "config")), []),
    "unknown layer argument": (_set((*L0, "evil"), 1), []),
    "unknown optimizer": (_set(("compile", "optimizer", "name"), "os.system"), []),
    "optimizer argument wrong type": (_set(("compile", "optimizer", "learning_rate"), "x"), []),
    "unknown loss": (_set(("compile", "loss"), {"name": "os.system"}), []),
    "unknown metric": (_set(("compile", "metrics"), ["os.system"]), []),
    "config is a list": (lambda c: [c], ["not a backprop model file"]),
    "arrays list wrong": (_set(("arrays",), ["weight_0"]), ["arrays"]),
    "checksum wrong": (_set(("checksum",), "sha256:" + "0" * 64), ["checksum"]),  # unsigned
    "header altered, not signed again": (_set((*L0, "activation"), {"name": "tanh"}), ["checksum"]),
    # found by the fuzzers above:
    "huge layer (MemoryError)": (
        lambda c: _set((*L0, "input_dim"), 10**7)(_set((*L0, "units"), 10**7)(c)),
        [],
    ),
    "rng state out of range (OverflowError)": (
        _set(("rng_state", "init", "state", "state"), 2**200),
        [],
    ),
    "negative rng state (OverflowError)": (_set(("rng_state", "init", "state", "state"), -1), []),
    "iterations Infinity (OverflowError)": (_set(("compile", "iterations"), float("inf")), []),
    "rng uinteger out of range (OverflowError)": (
        _set(("rng_state", "shuffle", "uinteger"), 2**70),
        [],
    ),
    "array list holding a non-string (TypeError)": (_set(("arrays", 0), None), ["arrays"]),
    "array list holding a number (TypeError)": (_set(("arrays", 3), 7), ["arrays"]),
}


@pytest.mark.parametrize("case", list(HEADER_CASES))
@_ignoring_leaked_handles
def test_altered_header_is_refused_with_a_message(saved, scratch, case):
    change, words = HEADER_CASES[case]
    sign = "checksum" not in words  # the cases about the checksum keep the one they made
    _refused(_savez(scratch, change(saved.config), saved.arrays, sign=sign), *words)


@_ignoring_leaked_handles
def test_deeply_nested_header_is_refused(saved, scratch):
    """A header nested deeper than the JSON parser's recursion limit (RecursionError)."""
    text = json.dumps(saved.config)[:-1] + ', "x": ' + "[" * 100_000 + "]" * 100_000 + "}"
    _refused(_savez(scratch, None, saved.arrays, raw_config=text))


INCONSISTENT_CASES = {
    # headers that describe a model the arrays do not (signed again): refuse, or be right
    "no optimizer state after 6 steps": _set(("compile", "state_keys"), []),
    "state keys as a string": _set(("compile", "state_keys"), "mv"),
    "state keys as a dict": _set(("compile", "state_keys"), {"": None}),
    "state keys empty lists": _set(("compile", "state_keys"), [[]]),
    "negative iterations": _set(("compile", "iterations"), -5),
    "fractional iterations": _set(("compile", "iterations"), 1.5),
    "version 0": _set(("version",), 0),
    "version 1 (the old checksum rule)": _set(("version",), 1),
    "version true": _set(("version",), True),
}


@pytest.mark.parametrize("case", list(INCONSISTENT_CASES))
@_ignoring_leaked_handles
def test_inconsistent_header_is_refused_or_consistent(saved, scratch, case):
    config = INCONSISTENT_CASES[case](saved.config)
    path = _savez(scratch, config, saved.arrays)
    model = _load_or_refuse(path)
    if model is not None:
        _assert_consistent(model)
        if case.startswith("version") and config["version"] != 1:
            pytest.fail(f"a file claiming format version {config['version']!r} was loaded")
        if case == "fractional iterations":
            pytest.fail("iterations=1.5 was loaded as 1")
        opt = model.optimizer
        if opt.iterations and opt.state_names and not opt.state:
            pytest.fail(
                f"{opt.iterations} steps but no optimizer state: training resumes from zeroed "
                "moments"
            )


# -- (d) altered arrays ---------------------------------------------------------------------------
def _rechecksum(config: dict, arrays: dict) -> dict:
    """The header with the checksum of itself and ``arrays`` (the listed names present)."""
    config = dict(config)
    config["checksum"] = bpio._checksum(
        arrays, [k for k in config["arrays"] if k in arrays], config
    )
    return config


@_ignoring_leaked_handles
@_settings(80)
@given(data=st.data())
def test_altered_arrays_are_refused_or_honoured(saved, scratch, data):
    names = sorted(saved.arrays)
    name = data.draw(st.sampled_from(names), label="array")
    kind = data.draw(
        st.sampled_from(["value", "dtype", "shape", "extra", "missing", "object"]), label="kind"
    )
    fix_checksum = data.draw(st.booleans(), label="checksum recomputed")
    arrays = dict(saved.arrays)
    config = copy.deepcopy(saved.config)
    a = arrays[name]
    if kind == "value":
        a = a.copy()
        i = data.draw(st.integers(0, a.size - 1), label="index")
        old = float(a.flat[i])
        a.flat[i] = data.draw(st.floats(-10, 10, width=32).filter(lambda v: v != old), label="to")
        arrays[name] = a
    elif kind == "dtype":
        arrays[name] = a.astype(data.draw(st.sampled_from(["float64", "float16", "int32"])))
    elif kind == "shape":
        shapes = [(a.size,), (1, a.size), (*a.shape, 1), (1,)]
        shape = data.draw(st.sampled_from([t for t in shapes if t != a.shape]), label="shape")
        arrays[name] = a.reshape(shape) if math.prod(shape) == a.size else a.ravel()[:1]
    elif kind == "extra":
        arrays["extra"] = np.ones(3)
        if data.draw(st.booleans(), label="listed"):
            config["arrays"] = [*config["arrays"], "extra"]
    elif kind == "missing":
        del arrays[name]
        if data.draw(st.booleans(), label="unlisted"):
            config["arrays"] = [k for k in config["arrays"] if k != name]
    else:
        arrays[name] = np.array([{"x": 1}], dtype=object)
    if fix_checksum and kind != "object":
        config = _rechecksum(config, arrays)
    path = os.path.join(scratch, "case.npz")
    np.savez(path, __config__=np.array(json.dumps(config)), **arrays)
    model = _load_or_refuse(path)
    if kind == "object" or (not fix_checksum and kind in ("value", "dtype", "shape")):
        assert model is None, f"a file with {kind}-altered {name} was loaded"
    if model is None:
        return
    if kind == "value" and name.startswith("weight_"):  # a consistent file is honoured
        np.testing.assert_array_equal(model.get_weights()[int(name[7:])], arrays[name])
    _assert_consistent(model)


@_ignoring_leaked_handles
def test_checksum_mismatch_is_refused(saved, scratch):
    arrays = dict(saved.arrays)
    arrays["weight_0"] = arrays["weight_0"] + 1
    _refused(_savez(scratch, saved.config, arrays, sign=False), "checksum")


@pytest.mark.parametrize("shape", [(1,), (), (7, 9)], ids=["(1,)", "scalar", "(7, 9)"])
@_ignoring_leaked_handles
def test_optimizer_state_of_the_wrong_shape_is_refused(saved, scratch, shape):
    """opt_0_m must have the shape of weight_0: a state that broadcasts would silently resume
    training from a wrong point, one that does not breaks the first fit step."""
    arrays = dict(saved.arrays)
    arrays["opt_0_m"] = np.zeros(shape, np.float32)
    _refused(_savez(scratch, _rechecksum(saved.config, arrays), arrays))


@_ignoring_leaked_handles
def test_weights_beyond_the_model_dtype_are_refused(saved, scratch):
    """A float64 weight of 1e300 in a float32 model (checksum intact) overflows to inf."""
    arrays = dict(saved.arrays)
    arrays["weight_0"] = np.full(arrays["weight_0"].shape, 1e300)
    _refused(_savez(scratch, _rechecksum(saved.config, arrays), arrays))


# -- (e) pickles ----------------------------------------------------------------------------------
class _Evil:
    """Unpickling this creates a folder: the proof that code ran."""

    def __init__(self, marker: str):
        self.marker = marker

    def __reduce__(self):
        return (os.mkdir, (self.marker,))


def _pickle_files(folder: str, marker: str, saved: Saved) -> dict[str, str]:
    evil = np.array([_Evil(marker), 1], dtype=object)
    files = {}
    for name in ("pickle.npy", "pickle-named.npz"):
        files[name] = os.path.join(folder, name)
        with open(files[name], "wb") as f:
            np.save(f, evil, allow_pickle=True)
    files["raw.pkl"] = _write(folder, pickle.dumps(_Evil(marker)), "raw.pkl")
    files["raw-pickle.npz"] = _write(folder, pickle.dumps(_Evil(marker)), "raw-pickle.npz")
    for entry in ("extra", "weight_0", "opt_0_m", "__config__"):
        arrays = {"__config__": np.array(json.dumps(saved.config)), **saved.arrays}
        arrays[entry] = evil
        files[f"npz-{entry}"] = os.path.join(folder, f"npz-{entry}.npz")
        np.savez(files[f"npz-{entry}"], **arrays)
    with zipfile.ZipFile(os.path.join(folder, "zip-pickle.npz"), "w") as z:
        z.writestr("__config__.npy", pickle.dumps(_Evil(marker)))
        z.writestr("weight_0.npy", pickle.dumps(_Evil(marker)))
    files["zip-pickle"] = os.path.join(folder, "zip-pickle.npz")
    return files


@_ignoring_leaked_handles
def test_pickles_never_run(saved, tmp_path):
    marker = str(tmp_path / "CODE_RAN")
    files = _pickle_files(str(tmp_path), marker, saved)
    pickle.loads(pickle.dumps(_Evil(marker)))  # the payload works when unpickled ...
    assert os.path.isdir(marker)
    os.rmdir(marker)
    for name, path in files.items():  # ... and the loader never unpickles it
        try:
            _refused(path)
        except BaseException as exc:
            raise AssertionError(name) from exc
        assert not os.path.exists(marker), f"loading {name} ran code"


@_ignoring_leaked_handles
def test_refusals_never_suggest_unpickling(saved, tmp_path):
    # NumPy's advice (allow_pickle=True or pickle.load) would run the code in the file
    files = _pickle_files(str(tmp_path), str(tmp_path / "CODE_RAN"), saved)
    files["text.npz"] = _write(str(tmp_path), b"hello, not a model\n", "text.npz")
    for name, path in files.items():
        message = _refused(path)
        advice = message.replace(path, "")  # the test's file names say pickle
        assert "pickle" not in advice.lower(), f"{name}: {message}"
        assert not os.path.exists(tmp_path / "CODE_RAN")


# -- (f) foreign, empty, missing ------------------------------------------------------------------
@_ignoring_leaked_handles
def test_plain_npy_is_refused(tmp_path):
    path = str(tmp_path / "array.npy")
    np.save(path, np.ones((3, 2)))
    _refused(path, "not a backprop model file")


@_ignoring_leaked_handles
def test_plain_npy_named_npz_is_refused(tmp_path):
    path = str(tmp_path / "array.npz")
    with open(path, "wb") as f:
        np.save(f, np.ones((3, 2)))
    _refused(path, "not a backprop model file")


@_ignoring_leaked_handles
def test_text_file_is_refused(tmp_path):
    path = _write(str(tmp_path), b"weights: 1 2 3\n", "model.npz")
    _refused(path, "not a backprop model file")


@_ignoring_leaked_handles
def test_empty_file_is_refused(tmp_path):
    _refused(_write(str(tmp_path), b"", "model.npz"), "empty")


@_ignoring_leaked_handles
def test_zip_of_text_is_refused(tmp_path):
    path = str(tmp_path / "model.npz")
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("readme.txt", "hello")
    _refused(path, "not a backprop model file")


@_ignoring_leaked_handles
def test_foreign_npz_is_refused(tmp_path):
    path = str(tmp_path / "model.npz")
    np.savez(path, W=np.ones((2, 2)), b=np.zeros(2))
    _refused(path, "not a backprop model file")


@_ignoring_leaked_handles
def test_npz_with_a_huge_declared_array_is_refused(tmp_path):
    """A member whose .npy header declares 10**12 floats (a 32-byte payload)."""
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        header, {"descr": "<f4", "fortran_order": False, "shape": (10**12,)}
    )
    path = str(tmp_path / "model.npz")
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("__config__.npy", _npy_bytes(np.array("{}")))
        z.writestr("weight_0.npy", header.getvalue() + bytes(32))
    _refused(path)


def _npy_bytes(a: np.ndarray) -> bytes:
    f = io.BytesIO()
    np.save(f, a)
    return f.getvalue()


@_ignoring_leaked_handles
def test_directory_is_refused(tmp_path):
    """A folder is not a model file: ValueError naming it (not IsADirectoryError/PermissionError,
    which depend on the OS)."""
    folder = tmp_path / "model.npz"
    folder.mkdir()
    _refused(str(folder), "directory")


def test_missing_file(tmp_path):
    for name in ("nope.npz", "nope"):
        with pytest.raises(FileNotFoundError, match="nope"):
            bp.load(tmp_path / name)


@_ignoring_leaked_handles
def test_future_version_is_refused(saved, scratch):
    config = dict(saved.config, version=bpio.VERSION + 1)
    _refused(_savez(scratch, config, saved.arrays), f"version {bpio.VERSION + 1}", "upgrade")


@_ignoring_leaked_handles
@_settings(60)
@given(
    prefix=st.sampled_from([b"", b"PK\x03\x04", b"PK\x05\x06", b"\x93NUMPY\x01\x00", b"\x80\x04"]),
    body=st.binary(max_size=600),
)
def test_random_bytes_are_refused(scratch, prefix, body):
    if not prefix and not body:
        body = b"\x00"
    _refused(_write(scratch, prefix + body))


@pytest.mark.parametrize(
    "damage",
    [
        pytest.param(lambda raw: raw[: len(raw) // 2], id="truncated"),
        pytest.param(lambda raw: raw[:-1], id="last byte missing"),
        pytest.param(lambda raw: b"PK\x03\x04" + bytes(100), id="zip signature only"),
    ],
)
def test_a_refused_file_is_closed(saved, scratch, damage):
    """A refused load closes the file it opened (an open handle keeps a damaged file locked
    on Windows, and leaks one descriptor per attempt everywhere)."""
    path = _write(scratch, damage(saved.raw))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with pytest.raises(ValueError):
            bp.load(path)
        gc.collect()
    leaks = [str(w.message) for w in caught if issubclass(w.category, ResourceWarning)]
    assert not leaks, leaks


# -- (g) a crash during save ----------------------------------------------------------------------
def _leftovers(folder) -> list[str]:
    return glob.glob(os.path.join(str(folder), ".backprop-*"))


@pytest.mark.parametrize(
    "error",
    [RuntimeError("killed"), KeyboardInterrupt(), OSError(28, "No space left on device")],
    ids=["RuntimeError", "KeyboardInterrupt", "ENOSPC"],
)
@pytest.mark.parametrize("where", ["_replace", "savez", "fsync"])
def test_crash_during_save_keeps_the_previous_file(tmp_path, monkeypatch, error, where):
    X, y = _data()
    a = _model(seed=1)
    a.fit(X, y, epochs=1, verbose=0)
    path = str(tmp_path / "model.npz")
    a.save(path)
    b = _model(seed=2)
    b.fit(X, y, epochs=2, verbose=0)

    def fail(*args, **kwargs):
        if where == "savez":  # die half-way through writing the archive
            args[0].write(b"PK\x03\x04 partial")
        raise error

    if where == "_replace":
        monkeypatch.setattr(bpio, "_replace", fail)
    elif where == "savez":
        monkeypatch.setattr(bpio.np, "savez", fail)
    else:
        monkeypatch.setattr(bpio.os, "fsync", fail)
    with pytest.raises(type(error)):
        b.save(path)
    monkeypatch.undo()
    assert _leftovers(tmp_path) == []
    assert sorted(os.listdir(tmp_path)) == ["model.npz"]
    loaded = bp.load(path)
    for wa, wl in zip(a.get_weights(), loaded.get_weights(), strict=True):
        np.testing.assert_array_equal(wa, wl)
    assert loaded.optimizer.iterations == a.optimizer.iterations
    # the next save goes through, and replaces the file
    b.save(path)
    assert _leftovers(tmp_path) == []
    for wb, wl in zip(b.get_weights(), bp.load(path).get_weights(), strict=True):
        np.testing.assert_array_equal(wb, wl)


def test_crash_during_first_save_leaves_nothing(tmp_path, monkeypatch):
    model = _model()

    def fail(src, dst):
        raise OSError("killed")

    monkeypatch.setattr(bpio, "_replace", fail)
    with pytest.raises(OSError):
        model.save(tmp_path / "model.npz")
    assert os.listdir(tmp_path) == []


# -- (h) resuming is exact ------------------------------------------------------------------------
@pytest.mark.parametrize("optimizer", ["sgd", "rmsprop", "adagrad", "adam", "adamw", "adamax"])
@pytest.mark.parametrize("backend", ["numpy", "array_api_strict"])
def test_save_load_resume_is_bitwise_exact(tmp_path, optimizer, backend):
    X, y = _data()

    def make():
        if optimizer == "sgd":
            return bp.optimizers.SGD(0.05, momentum=0.9, nesterov=True)
        return optimizer

    uninterrupted = _model(seed=3, optimizer=make(), backend=backend)
    h3 = uninterrupted.fit(X, y, epochs=3, batch_size=5, verbose=0).history

    first = _model(seed=3, optimizer=make(), backend=backend)
    first.fit(X, y, epochs=2, batch_size=5, verbose=0)
    first.save(tmp_path / "m.npz")
    resumed = bp.load(tmp_path / "m.npz", backend=backend)
    h1 = resumed.fit(X, y, epochs=1, batch_size=5, verbose=0).history

    assert h1["loss"] == h3["loss"][-1:]
    assert h1["accuracy"] == h3["accuracy"][-1:]
    for a, b in zip(uninterrupted.get_weights(), resumed.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
    assert resumed.optimizer.iterations == uninterrupted.optimizer.iterations
    for s1, s2 in zip(_state(uninterrupted), _state(resumed), strict=True):
        assert sorted(s1) == sorted(s2)
        for k in s1:
            np.testing.assert_array_equal(s1[k], s2[k])
    assert resumed.streams.get_state() == uninterrupted.streams.get_state()
