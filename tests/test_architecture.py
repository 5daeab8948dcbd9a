"""The architecture contract: the import-linter contracts of pyproject.toml hold.

Each floor imports only the floors below it (``__main__`` > ``sklearn``/``distributed`` >
``gradcheck``/``viz`` > ``model`` > ``explain``/``io``/``trainer``/``parameters``/``summary`` >
``clone`` > ``training`` > the parts > ``backend``), inside ``backend`` likewise (``selection`` >
``core`` > ``kernels`` > ``namespaces`` > ``capture``/``arrays``), with no exception listed; and
no two modules of the package import each other in a circle, imports inside functions included.
"""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _lint_imports(config: Path) -> subprocess.CompletedProcess:
    exe = shutil.which("lint-imports") or str(Path(sys.executable).with_name("lint-imports"))
    if not Path(exe).exists():
        pytest.skip('import-linter is not installed: pip install -e ".[test]"')
    return subprocess.run(
        [exe, "--config", str(config), "--no-cache"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_the_import_contracts_are_kept():
    result = _lint_imports(ROOT / "pyproject.toml")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


def _contract_sections() -> tuple[str, list[str]]:
    """pyproject's ``[tool.importlinter]`` header and its contracts, each as its text."""
    text = (ROOT / "pyproject.toml").read_text()
    contracts = text[text.index("[tool.importlinter]") :].split("[[tool.importlinter.contracts]]")
    return contracts[0], contracts[1:]


def test_no_import_is_excepted_from_the_contracts():
    """Every hand-over goes down: no contract lists an ignore_imports exception."""
    import tomllib

    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]
    contracts = config["contracts"]
    assert contracts
    assert not [c["name"] for c in contracts if c.get("ignore_imports")]


def test_an_import_upwards_breaks_the_contract(tmp_path):
    """The floors hold for imports inside functions too: io asking for the model (the floor
    above it) at call time, as load once did, is a violation, found in a copy of the package."""
    package = tmp_path / "backprop"
    shutil.copytree(ROOT / "backprop", package, ignore=shutil.ignore_patterns("__pycache__"))
    io = package / "io.py"
    io.write_text(
        io.read_text() + "\n\ndef _sequential():\n    from .model import Sequential\n\n"
        "    return Sequential\n"
    )
    header, contracts = _contract_sections()
    floors = [c for c in contracts if 'name = "floors:' in c]
    assert len(floors) == 1, "pyproject.toml has no contract for the package's floors"
    config = tmp_path / "contract.toml"
    config.write_text(header + "[[tool.importlinter.contracts]]" + floors[0])
    result = _lint_copy(tmp_path, config)
    assert result.returncode != 0, result.stdout + result.stderr
    assert "backprop.io is not allowed to import backprop.model" in result.stdout


def _lint_copy(folder: Path, config: Path) -> subprocess.CompletedProcess:
    """lint-imports on the copy of the package in ``folder``."""
    exe = shutil.which("lint-imports") or str(Path(sys.executable).with_name("lint-imports"))
    if not Path(exe).exists():
        pytest.skip('import-linter is not installed: pip install -e ".[test]"')
    return subprocess.run(
        [exe, "--config", str(config), "--no-cache"],
        cwd=folder,
        env={**os.environ, "PYTHONPATH": str(folder)},
        capture_output=True,
        text=True,
        timeout=300,
    )


def _import_circles(package: str) -> list[list[str]]:
    """The import circles among the modules of ``package``, imports inside functions included.

    Each circle is a strongly connected component (of two modules or more) of the graph of
    direct imports that grimp builds from every import statement, at module level or in a
    function body (imports under ``if TYPE_CHECKING:`` never run and are left out).
    """
    grimp = pytest.importorskip("grimp")
    graph = grimp.build_graph(package, exclude_type_checking_imports=True, cache_dir=None)
    edges = {m: sorted(graph.find_modules_directly_imported_by(m)) for m in graph.modules}
    # Tarjan's algorithm, iteratively (no recursion limit on deep chains)
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    circles = []
    for root in sorted(edges):
        if root in index:
            continue
        work = [(root, 0)]
        while work:
            node, i = work.pop()
            if i == 0:
                index[node] = low[node] = len(index)
                stack.append(node)
                on_stack.add(node)
            if i < len(edges[node]):
                work.append((node, i + 1))
                nxt = edges[node][i]
                if nxt not in index:
                    work.append((nxt, 0))
                elif nxt in on_stack:
                    low[node] = min(low[node], index[nxt])
                continue
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    circles.append(sorted(component))
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
    return circles


def test_no_import_circle_counting_imports_inside_functions():
    assert _import_circles("backprop") == []


def test_an_import_circle_through_a_function_is_found(tmp_path, monkeypatch):
    """The search can fail: a call-time import of the model by io (the circle model -> io ->
    model that load once made) is found in a copy of the package."""
    package = tmp_path / "backprop"
    shutil.copytree(ROOT / "backprop", package, ignore=shutil.ignore_patterns("__pycache__"))
    io = package / "io.py"
    io.write_text(
        io.read_text() + "\n\ndef _model():\n    from . import model\n\n    return model\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    for name in [m for m in sys.modules if m == "backprop" or m.startswith("backprop.")]:
        monkeypatch.delitem(sys.modules, name)
    assert ["backprop.io", "backprop.model"] in _import_circles("backprop")


def test_an_import_upwards_inside_the_backend_breaks_its_contract(tmp_path):
    """The backend's floors hold for imports inside functions too: kernels asking selection
    (the floor above it) at call time is a violation, found in a copy of the package."""
    package = tmp_path / "backprop"
    shutil.copytree(ROOT / "backprop" / "backend", package / "backend")
    (package / "__init__.py").write_text("")
    kernels = package / "backend" / "kernels.py"
    kernels.write_text(
        kernels.read_text() + "\n\ndef _current():\n    from .selection import get_backend\n\n"
        "    return get_backend()\n"
    )
    text = (ROOT / "pyproject.toml").read_text()
    start = text.index("[tool.importlinter]")
    contracts = text[start:].split("[[tool.importlinter.contracts]]")
    backend = [c for c in contracts[1:] if 'containers = ["backprop.backend"]' in c]
    assert len(backend) == 1, "pyproject.toml has no contract for the backend's floors"
    config = tmp_path / "contract.toml"
    config.write_text(contracts[0] + "[[tool.importlinter.contracts]]" + backend[0])
    result = _lint_copy(tmp_path, config)
    assert result.returncode != 0, result.stdout + result.stderr
    assert (
        "backprop.backend.kernels is not allowed to import backprop.backend.selection"
        in result.stdout
    )


def test_the_model_module_and_every_class_stay_readable():
    """model.py keeps the network alone (at most 600 lines); no class of the package is over
    600 lines."""
    import ast

    assert len((ROOT / "backprop" / "model.py").read_text().splitlines()) <= 600
    long = {}
    for path in (ROOT / "backprop").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ClassDef) and node.end_lineno - node.lineno + 1 > 600:
                long[f"{path.relative_to(ROOT)}:{node.name}"] = node.end_lineno - node.lineno + 1
    assert not long


def test_no_module_of_the_backend_package_is_over_450_lines():
    lines = {
        path.name: len(path.read_text().splitlines())
        for path in (ROOT / "backprop" / "backend").glob("*.py")
    }
    assert len(lines) >= 6
    assert not {name: n for name, n in lines.items() if n > 450}
