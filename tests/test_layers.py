"""Layering of src/genrec: no upward imports (lazy ones inside functions included) and no import cycles.

Layers, low to high: data < models < ranking < evaluation < training < generation < serving < cli.
A module may import its own layer and the layers below. Modules at the top of the package
(genrec/__init__.py and other genrec/*.py except ranking.py) belong to no layer and are exempt.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"
TOP = "genrec"
LAYERS = ("data", "models", "ranking", "evaluation", "training", "generation", "serving", "cli")


@dataclass(frozen=True)
class Import:
    importer: str
    imported: str
    path: str  # the importer's file, relative to the source root
    line: int

    def __str__(self) -> str:
        return f"{self.path}:{self.line}  {self.importer} -> {self.imported}"


def find_modules(src: Path, top: str = TOP) -> dict[str, Path]:
    """Dotted module name -> file, for every .py under src/top (a package is its __init__.py)."""
    out = {}
    for path in sorted((src / top).rglob("*.py")):
        parts = path.relative_to(src).with_suffix("").parts
        out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return out


def _known(name: str, modules: dict[str, Path]) -> str | None:
    """`name` if it is a module, else its longest prefix that is one (`pkg.mod.attr` -> `pkg.mod`)."""
    while name and name not in modules:
        name = name.rpartition(".")[0]
    return name or None


def _targets(node: ast.AST, module: str, is_package: bool, modules: dict[str, Path]) -> Iterable[str]:
    """The modules one import statement (or literal importlib.import_module call) names."""
    if isinstance(node, ast.Import):
        yield from (alias.name for alias in node.names)
    elif isinstance(node, ast.ImportFrom):
        base = node.module or ""
        if node.level:  # relative: from the importer's package, one level up per extra dot
            package = module if is_package else module.rpartition(".")[0]
            for _ in range(node.level - 1):
                package = package.rpartition(".")[0]
            base = f"{package}.{base}" if base else package
        for alias in node.names:  # `from pkg import mod` names the submodule, `from mod import f` the module
            yield f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base
    elif (
        isinstance(node, ast.Call)
        and node.args
        and isinstance(node.args[0], ast.Constant)
        and isinstance(node.args[0].value, str)
        and ast.unparse(node.func) in ("importlib.import_module", "import_module", "__import__")
    ):
        yield node.args[0].value


def find_imports(src: Path, top: str = TOP) -> list[Import]:
    """Every import of a module of `top` by a module of `top`, wherever in the file it is."""
    modules = find_modules(src, top)
    out = set()
    for module, path in modules.items():
        tree = ast.parse(path.read_text(), filename=str(path))
        for node in ast.walk(tree):
            for name in _targets(node, module, path.name == "__init__.py", modules):
                target = _known(name, modules)
                if target is not None and target != module:
                    out.add(Import(module, target, str(path.relative_to(src)), node.lineno))
    return sorted(out, key=lambda i: (i.path, i.line, i.imported))


def layer(module: str) -> int | None:
    """Index of the module's layer; None for the exempt top-level modules and unknown subpackages."""
    parts = module.split(".")
    return LAYERS.index(parts[1]) if len(parts) > 1 and parts[1] in LAYERS else None


def unranked_packages(src: Path, top: str = TOP) -> list[str]:
    """Subpackages of `top` outside every layer: their imports would go unchecked."""
    return sorted(
        {
            m
            for m, p in find_modules(src, top).items()
            if p.name == "__init__.py" and m.count(".") == 1 and layer(m) is None
        }
    )


def upward_imports(imports: list[Import]) -> list[Import]:
    return [
        i
        for i in imports
        if layer(i.importer) is not None
        and layer(i.imported) is not None
        and layer(i.imported) > layer(i.importer)
    ]


def cycles(imports: list[Import]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan), each sorted.

    A package's __init__ importing its own submodules (to re-export them) is left out of the graph:
    Python loads those while the package is being set up, so it is no cycle with them.
    """
    graph: dict[str, set[str]] = {}
    for i in imports:
        if not i.imported.startswith(i.importer + "."):
            graph.setdefault(i.importer, set()).add(i.imported)
            graph.setdefault(i.imported, set())
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                out.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return sorted(out)


def report(imports: list[Import]) -> str:
    up = upward_imports(imports)
    lines = [f"{len(up)} upward import(s):"]
    lines += [f"  {i}  ({LAYERS[layer(i.importer)]} -> {LAYERS[layer(i.imported)]})" for i in up]
    found = cycles(imports)
    lines.append(f"{len(found)} import cycle(s):")
    for component in found:
        members = set(component)
        lines.append("  " + " <-> ".join(component))
        lines += [
            f"    {i}"
            for i in imports
            if i.importer in members and i.imported in members and not i.imported.startswith(i.importer + ".")
        ]
    return "\n".join(lines)


def test_no_upward_imports_and_no_cycles():
    imports = find_imports(SRC)
    assert len(imports) > 100  # the walk really found the package's imports
    if upward_imports(imports) or cycles(imports):
        pytest.fail(report(imports), pytrace=False)


def test_every_subpackage_has_a_layer():
    assert unranked_packages(SRC) == [], f"add these to LAYERS: {unranked_packages(SRC)}"


# --- the checker itself, on a package made up for the purpose -------------------------------------
FAKE = {
    "__init__.py": "",
    "util.py": "import genrec.cli.main\n",  # top level: exempt
    "data/__init__.py": "from .x import X\n",  # a re-export, no cycle with x
    "data/x.py": "from genrec.data import y\nimport genrec.models.m\nX = 1\n",
    "data/y.py": "from genrec.data import X\nimport genrec.util\nfrom genrec import __version__\n",
    "models/__init__.py": "",
    "models/m.py": "import os\n\n\ndef f():\n    from ..training import t\n    return t\n",
    "ranking.py": "from genrec.data.x import X\nimport genrec.training.u\n",
    "evaluation/__init__.py": "",
    "evaluation/e.py": "import importlib\nimport genrec.ranking\nimportlib.import_module('genrec.cli.main')",
    "training/__init__.py": "",
    "training/t.py": "from genrec.training.u import U\n",
    "training/u.py": "from . import t\nfrom genrec.data import X\nU = 1\n",
    "cli/__init__.py": "",
    "cli/main.py": "from genrec.serving import s\n",
    "serving/s.py": "from genrec.models.m import f\n",
    "extras/__init__.py": "",
}


def test_checker_finds_upward_imports_lazy_ones_and_cycles(tmp_path):
    for name, text in FAKE.items():
        (tmp_path / "genrec" / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / "genrec" / name).write_text(text)
    imports = find_imports(tmp_path)
    up = [(i.importer, i.imported, i.line) for i in upward_imports(imports)]
    assert up == [
        ("genrec.data.x", "genrec.models.m", 2),
        ("genrec.evaluation.e", "genrec.cli.main", 3),  # importlib with a literal name
        ("genrec.models.m", "genrec.training.t", 5),  # lazy and relative
        ("genrec.ranking", "genrec.training.u", 2),
    ], report(imports)
    assert cycles(imports) == [["genrec.training.t", "genrec.training.u"]], report(imports)
    assert unranked_packages(tmp_path) == ["genrec.extras"]
    text = report(imports)
    assert "genrec/models/m.py:5  genrec.models.m -> genrec.training.t  (models -> training)" in text
    assert "genrec.training.t <-> genrec.training.u" in text
