"""The documentation in docs/ is tested: its code runs, its quotes match the source, its API
reference names every public object.

Fenced blocks, by their info string:

- ``python``: run, in order, one fresh namespace per page, in a temporary working directory with
  matplotlib's Agg backend;
- ``text output`` right after a ``python`` block: what that block prints, compared line by line
  with the floating-point numbers masked (the structure is checked, not the values);
- ``py file=PATH object=QUALNAME``: a quotation of the source; each run of lines (runs are
  separated by a line ``...``) must appear verbatim, in order, in that object's source, and the
  paragraph right above the block must name the file and the object;
- ``python-gpu``, ``text``, ``bash``: shown, not run (they need a GPU, another library or a
  shell).

README.md, the front door, is held to the same rules and a few more:

- ``python`` blocks run as a page's do, in order, in one namespace;
- ``python gpu`` blocks (the ``gpu`` flag; GitHub still highlights them as Python) run only in
  the ``gpu``-marked test, with the blocks above them, where CuPy has a GPU; elsewhere that
  test is skipped with a reason, never passed;
- every line of a ``bash`` block (here and on the pages) is classified, and a line of no known
  kind fails the test: ``pip install ...`` changes the environment and is not run;
  ``python -m backprop ...`` (also after ``mpirun -n K`` or ``VAR=value``) is parsed by the
  command line's own parser, so a flag or value that is gone fails; ``python -m pytest`` is
  this suite; ``python script.py`` of a script that is not in the repository is the reader's
  own, and one that is must exist; so must ``bash script.sh``;
- the same parse applies to every ``python -m backprop ARGS`` quoted inline in the prose;
- the table of equations quotes the source: each right-hand code span is a dotted name that
  resolves (``layers.Dense.forward``) or a fragment found verbatim in ``backprop/``.
"""

from __future__ import annotations

import ast
import contextlib
import importlib
import inspect
import io
import os
import re
import shlex
import sys
import textwrap
import types
from dataclasses import dataclass
from pathlib import Path

import pytest

import backprop as bp
from backprop import backend as _backend

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
PAGES = [
    "index.md",
    "article-to-code.md",
    "backends.md",
    "api.md",
    "file-format.md",
    "faq.md",
    "distributed.md",
    "sklearn.md",
    "normalization.md",
    "convolution.md",
    "data.md",
]
README = "README.md"  # the front door, beside docs/; see the module docstring
KINDS = {"python", "python-gpu", "py", "text", "bash"}

# the modules whose public names docs/api.md documents (besides those in backprop.__all__)
EXTRA_MODULES = [
    "viz",
    "backend",
    "model",
    "weights",
    "io",
    "distributed.comm",
    "distributed.parallel",
    "distributed.predict",
    "training.errors",
    "training.base",
    "training.choose",
    "training.captured",
    "training.sharded",
    "training.streamed",
    "training.captured_streamed",
    "training.streamed_sharded",
    "data.adapters",
    "data.sources",
    "data.pydataset",
    "data.batches",
    "data.prefetch",
]


@dataclass
class Block:
    kind: str
    attrs: dict[str, str]
    flags: set[str]
    code: str
    line: int  # 1-based line of the first line of code in the page
    before: str  # the paragraph right above the opening fence


def _file(page: str) -> Path:
    """A page of docs/, or the README at the root."""
    return ROOT / page if page == README else DOCS / page


def blocks(page: str) -> list[Block]:
    """The fenced code blocks of a page, in order."""
    if not _file(page).is_file():  # reported by test_every_page_exists_and_the_index_links_it
        return []
    lines = _file(page).read_text(encoding="utf-8").splitlines()
    out, i = [], 0
    while i < len(lines):
        m = re.match(r"^```(\S*)(.*)$", lines[i])
        if not m:
            i += 1
            continue
        kind, rest = m.group(1), m.group(2).split()
        attrs = dict(w.split("=", 1) for w in rest if "=" in w)
        flags = {w for w in rest if "=" not in w}
        above: list[str] = []  # the paragraph right above the fence
        for s in reversed(lines[:i]):
            if s.startswith("```") or (not s.strip() and above):
                break
            if s.strip():
                above.insert(0, s)
        before = " ".join(above)
        end = next((j for j in range(i + 1, len(lines)) if lines[j].startswith("```")), None)
        assert end is not None, f"{page}:{i + 1}: unclosed code fence"
        out.append(Block(kind, attrs, flags, "\n".join(lines[i + 1 : end]), i + 2, before))
        i = end + 1
    return out


# -- every page exists, is linked from the index, and its links resolve --------------------------


def test_every_page_exists_and_the_index_links_it():
    index = (DOCS / "index.md").read_text(encoding="utf-8")
    for page in PAGES:
        assert (DOCS / page).is_file(), page
        if page != "index.md":
            assert f"({page})" in index, f"docs/index.md does not link {page}"


def _slug(heading: str) -> str:
    """GitHub's anchor for a heading."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


@pytest.mark.parametrize("page", [*PAGES, README])
def test_relative_links_resolve(page):
    text = _file(page).read_text(encoding="utf-8")
    for target in re.findall(r"\]\(([^)\s]+)\)", text):
        if re.match(r"[a-z]+://", target):
            continue
        path, _, anchor = target.partition("#")
        file = (_file(page).parent / path) if path else _file(page)
        assert file.exists(), f"{page}: broken link {target}"
        if anchor and file.suffix == ".md":
            headings = re.findall(r"^#+ (.*)$", file.read_text(encoding="utf-8"), re.M)
            assert anchor in {_slug(h) for h in headings}, f"{page}: no anchor {target}"


@pytest.mark.parametrize("page", [*PAGES, README])
def test_code_fences_are_of_known_kinds(page):
    """A typo such as ```Python would silently skip a block; only known kinds are allowed."""
    text = _file(page).read_text(encoding="utf-8")
    indented = [i + 1 for i, s in enumerate(text.splitlines()) if re.match(r"\s+```", s)]
    assert not indented, f"{page}: indented code fences (not parsed) on lines {indented}"
    for b in blocks(page):
        assert b.kind in KINDS, f"{page}:{b.line - 1}: unknown code fence kind {b.kind!r}"
        if b.kind == "py":
            assert set(b.attrs) == {"file", "object"}, f"{page}:{b.line - 1}: {b.attrs}"
        if "output" in b.flags:
            assert b.kind == "text", f"{page}:{b.line - 1}: only text blocks can be output"
        if "gpu" in b.flags:
            assert b.kind == "python", f"{page}:{b.line - 1}: only python blocks can be gpu"
        assert b.flags <= {"output", "gpu"}, f"{page}:{b.line - 1}: unknown flags {b.flags}"


# -- the python blocks run -------------------------------------------------------------------------


@pytest.fixture
def docs_env(tmp_path, monkeypatch):
    """A temporary working directory, matplotlib's Agg backend, and the backend choice reset."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MPLBACKEND", "Agg")
    with contextlib.suppress(ImportError):
        import matplotlib

        matplotlib.use("Agg")
    monkeypatch.delenv(_backend.ENV_VAR, raising=False)
    monkeypatch.setattr(_backend, "_global", None)
    yield tmp_path
    # a page may set the variable itself; monkeypatch then restores what was there before
    os.environ.pop(_backend.ENV_VAR, None)


_NUMBER = r"[-+]?(?:\d+\.\d+|\d+)(?:[eE][-+]?\d+)?"


def mask_numbers(text: str) -> list[str]:
    """The lines of ``text`` with every floating-point value replaced by ``#``.

    Values after ``norm``, ``min`` and ``max`` are masked even when they print as integers;
    other integers (shapes, counts) are kept, they are part of the structure.
    """
    out = []
    for line in text.strip("\n").splitlines():
        line = re.sub(rf"\b(norm|min|max) {_NUMBER}", r"\1 #", line.rstrip())
        line = re.sub(rf"(?<![\w.#]){_NUMBER}", _mask_float, line)
        out.append(line)
    return out


def _mask_float(m: re.Match) -> str:
    s = m.group(0)
    return "#" if ("." in s or "e" in s.lower()) else s


def _imports(code: str) -> list[str]:
    """The modules a block imports, in order, except backprop's own (those must never skip)."""
    names = []
    for node in ast.walk(ast.parse(code)):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.append(node.module)
    return [n for n in names if n.split(".")[0] != "backprop"]


def _skip_unless_importable(code: str, where: str) -> None:
    """Skip, as tests/test_distributed_predict.py does, when an optional library is missing."""
    for name in _imports(code):
        for prefix in [".".join(name.split(".")[: i + 1]) for i in range(name.count(".") + 1)]:
            # the package first: a submodule imported earlier stays in sys.modules
            pytest.importorskip(
                prefix,
                reason=f"{where} needs {name}, which is not installed here (see the page)",
            )


def _run_page(page: str, gpu: bool = False) -> None:
    """Run the page's ``python`` blocks in order; its ``python gpu`` ones too when ``gpu``."""
    namespace: dict = {"__name__": f"docs_{page.replace('-', '_').removesuffix('.md')}"}
    page_blocks = blocks(page)
    for i, b in enumerate(page_blocks):
        if b.kind != "python" or ("gpu" in b.flags and not gpu):
            continue
        # the blocks above have run; from here on the page needs the library
        _skip_unless_importable(b.code, f"{page}:{b.line}")
        # leading newlines: tracebacks then point at the line of the page
        code = compile("\n" * (b.line - 1) + b.code, str(_file(page)), "exec")
        stdout = io.StringIO()
        with contextlib.redirect_stdout(stdout):
            exec(code, namespace)
        following = page_blocks[i + 1] if i + 1 < len(page_blocks) else None
        if following is not None and "output" in following.flags:
            assert mask_numbers(stdout.getvalue()) == mask_numbers(following.code), (
                f"{page}:{following.line}: the printed output no longer has the structure shown"
            )


@pytest.mark.parametrize("page", PAGES)
def test_page_code_runs(page, docs_env):
    _run_page(page)


# -- README.md: the front door runs too -----------------------------------------------------------


def test_readme_code_runs(docs_env):
    assert [b for b in blocks(README) if b.kind == "python" and "gpu" not in b.flags]
    _run_page(README)


@pytest.mark.gpu
def test_readme_gpu_code_runs(docs_env):
    """The ``python gpu`` blocks, after the blocks above them, where CuPy has a GPU."""
    gpu_blocks = [b for b in blocks(README) if "gpu" in b.flags]
    assert gpu_blocks, "README.md has no python gpu block: drop this test or mark one"
    if "cupy" not in bp.available_backends():
        where = ", ".join(f"README.md:{b.line}" for b in gpu_blocks)
        pytest.skip(f"{where}: python gpu blocks need CuPy and a CUDA GPU, not usable here")
    _run_page(README, gpu=True)


def _cli_parse(words: list[str], where: str) -> None:
    """``python -m backprop`` + ``words``, through the command line's own parser only."""
    from backprop.__main__ import _parser

    stderr = io.StringIO()
    try:
        with contextlib.redirect_stderr(stderr):
            _parser().parse_args(words)
    except SystemExit:
        refused = f"python -m backprop {' '.join(words)} is refused"
        pytest.fail(f"{where}: {refused}:\n{stderr.getvalue()}")


def _bash_commands(code: str) -> list[tuple[int, list[str]]]:
    """The commands of a bash block: (line offset, words), split at ``&&``, without comments."""
    out = []
    for offset, line in enumerate(code.splitlines()):
        words = shlex.split(line, comments=True)
        command: list[str] = []
        for word in [*words, "&&"]:
            if word == "&&":
                if command:
                    out.append((offset, command))
                command = []
            else:
                command.append(word)
    return out


def _check_bash_command(words: list[str], where: str) -> str:
    """Classify one command of a bash block (see the module docstring), checking what can be."""
    setting = r"[A-Za-z_]\w*=\S*"
    if words[:2] == ["pip", "install"]:
        return "setup"  # changes the environment: shown, not run
    if words[0] == "export" and all(re.fullmatch(setting, w) for w in words[1:]):
        return "environment"  # variables for the commands below
    while words and re.fullmatch(setting, words[0]):
        words = words[1:]  # VAR=value before a command
    if words[:1] == ["mpirun"] and "python" in words:
        words = words[words.index("python") :]  # mpirun -n K [options]: the command it starts
    if words[:2] == ["python", "-m"] and len(words) > 2 and words[2].startswith("bench."):
        module = ROOT / (words[2].replace(".", "/") + ".py")
        assert module.is_file(), f"{where}: python -m {words[2]}: no {module.name} in bench/"
        return "repository module"
    if words[:3] == ["python", "-m", "backprop"]:
        _cli_parse(words[3:], where)
        return "cli"
    if words[:3] == ["python", "-m", "pytest"]:
        return "suite"
    if len(words) >= 2 and words[0] in ("python", "bash") and words[1].endswith((".py", ".sh")):
        script = words[1]
        if words[0] == "python" and "/" not in script and not (ROOT / script).exists():
            return "the reader's script"  # e.g. train.py: written by the reader, not run
        assert (ROOT / script).is_file(), f"{where}: {script} is not in the repository"
        return "repository script"
    pytest.fail(
        f"{where}: a bash command of no known kind, {' '.join(words)!r}: add a rule for it to "
        "tests/test_docs.py (see its docstring) or write it otherwise"
    )


@pytest.mark.parametrize("page", [README, *PAGES])
def test_bash_blocks_are_known_commands_and_parse(page):
    for b in blocks(page):
        if b.kind == "bash":
            for offset, words in _bash_commands(b.code):
                _check_bash_command(words, f"{page}:{b.line + offset}")


@pytest.mark.parametrize("page", [README, *PAGES])
def test_inline_command_lines_parse(page):
    """``python -m backprop train --dataset moons ...`` in the prose, wrapped lines and all."""
    text = _file(page).read_text(encoding="utf-8")
    text = re.sub(r"^```.*?^```", "", text, flags=re.S | re.M)  # the blocks are checked above
    # (a bare `python -m backprop` names the program, not a command line)
    for quoted in re.findall(r"`(python\s+-m\s+backprop\s[^`]*)`", text):  # wrapped lines too
        _cli_parse(shlex.split(quoted)[3:], f"{page}: `{' '.join(quoted.split())}`")


def _equation_table() -> list[str]:
    """The code spans of the right-hand column of README.md's table of equations."""
    lines = _file(README).read_text(encoding="utf-8").splitlines()
    start = lines.index("| the math | backprop |")
    spans = []
    for line in lines[start + 2 :]:
        if not line.startswith("|"):
            break
        spans += re.findall(r"`([^`]+)`", line.rsplit(" | ", 1)[1])
    return spans


def _resolve(dotted: str) -> object | None:
    """``layers.Dense.forward`` from ``backprop``, or from one of its public modules."""
    roots = [bp, *(getattr(bp, n) for n in bp.__all__ if inspect.ismodule(getattr(bp, n)))]
    for root in roots:
        obj: object = root
        for part in dotted.split("."):
            obj = getattr(obj, part, None)
            if obj is None:
                break
        if obj is not None:
            return obj
    return None


def test_readme_equation_table_quotes_the_source():
    spans = _equation_table()
    assert len(spans) >= 10, spans
    source = "\n".join(
        f.read_text(encoding="utf-8") for f in sorted((ROOT / "backprop").rglob("*.py"))
    )
    for span in spans:
        if re.fullmatch(r"[A-Za-z_]\w*(\.\w+)+", span):  # a dotted name: it must resolve
            assert _resolve(span) is not None, f"README.md: {span} names nothing in backprop"
        else:
            assert span in source, f"README.md quotes {span!r}, which backprop/ no longer has"


def test_a_page_needing_a_missing_library_skips(docs_env, monkeypatch):
    """Where Dask is not installed, docs/distributed.md skips, as test_distributed_predict.py
    does, after running the blocks before the first one that imports it."""
    for name in ("dask", "dask.array", "distributed", "dask.distributed"):
        monkeypatch.setitem(sys.modules, name, None)  # `import dask` now fails: not installed
    ran = []
    fit = bp.distributed.DataParallel.fit

    def spy(self, *args, **kwargs):
        ran.append("DataParallel.fit")
        return fit(self, *args, **kwargs)

    monkeypatch.setattr(bp.distributed.DataParallel, "fit", spy)
    with pytest.raises(pytest.skip.Exception, match=r"distributed.md:\d+ needs dask"):
        test_page_code_runs("distributed.md", docs_env)
    assert ran == ["DataParallel.fit"]  # the blocks before the Dask one ran


def test_the_imports_of_a_block_are_found():
    code = "import dask.array as da\nimport numpy as np\nfrom distributed import Client\n"
    code += "from backprop.distributed import predict\nimport backprop as bp\nfrom . import x\n"
    assert _imports(code) == ["dask.array", "numpy", "distributed"]


def test_output_blocks_follow_python_blocks():
    for page in PAGES:
        bs = blocks(page)
        for prev, b in zip([None, *bs], bs, strict=False):
            if "output" in b.flags:
                assert prev is not None and prev.kind == "python", f"{page}:{b.line}"


def test_article_page_shows_the_explain_output():
    """The worked example is checked by test_page_code_runs; make sure it stays on the page."""
    outputs = [b for b in blocks("article-to-code.md") if "output" in b.flags]
    assert any("Backward propagation" in b.code and "dW1 = A0.T @ dZ1" in b.code for b in outputs)


def test_mask_numbers_keeps_the_structure():
    a = mask_numbers("    Z1 = A0 @ W1 + b1     (4, 4)  norm 3.004, min -0.9796, max 0")
    b = mask_numbers("    Z1 = A0 @ W1 + b1     (4, 4)  norm 2.5, min -1e-05, max 0.25")
    assert a == b == ["    Z1 = A0 @ W1 + b1     (4, 4)  norm #, min #, max #"]
    assert mask_numbers("(4, 4)") != mask_numbers("(4, 6)")
    assert mask_numbers("at epoch 1. Lower") == ["at epoch 1. Lower"]


# -- quotations of the source are verbatim ---------------------------------------------------------


def _quotes() -> list[tuple[str, Block]]:
    return [(page, b) for page in PAGES for b in blocks(page) if b.kind == "py"]


def _source_of(file: str, qualname: str) -> list[str] | None:
    """The source lines of the class or function ``qualname`` (``Dense.forward``) in ``file``.

    Read from the file as it is now (not from the imported module), so the check sees what a
    reader of the file sees.
    """
    text = (ROOT / file).read_text(encoding="utf-8")
    body = ast.parse(text).body
    node = None
    for part in qualname.split("."):
        node = next(
            (
                n
                for n in body
                if isinstance(n, ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef)
                and n.name == part
            ),
            None,
        )
        if node is None:
            return None
        body = node.body
    start = min([node.lineno, *(d.lineno for d in node.decorator_list)])
    return text.splitlines()[start - 1 : node.end_lineno]


def test_the_pages_quote_the_source():
    assert _quotes(), "no quotations found"


@pytest.mark.parametrize(
    ("page", "block"),
    [pytest.param(p, b, id=f"{p}:{b.line}") for p, b in _quotes()],
)
def test_quotation_is_verbatim(page, block):
    file, qualname = block.attrs["file"], block.attrs["object"]
    where = f"{page}:{block.line - 1}"
    assert f"`{file}`" in block.before and f"`{qualname}`" in block.before, (
        f"{where}: the paragraph above the quotation must name `{file}` and `{qualname}`"
    )
    source = _source_of(file, qualname)
    assert source is not None, f"{where}: no class or function {qualname} in {file}"
    chunks = re.split(r"^\.\.\.$", block.code, flags=re.M)
    start = 0
    for chunk in chunks:
        want = textwrap.dedent(chunk.strip("\n")).splitlines()
        for i in range(start, len(source) - len(want) + 1):
            if textwrap.dedent("\n".join(source[i : i + len(want)])).splitlines() == want:
                start = i + len(want)
                break
        else:
            pytest.fail(f"{where}: these lines are no longer in {file}, {qualname}:\n{chunk}")


# -- the API reference names every public object ---------------------------------------------------


def _modules() -> dict[str, types.ModuleType]:
    names = [n for n in bp.__all__ if isinstance(getattr(bp, n), types.ModuleType)]
    return {n: importlib.import_module(f"backprop.{n}") for n in [*names, *EXTRA_MODULES]}


def _public(module: types.ModuleType) -> dict[str, object]:
    """Classes and functions a module defines and does not mark private (its __all__ if any)."""
    names = getattr(module, "__all__", None) or [n for n in vars(module) if not n.startswith("_")]
    out = {}
    for n in names:
        obj = getattr(module, n)
        if (inspect.isclass(obj) or inspect.isfunction(obj)) and obj.__module__ == module.__name__:
            out[n] = obj
    return out


def _members(cls: type) -> dict[str, object]:
    """Public methods and properties a class adds (overrides are documented on the base)."""
    bases = [b for b in cls.__mro__[1:] if b.__module__.startswith("backprop")]
    return {
        n: obj
        for n, obj in vars(cls).items()
        if not n.startswith("_")
        and (inspect.isfunction(obj) or isinstance(obj, property))
        and not any(n in vars(b) for b in bases)
    }


def _top_level() -> dict[str, object]:
    return {
        n: getattr(bp, n)
        for n in bp.__all__
        if inspect.isclass(getattr(bp, n)) or inspect.isfunction(getattr(bp, n))
    }


def _documented() -> dict[str, set[str]]:
    """Section (``backprop``, ``backprop.layers``, ...) -> the names it has entries for."""
    text = (DOCS / "api.md").read_text(encoding="utf-8")
    sections: dict[str, set[str]] = {}
    current = None
    for line in text.splitlines():
        heading = re.match(r"^## `(backprop[\w.]*)`", line)
        if heading:
            current = sections.setdefault(heading.group(1), set())
        elif current is not None:
            current.update(re.findall(r"\*\*`([\w.]+)`\*\*", line))
    return sections


def _expected() -> dict[str, dict[str, object]]:
    """Section -> {entry name: object} that docs/api.md must have."""
    top = _top_level()
    reexported = {id(obj) for obj in top.values()}
    expected = {"backprop": dict(top)}
    for name, module in _modules().items():
        entries = {n: o for n, o in _public(module).items() if id(o) not in reexported}
        expected[f"backprop.{name}"] = entries
    for section in expected.values():
        for n, obj in list(section.items()):
            if inspect.isclass(obj):
                section.update({f"{n}.{k}": v for k, v in _members(obj).items()})
    return expected


def test_api_page_names_every_public_object():
    documented = _documented()
    missing = [
        f"{section}: {name}"
        for section, entries in _expected().items()
        for name in entries
        if name not in documented.get(section, set())
    ]
    assert not missing, (
        "docs/api.md lacks entries (- **`Name`**`(signature)`: summary line) for:\n"
        + "\n".join(missing)
    )


def test_api_page_names_nothing_that_is_gone():
    expected = _expected()
    stale = [
        f"{section}: {name}"
        for section, names in _documented().items()
        for name in names
        if name not in expected.get(section, {})
    ]
    assert not stale, "docs/api.md documents names that no longer exist:\n" + "\n".join(stale)


def test_every_public_object_has_a_summary_line():
    lacking = []
    for section, entries in _expected().items():
        for name, obj in entries.items():
            target = obj.fget if isinstance(obj, property) else obj
            doc = inspect.getdoc(target) or ""
            if not doc.strip() or not doc.splitlines()[0].strip():
                lacking.append(f"{section}.{name}")
    assert not lacking, "no docstring summary line: " + ", ".join(lacking)
