"""The structure holds: no import cycle between modules or rooms (imports inside functions
included), the layers' contracts (the learners know nothing of ``study``; the engine and the
presentation no Ray, Optuna or MLflow; only ``study.records`` calls MLflow), every room says
what it exports, and no module passes 400 lines. Read from the source with ``ast``: nothing
is imported."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("study", "learners", "search_spaces", "cluster")
MAX_LINES = 400


def modules(root: Path, packages=PACKAGES) -> dict[str, Path]:
    """Every module of ``packages`` under ``root`` by dotted name (a package by its own)."""
    out = {}
    for package in packages:
        for path in sorted((root / package).rglob("*.py")):
            name = ".".join(path.relative_to(root).with_suffix("").parts)
            out[name.removesuffix(".__init__")] = path
    return out


def imports(name: str, path: Path, known: dict[str, Path]) -> set[str]:
    """What module ``name`` imports, at any level of its code: our modules by their names
    (``from a import b`` names ``a.b`` when that is a module), anything else by its top-level
    package."""
    found = set()
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*parts, *([base] if base else [])])
            targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in known else base
                       for a in node.names]  # fmt: skip
        else:
            continue
        for target in targets:
            while target and target not in known and "." in target:
                target = target.rpartition(".")[0]
            if target != name:
                found.add(target)
    return found


def graph(root: Path = ROOT, packages=PACKAGES) -> dict[str, set[str]]:
    known = modules(root, packages)
    return {name: imports(name, path, known) for name, path in known.items()}


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one node (Tarjan's algorithm)."""
    index, low, stack, on, out = {}, {}, [], set(), []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in edges.get(v, ()):
            if w not in edges:
                continue
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            part = []
            while True:
                w = stack.pop()
                on.discard(w)
                part.append(w)
                if w == v:
                    break
            if len(part) > 1:
                out.append(sorted(part))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return out


def room(name: str) -> str:
    """A module's room: ``study.X`` for what lives under study/X/ (or is study/X.py), the
    package itself for the others."""
    parts = name.split(".")
    return ".".join(parts[:2]) if parts[0] == "study" else parts[0]


def rooms(edges: dict[str, set[str]]) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for a, targets in edges.items():
        out.setdefault(room(a), set())
        for b in targets:
            if room(b) != room(a) and b.split(".")[0] in PACKAGES:
                out[room(a)].add(room(b))
    return out


def reaching(edges: dict[str, set[str]], prefix: str) -> dict[str, set[str]]:
    """What the modules of ``prefix`` import, each module's set."""
    return {a: t for a, t in edges.items() if a == prefix or a.startswith(prefix + ".")}


EDGES = graph()


def test_no_import_cycle_between_modules_or_rooms():
    assert cycles(EDGES) == []
    assert cycles(rooms(EDGES)) == []


def test_the_checks_find_a_cycle_they_are_shown(tmp_path):
    """The detector is not blind: two modules that import each other inside functions, and
    two rooms that import each other through different modules, are found."""
    (tmp_path / "study" / "a").mkdir(parents=True)
    (tmp_path / "study" / "b").mkdir()
    for p in ("study", "study/a", "study/b"):
        (tmp_path / p / "__init__.py").write_text("")
    (tmp_path / "study" / "a" / "x.py").write_text("def f():\n    from study.b import y\n")
    (tmp_path / "study" / "b" / "y.py").write_text("from study.b import z\n")
    (tmp_path / "study" / "b" / "z.py").write_text("def g():\n    import study.a.x\n")
    edges = graph(tmp_path, ("study",))
    assert cycles(edges) == [["study.a.x", "study.b.y", "study.b.z"]]
    (tmp_path / "study" / "b" / "y.py").write_text("")
    edges = graph(tmp_path, ("study",))
    assert cycles(edges) == []  # z -> a.x -> b.y no more: a chain
    (tmp_path / "study" / "a" / "x.py").write_text("")
    (tmp_path / "study" / "b" / "y.py").write_text("from study.a import x\n")
    (tmp_path / "study" / "b" / "z.py").write_text("")
    (tmp_path / "study" / "a" / "w.py").write_text("from study.b import z\n")
    edges = graph(tmp_path, ("study",))
    assert cycles(edges) == [] and cycles(rooms(edges)) == [["study.a", "study.b"]]


@pytest.mark.parametrize(
    ("layer", "forbidden"),
    [
        ("learners", ("study", "search_spaces", "ray", "optuna", "mlflow")),
        ("search_spaces", ("study", "ray", "mlflow")),
        ("study.engine", ("ray", "optuna", "mlflow", "study.orchestration", "study.records",
                          "study.compare", "study.report")),
        ("study.present", ("ray", "optuna", "mlflow", "study.records", "study.orchestration")),
        ("study.records", ("optuna", "study.orchestration", "study.compare",
                           "study.report")),
    ],
)  # fmt: skip
def test_a_layer_imports_nothing_above_it(layer, forbidden):
    bad = sorted(f"{a} imports {t}" for a, targets in reaching(EDGES, layer).items()
                 for t in targets for f in forbidden
                 if t == f or t.startswith(f + "."))  # fmt: skip
    assert bad == []


def test_only_the_records_room_calls_mlflow():
    callers = sorted(a for a, targets in EDGES.items() if "mlflow" in targets)
    assert callers and all(room(a) == "study.records" for a in callers), callers


def test_every_room_says_what_it_exports():
    for folder in sorted(p.parent for p in (ROOT / "study").glob("*/__init__.py")):
        if folder.name == "__pycache__":
            continue
        tree = ast.parse((folder / "__init__.py").read_text())
        targets = [t for n in tree.body if isinstance(n, ast.Assign) for t in n.targets]
        named = [e.id for t in targets for e in (t.elts if isinstance(t, ast.Tuple) else [t])
                 if isinstance(e, ast.Name)]  # fmt: skip
        assert "__all__" in named, f"study/{folder.name}/__init__.py has no __all__"


def test_no_module_passes_400_lines():
    sources = [p for package in PACKAGES for suffix in ("*.py", "*.cc", "*.h")
               for p in (ROOT / package).rglob(suffix)]  # fmt: skip
    long = sorted(f"{p.relative_to(ROOT)}: {n}" for p in sources
                  if (n := len(p.read_text().splitlines())) > MAX_LINES)  # fmt: skip
    assert long == []
