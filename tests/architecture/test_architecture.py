"""The shape of psp_assets, checked from its source: layers without cycles, a core without Dagster, packages
whose names say what they hold, no private names borrowed across modules, and a README layout that matches
the tree. A newcomer can trust docs/architecture.md because these tests keep the code to it."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from tests.architecture.imports import PACKAGE, cycles, graph, imports, modules
from tests.architecture.layout import README, readme_block, render_layout

ROOT = Path(__file__).resolve().parents[2]
CORE = f"{PACKAGE}.core"


def _core_package_edges() -> dict[str, set[str]]:
    """Core package (or top-level module) -> the other ones it imports, by their name under core/."""
    edges: dict[str, set[str]] = {}
    for source, targets in graph(ROOT).items():
        if source.startswith(CORE + "."):
            own = source.split(".")[2]
            edges.setdefault(own, set()).update(
                t.split(".")[2] for t in targets if t.startswith(CORE + ".") and t.split(".")[2] != own
            )
    return edges


def test_no_module_of_psp_assets_imports_itself_back_through_others():
    found = cycles(graph(ROOT))
    assert not found, "import cycles (lazy and TYPE_CHECKING imports count): " + "; ".join(
        " <-> ".join(c) for c in found
    )


def test_the_core_packages_form_layers_without_a_cycle():
    found = cycles(_core_package_edges())
    assert not found, "core packages that depend on each other: " + "; ".join(" <-> ".join(c) for c in found)


def test_the_core_never_imports_dagster():
    offenders = []
    for name, path in modules(ROOT).items():
        if not name.startswith(CORE):
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            targets = (
                [a.name for a in node.names]
                if isinstance(node, ast.Import)
                else [node.module or ""]
                if isinstance(node, ast.ImportFrom)
                else []
            )
            offenders += [f"{path.relative_to(ROOT)}:{node.lineno}" for t in targets if t.split(".")[0] == "dagster"]
    assert not offenders


def test_the_core_keeps_at_most_a_dozen_top_level_modules_and_the_rest_in_packages():
    top = sorted(p.name for p in (ROOT / PACKAGE / "core").glob("*.py") if p.name != "__init__.py")
    assert len(top) <= 12, top


def _python_files() -> list[Path]:
    found: list[Path] = []
    for folder in (PACKAGE, "tests", "bench", "scripts", "deploy"):
        found += [p for p in (ROOT / folder).rglob("*.py") if "__pycache__" not in p.parts]
    return sorted(found)


def test_no_name_with_a_leading_underscore_is_imported_from_another_module():
    offenders = []
    for path in _python_files():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                private = [a.name for a in node.names if a.name.startswith("_") and not a.name.startswith("__")]
                last = (node.module or "").split(".")[-1]
                module_private = last.startswith("_") and not last.startswith("__")
                if private or module_private:
                    offenders.append(f"{path.relative_to(ROOT)}:{node.lineno}: from {node.module} import {private}")
    assert not offenders, "\n".join(offenders)


# Dagster internals the range runs cannot avoid in 1.13: in one module, each with a canary test that fails
# on the Dagster upgrade that changes it (docs/operations.md, Fleet-scale runs).
INTERNALS_ALLOWED_IN = ("ranges.py", "test_ranges_canaries.py")


def test_private_dagster_modules_are_imported_only_by_the_one_module_that_isolates_them():
    offenders = [
        imp for path in _python_files() if path.name not in INTERNALS_ALLOWED_IN for imp in _dagster_private(path)
    ]
    assert not offenders, offenders


def _dagster_private(path: Path) -> list[str]:
    out = []
    for node in ast.walk(ast.parse(path.read_text())):
        names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
        if isinstance(node, ast.ImportFrom):
            names = [node.module or ""]
        for name in names:
            head, *rest = name.split(".")
            if head.startswith("dagster") and any(part.startswith("_") for part in rest):
                out.append(f"{path.relative_to(ROOT)}:{node.lineno}: {name}")
    return out


@pytest.mark.parametrize(
    "package",
    sorted(n for n, p in modules(ROOT).items() if p.name == "__init__.py" and n.startswith(CORE + ".")),
)
def test_every_core_package_says_what_it_holds_and_holds_nothing_else(package):
    path = modules(ROOT)[package]
    tree = ast.parse(path.read_text())
    doc = ast.get_docstring(tree)
    assert doc and len(doc) > 20, f"{path.relative_to(ROOT)}: say what the package holds in its docstring"
    code = [n for n in tree.body if not (isinstance(n, ast.Expr) and isinstance(n.value, ast.Constant))]
    assert not code, f"{path.relative_to(ROOT)}: an __init__ holds only its docstring (import from the modules)"
    inside = sorted(
        {
            m.split(".")[-1]
            for m in modules(ROOT)
            if m.startswith(package + ".") and m.count(".") == package.count(".") + 1
        }
    )
    missing = [m for m in inside if m not in doc]
    assert not missing, f"{path.relative_to(ROOT)}: the docstring does not mention {missing}"


def test_imports_resolve_to_modules_that_exist():
    known = modules(ROOT)
    dangling = [f"{i.path.relative_to(ROOT)}:{i.line}: {i.target}" for i in imports(ROOT) if i.target not in known]
    assert not dangling, dangling


def test_the_readme_layout_is_the_one_generated_from_the_tree():
    assert readme_block(README.read_text()) == render_layout(ROOT), (
        "README.md's layout is stale: run `make layout` (python -m tests.architecture.layout --write)"
    )


def _core_layers() -> dict[str, int]:
    edges = _core_package_edges()
    layers: dict[str, int] = {}

    def layer(name: str) -> int:
        if name not in layers:
            layers[name] = 1 + max((layer(t) for t in edges.get(name, ())), default=-1)
        return layers[name]

    for name in edges:
        layer(name)
    return layers


def test_the_layer_table_of_docs_architecture_is_the_one_the_imports_make():
    documented: dict[str, int] = {}
    for row in (ROOT / "docs" / "architecture.md").read_text().splitlines():
        cells = [c.strip() for c in row.strip("|").split("|")]
        if len(cells) == 3 and cells[0].isdigit():
            for name in cells[1].split(","):
                documented[name.strip().strip("`").removesuffix(".py").removesuffix("/")] = int(cells[0])
    assert documented == _core_layers(), "update the layer table in docs/architecture.md to what the imports say"


def test_the_core_imports_its_own_modules_at_the_top_never_inside_a_function():
    """A lazy import hides a layer; only the entry points (cli.py, fleet.py) import inside a command, so
    that `psp validate` starts without loading Dagster."""
    lazy = []
    for name, path in modules(ROOT).items():
        if not name.startswith(CORE):
            continue
        tree = ast.parse(path.read_text())
        top = {id(node) for node in tree.body}
        for node in ast.walk(tree):
            own = isinstance(node, ast.ImportFrom) and (node.level or (node.module or "").split(".")[0] == PACKAGE)
            if own and id(node) not in top:
                lazy.append(f"{path.relative_to(ROOT)}:{node.lineno}: {ast.unparse(node)}")
    assert not lazy, lazy
