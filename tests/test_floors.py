"""The floors of the house (STYLE.md, README module map): a module imports only
from its own floor or below, the package root (the public API) is imported only
from the top floor, and the import graph of ``reffeat/`` has no circle.

Read from the source with ``ast`` (every import, also those inside functions),
so a lazy import up a floor counts as much as one at the top of a file."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent / "reffeat"

#: from the ground up; a module's floor is that of its first name below reffeat.
#: Entry points (``__main__``, the ``python -m reffeat.X`` shims) stand on the top floor.
FLOORS = (
    ("ground", {"_version", "constraints", "seeding", "output", "provenance", "stopping"}),
    ("maths core", {"config", "activation", "features", "distribution", "model", "backend", "_kcache",
                    "_threads", "kernels", "attacks", "apgd", "loop", "train", "metrics", "trace",
                    "claims", "regime", "certify", "directions", "presets", "plots", "report"}),
    ("real", {"real"}),
    ("experiments", {"experiments"}),
    ("jobs", {"jobs"}),
    ("sweep table", {"sweep"}),
    ("top", {"cli", "verify", "run", "bench", "data"}),
)
TOP = len(FLOORS) - 1


def _name(path: Path) -> str:
    parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _graph() -> dict[str, set[str]]:
    files = {_name(p): p for p in ROOT.rglob("*.py")}
    edges: dict[str, set[str]] = {m: set() for m in files}
    for mod, path in files.items():
        package = mod if path.name == "__init__.py" else mod.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            targets = []
            if isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package.split(".")[:len(package.split(".")) - node.level + 1]
                    target = ".".join(base + ([node.module] if node.module else []))
                else:
                    target = node.module or ""
                targets = [f"{target}.{a.name}" if f"{target}.{a.name}" in files else target
                           for a in node.names]
            elif isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            for t in targets:
                while t and t not in files:
                    t = t.rpartition(".")[0]
                if t and t != mod:
                    edges[mod].add(t)
    return edges


def _floor(mod: str) -> int | None:
    parts = mod.split(".")
    if len(parts) == 1 or parts[-1] == "__main__":
        return TOP
    for i, (_, names) in enumerate(FLOORS):
        if parts[1] in names:
            return i
    return None


def test_every_module_has_a_floor():
    unknown = sorted(m for m in _graph() if _floor(m) is None)
    assert not unknown, f"modules on no floor (add them to FLOORS and the README's module map): {unknown}"


def test_no_import_goes_up_a_floor():
    bad = []
    for mod, targets in sorted(_graph().items()):
        fm = _floor(mod)
        for t in sorted(targets):
            ft = _floor(t)
            if fm is None or ft is None:
                continue
            if t == "reffeat" and fm != TOP:
                bad.append(f"{mod} ({FLOORS[fm][0]}) imports the package root")
            elif ft > fm:
                bad.append(f"{mod} ({FLOORS[fm][0]}) imports {t} ({FLOORS[ft][0]})")
    assert not bad, "imports up a floor:\n" + "\n".join(bad)


def test_no_import_circle():
    graph = _graph()
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    circles = []

    def visit(v: str) -> None:                      # Tarjan's strongly connected components
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                circles.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    assert not circles, f"import circles: {circles}"
