"""The import graph of psp_assets, read from the source with `ast` (nothing is imported or executed).

Every `import` counts wherever it stands: at module level, inside a function (a lazy import hides a layer,
it does not remove it), or under `if TYPE_CHECKING:` (a type is a dependency too).
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

PACKAGE = "psp_assets"


@dataclass(frozen=True)
class Import:
    source: str  # the importing module, dotted
    target: str  # the imported module, dotted
    names: tuple[str, ...]  # the names taken from it (empty for `import x` and for submodules)
    path: Path
    line: int


def module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def modules(root: Path, package: str = PACKAGE) -> dict[str, Path]:
    """Every module of the package by dotted name (packages by their __init__)."""
    return {module_name(p, root): p for p in sorted((root / package).rglob("*.py"))}


def _absolute(node: ast.ImportFrom, source: str, is_package: bool) -> str:
    if not node.level:
        return node.module or ""
    base = source.split(".") if is_package else source.split(".")[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join([*base, *([node.module] if node.module else [])])


def imports(root: Path, package: str = PACKAGE) -> Iterator[Import]:
    """Every import of a module of the package by another, resolved to the module it loads: `from a.b import
    c` is an import of `a.b.c` when `c` is a submodule, of `a.b` (taking name `c`) otherwise."""
    known = modules(root, package)
    for source, path in known.items():
        tree = ast.parse(path.read_text(), filename=str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.name.split(".")[0] == package:
                        yield Import(source, alias.name, (), path, node.lineno)
            elif isinstance(node, ast.ImportFrom):
                target = _absolute(node, source, path.name == "__init__.py")
                if target.split(".")[0] != package:
                    continue
                taken = []
                for alias in node.names:
                    if f"{target}.{alias.name}" in known:
                        yield Import(source, f"{target}.{alias.name}", (), path, node.lineno)
                    else:
                        taken.append(alias.name)
                if taken:
                    yield Import(source, target, tuple(taken), path, node.lineno)


def graph(root: Path, package: str = PACKAGE) -> dict[str, set[str]]:
    """Module -> the modules it imports. Importing `a.b.c` also runs `a/__init__` and `a/b/__init__`, but
    those only hold docstrings here (a test says so), so they are not edges."""
    edges: dict[str, set[str]] = {m: set() for m in modules(root, package)}
    for imp in imports(root, package):
        if imp.target in edges and imp.target != imp.source:
            edges[imp.source].add(imp.target)
    return edges


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = 0

    def visit(node: str) -> None:
        nonlocal counter
        index[node] = low[node] = counter
        counter += 1
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
