"""The shape of the source tree: imports in one direction, the CLI on top, no private reach-ins.

Every module under ``src/mlipspace`` is parsed with :mod:`ast` (nothing is imported), and
the imports between mlipspace modules form a graph. Imports inside functions count (they
are real dependencies, only deferred); imports under ``if TYPE_CHECKING:`` do not (they
exist for annotations only and never run).

A *unit* is a subpackage (``mlipspace.metrics``) or a top-level module
(``mlipspace.features``); ``mlipspace`` itself (the root ``__init__``, a facade that
re-exports) is a unit too, so a module that imports from the root package depends on
everything the root re-exports.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"
PACKAGE = "mlipspace"
MAX_LINES = 700


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _sources() -> dict[str, Path]:
    return {_module_name(p): p for p in sorted((SRC / PACKAGE).rglob("*.py"))}


MODULES = _sources()


def _is_package(module: str) -> bool:
    return MODULES[module].name == "__init__.py"


def _unit(module: str) -> str:
    parts = module.split(".")
    return ".".join(parts[:2])


def _type_checking_nodes(tree: ast.AST) -> set[int]:
    """ids of the nodes inside ``if TYPE_CHECKING:`` blocks."""
    skip: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If):
            test = node.test
            name = test.id if isinstance(test, ast.Name) else getattr(test, "attr", None)
            if name == "TYPE_CHECKING":
                for child in node.body:
                    skip.update(id(n) for n in ast.walk(child))
    return skip


class Import:
    """One imported mlipspace module, with the names taken from it."""

    def __init__(self, target: str, names: list[str], line: int, alias: str | None = None):
        self.target, self.names, self.line, self.alias = target, names, line, alias


def _imports(module: str) -> list[Import]:
    """The mlipspace modules ``module`` imports (``from pkg import submodule`` resolved)."""
    tree = ast.parse(MODULES[module].read_text(encoding="utf-8"))
    skip = _type_checking_nodes(tree)
    package = module if _is_package(module) else module.rsplit(".", 1)[0]
    out: list[Import] = []
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == PACKAGE:
                    target = alias.name
                    while target not in MODULES:
                        target = target.rsplit(".", 1)[0]
                    out.append(Import(target, [], node.lineno, alias.asname or alias.name))
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                source = ".".join(base + ([node.module] if node.module else []))
            else:
                source = node.module or ""
            if source.split(".")[0] != PACKAGE:
                continue
            plain = []
            for alias in node.names:
                sub = f"{source}.{alias.name}"
                if sub in MODULES:  # ``from pkg import module``
                    out.append(Import(sub, [], node.lineno, alias.asname or alias.name))
                else:
                    plain.append(alias.name)
            if plain:
                out.append(Import(source, plain, node.lineno))
    return out


IMPORTS = {module: _imports(module) for module in MODULES}


def _cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one node (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = [0]

    def visit(node: str) -> None:
        index[node] = low[node] = counter[0]
        counter[0] += 1
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(edges.get(node, ())):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(edges):
        if node not in index:
            visit(node)
    return found


def _witnesses(component: list[str], edges_by: dict[tuple[str, str], list[str]]) -> list[str]:
    members = set(component)
    return sorted(
        f"{a} -> {b} ({', '.join(sorted(set(where))[:3])})"
        for (a, b), where in edges_by.items()
        if a in members and b in members
    )


def unit_cycles() -> list[str]:
    """Cycles between units (subpackages, top-level modules, the root facade)."""
    edges: dict[str, set[str]] = defaultdict(set)
    edges_by: dict[tuple[str, str], list[str]] = defaultdict(list)
    for module, imports in IMPORTS.items():
        for imp in imports:
            a, b = _unit(module), _unit(imp.target)
            if a != b:
                edges[a].add(b)
                edges_by[a, b].append(f"{module}:{imp.line}")
    return [" | ".join(_witnesses(c, edges_by)) for c in _cycles(edges)]


def module_cycles() -> list[str]:
    """Cycles between the modules of one unit (a package ``__init__`` included)."""
    edges: dict[str, set[str]] = defaultdict(set)
    edges_by: dict[tuple[str, str], list[str]] = defaultdict(list)
    for module, imports in IMPORTS.items():
        for imp in imports:
            if _unit(module) == _unit(imp.target) and module != imp.target:
                edges[module].add(imp.target)
                edges_by[module, imp.target].append(f"{module}:{imp.line}")
    return [" | ".join(_witnesses(c, edges_by)) for c in _cycles(edges)]


#: ``python -m mlipspace`` is the command line's other door
CLI_ENTRY_POINTS = {"mlipspace.__main__"}


def cli_imports() -> list[str]:
    """Imports of ``mlipspace.cli`` from the library (outside the CLI and its entry points)."""
    return sorted(
        f"{module}:{imp.line} imports {imp.target}"
        for module, imports in IMPORTS.items()
        for imp in imports
        if _unit(imp.target) == "mlipspace.cli"
        and _unit(module) != "mlipspace.cli"
        and module not in CLI_ENTRY_POINTS
    )


def _private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def private_uses() -> list[str]:
    """Private (``_``-prefixed) modules or names of another unit, imported or reached by
    attribute (``module._name``)."""
    found = []
    for module, imports in IMPORTS.items():
        aliases = {}
        for imp in imports:
            if _unit(imp.target) == _unit(module):
                continue
            private_parts = [p for p in imp.target.split(".") if _private(p)]
            if private_parts:
                found.append(f"{module}:{imp.line} imports private module {imp.target}")
            for name in imp.names:
                if _private(name):
                    found.append(f"{module}:{imp.line} imports {imp.target}.{name}")
            if imp.alias:
                aliases[imp.alias] = imp.target
        if not aliases:
            continue
        tree = ast.parse(MODULES[module].read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute) and _private(node.attr):
                owner = ast.unparse(node.value)
                if owner in aliases:
                    found.append(f"{module}:{node.lineno} uses {aliases[owner]}.{node.attr}")
    return sorted(found)


#: the plotting libraries: only the report draws (analyses write data, issue 15 item 4)
PLOTTING = ("matplotlib", "plotly")


def drawing_modules(sources: dict[str, str] | None = None) -> list[str]:
    """Modules outside ``mlipspace.report`` that import a plotting library (deferred imports
    included); ``sources``: module → source text (default: the package)."""
    if sources is None:
        sources = {m: path.read_text(encoding="utf-8") for m, path in MODULES.items()}
    found = []
    for module, text in sources.items():
        if _unit(module) == "mlipspace.report":
            continue
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and not node.level:
                names = [node.module or ""]
            else:
                continue
            if any(name.split(".")[0] in PLOTTING for name in names):
                found.append(f"{module}:{node.lineno} imports {', '.join(names)}")
    return sorted(found)


def error_classes_elsewhere() -> list[str]:
    """Exception classes defined outside ``mlipspace.errors`` (a worker re-raises an error by
    its class name from that module, so every error a user can cause lives there)."""
    out = []
    for module, path in MODULES.items():
        if module == "mlipspace.errors":
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ClassDef):
                bases = [ast.unparse(b).rsplit(".", 1)[-1] for b in node.bases]
                if any(b.endswith(("Error", "Exception")) for b in bases):
                    out.append(f"{module}:{node.lineno} {node.name}({', '.join(bases)})")
    return sorted(out)


#: The layers of the package, low → high: a module imports only from its own layer or a lower
#: one, so data flows one way (structures → features → store → analyses → results → report →
#: study → command line). Units of one layer may import each other (no cycle: see
#: ``test_no_import_cycles_between_units``). Where a unit sits off the obvious place:
#: ``devices`` (torch device names) sits with ``errors`` because featurization and metrics
#: both pick devices; ``results`` (the results-folder layout) sits above the measures because
#: it reads the store and is read by every analysis stage; ``diagnostics`` shares the
#: Platonic layer because it scores failures in the common space of ``platonic``;
#: ``distributed`` sits above the analyses because it runs the measures and featurization on
#: Dask; ``studyfile`` (the study file's parser) sits with ``study`` and ``demo`` that read
#: it; the root ``mlipspace`` is a facade on top that nothing inside imports.
LAYERS: tuple[tuple[str, ...], ...] = (
    ("errors", "version", "devices", "workers"),
    ("structures", "features"),
    ("store", "models"),
    ("featurization",),
    ("metrics", "pooling", "anchors", "transport"),
    ("results",),
    ("platonic", "diagnostics"),
    ("distributed",),
    ("report",),
    ("study", "studyfile", "demo"),
    ("cli", "__main__"),
    ("",),  # the root facade, mlipspace/__init__.py
)


def layer(unit: str) -> int | None:
    """The layer of a unit (index into :data:`LAYERS`), None for a unit not placed."""
    name = unit.removeprefix(PACKAGE).removeprefix(".")
    return next((i for i, names in enumerate(LAYERS) if name in names), None)


def unplaced_units() -> list[str]:
    return sorted({_unit(m) for m in MODULES if layer(_unit(m)) is None})


def upward_imports(imports: dict[str, list[Import]] = IMPORTS) -> list[str]:
    """Imports of a unit from a higher layer than its own."""
    found = []
    for module, targets in imports.items():
        here = layer(_unit(module))
        for imp in targets:
            there = layer(_unit(imp.target))
            if here is not None and there is not None and there > here:
                found.append(f"{module}:{imp.line} imports {imp.target} (layer {there} > {here})")
    return sorted(found)


def long_files() -> list[str]:
    out = []
    for path in MODULES.values():
        n = len(path.read_text(encoding="utf-8").splitlines())
        if n > MAX_LINES:
            out.append(f"{path.relative_to(SRC)} ({n} lines)")
    return sorted(out)


# -- the checker finds what it must find -------------------------------------------------


def test_cycle_finder_finds_a_cycle_and_only_it():
    edges = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}, "e": set()}
    assert _cycles(edges) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []


def test_layer_checker_finds_an_upward_import():
    fake = {
        "mlipspace.metrics.compare": [Import("mlipspace.report.figures", ["Heatmap"], 7)],
        "mlipspace.report.build": [Import("mlipspace.metrics", ["compare"], 3)],
        "mlipspace.report.sections.overview": [Import("mlipspace", ["__version__"], 9)],
    }
    assert upward_imports(fake) == [
        "mlipspace.metrics.compare:7 imports mlipspace.report.figures (layer 8 > 4)",
        "mlipspace.report.sections.overview:9 imports mlipspace (layer 11 > 8)",
    ]
    assert layer("mlipspace") == len(LAYERS) - 1 and layer("mlipspace.nothing") is None


def test_drawing_checker_finds_a_deferred_plotting_import():
    deferred = "def draw():\n    import matplotlib.pyplot as plt\n"
    sources = {
        "mlipspace.transport.ot": deferred,
        "mlipspace.platonic.run": "from plotly import graph_objects\n",
        "mlipspace.report.plots": deferred,  # the report may draw
    }
    assert drawing_modules(sources) == [
        "mlipspace.platonic.run:1 imports plotly",
        "mlipspace.transport.ot:2 imports matplotlib.pyplot",
    ]


def test_imports_are_resolved():
    """Relative imports, ``from package import module`` and deferred imports are seen."""
    featurization = {i.target for i in IMPORTS["mlipspace.featurization.api"]}
    assert {"mlipspace.featurization.core", "mlipspace.featurization.parent"} <= featurization
    assert "mlipspace.store" in featurization  # ``from ..store import open_store``
    envs = {i.target for i in IMPORTS["mlipspace.featurization.envs"]}
    assert "mlipspace.featurization.child" in envs  # inside a function
    assert "mlipspace.featurization.envs" in {
        i.target for i in IMPORTS["mlipspace.cli.env"]
    }  # ``from ..featurization import envs``


# -- the rules -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "breaches",
    [
        pytest.param(unit_cycles, id="no import cycles between units"),
        pytest.param(module_cycles, id="no import cycles inside a unit"),
        # a new subpackage or top-level module must be placed in LAYERS
        pytest.param(unplaced_units, id="every unit has a layer"),
        pytest.param(upward_imports, id="modules import only from their layer or lower"),
        pytest.param(cli_imports, id="only the CLI imports the CLI"),
        pytest.param(private_uses, id="no private names across units"),
        pytest.param(long_files, id="no source file over 700 lines"),
        # analyses write tables; every figure is drawn by mlipspace.report from them
        pytest.param(drawing_modules, id="only the report draws"),
        pytest.param(error_classes_elsewhere, id="every error class lives in errors.py"),
    ],
)
def test_rule_holds(breaches):
    assert breaches() == []


def test_the_report_takes_the_version_from_its_module():
    """Not from the root facade (``from mlipspace import __version__``), which sits on top."""
    version = [
        imp.target
        for module, imports in IMPORTS.items()
        if _unit(module) == "mlipspace.report"
        for imp in imports
        if "__version__" in imp.names
    ]
    assert version == ["mlipspace.version"]


@pytest.mark.parametrize("unit", ["mlipspace.featurization", "mlipspace.store"])
def test_featurization_and_store_use_no_private_names_of_others(unit):
    assert [u for u in private_uses() if u.startswith(unit)] == []


def test_py_typed_ships():
    """The ``py.typed`` marker (PEP 561) exists and is package data."""
    import tomllib

    assert (SRC / PACKAGE / "py.typed").is_file()
    pyproject = tomllib.loads((SRC.parent / "pyproject.toml").read_text(encoding="utf-8"))
    assert "py.typed" in pyproject["tool"]["setuptools"]["package-data"][PACKAGE]
