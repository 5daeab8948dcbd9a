"""The portability rule, checked on the source: the math speaks only the Array API standard.

The runtime proof is the rest of the suite running on array_api_strict; this test catches the
mistakes that array_api_strict cannot see on the lines a test happens not to run.
"""

import ast
import pathlib
import sys

import pytest

import backprop

PACKAGE = pathlib.Path(backprop.__file__).parent
LIBRARIES = {"numpy", "cupy", "torch", "jax", "jaxlib", "array_api_strict", "scipy", "cupyx"}
# layers, activations, losses, optimizers and the training step (model) must not touch NumPy
MATH = [
    "activations",
    "constraints",
    "layers",
    "losses",
    "optimizers",
    "regularizers",
    "metrics",
    "schedules",
    "model",
    "callbacks",
]
# a package among them (layers/) is checked module by module: "layers/core", ...
MATH = [
    str(path.relative_to(PACKAGE).with_suffix("").as_posix())
    for name in MATH
    for path in (
        sorted((PACKAGE / name).rglob("*.py"))
        if (PACKAGE / name).is_dir()
        else [PACKAGE / f"{name}.py"]
    )
]
# methods of NumPy arrays that are not part of the Array API standard's array object
NON_STANDARD_METHODS = {
    "sum", "mean", "max", "min", "astype", "reshape", "dot", "clip", "any", "all", "item",
    "argmax", "argmin", "std", "var", "fill", "tolist", "ravel", "flatten", "transpose",
    "squeeze", "cumsum", "prod", "round", "nonzero", "put", "take",
}  # fmt: skip
NAMESPACE_RECEIVERS = {"xp", "math"}


def _imports(tree):
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.module.split(".")[0]


def _receiver_name(node):
    while isinstance(node, ast.Attribute):
        if node.attr == "xp":
            return "xp"
        node = node.value
    return node.id if isinstance(node, ast.Name) else None


def _parse(name):
    return ast.parse((PACKAGE / f"{name}.py").read_text())


@pytest.mark.parametrize("module", MATH)
def test_math_modules_import_no_array_library(module):
    imported = set(_imports(_parse(module)))
    assert not imported & LIBRARIES, f"{module}.py imports {imported & LIBRARIES}"


@pytest.mark.parametrize("module", MATH)
def test_math_modules_name_no_array_library(module):
    names = {n.id for n in ast.walk(_parse(module)) if isinstance(n, ast.Name)}
    assert not names & (LIBRARIES | {"np", "cp"})


@pytest.mark.parametrize("module", MATH)
def test_math_modules_call_no_array_methods(module):
    bad = []
    for node in ast.walk(_parse(module)):
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr in NON_STANDARD_METHODS
            and _receiver_name(node.func.value) not in NAMESPACE_RECEIVERS
        ):
            bad.append(f"line {node.lineno}: .{node.func.attr}()")
    assert not bad, f"{module}.py calls array methods outside the standard: {bad}"


def test_only_backend_names_device_libraries():
    offenders = {}
    for path in PACKAGE.rglob("*.py"):
        if path.relative_to(PACKAGE).parts[0] == "backend":
            continue
        found = set(_imports(ast.parse(path.read_text()))) & (LIBRARIES - {"numpy"})
        if found:
            offenders[str(path.relative_to(PACKAGE))] = found
    assert not offenders


def test_the_checker_catches_a_violation(tmp_path, monkeypatch):
    """The checks above can fail: a module written the NumPy way is flagged."""
    (tmp_path / "bad.py").write_text("import numpy as np\ndef f(x):\n    return x.sum() + np.pi\n")
    monkeypatch.setattr(sys.modules[__name__], "PACKAGE", tmp_path)
    with pytest.raises(AssertionError):
        test_math_modules_import_no_array_library("bad")
    with pytest.raises(AssertionError):
        test_math_modules_name_no_array_library("bad")
    with pytest.raises(AssertionError):
        test_math_modules_call_no_array_methods("bad")
