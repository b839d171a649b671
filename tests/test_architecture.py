"""The dependency direction, enforced: imports flow down the layers and never in a circle.

    okdbench (CLI, pytest plugin, nightly, demo)      top: may import everything
    suites      -> provision, results, plumbing        (okdbench.plugin only: the pytest entry point)
    reports     -> results, plumbing
    provision   -> results (the data contract), plumbing;  kvm/ vsphere/ okd/ never import each other
    results     -> plumbing
    plumbing    -> nothing of ours                     errors, redaction, bounded reading

Every import counts, including the ones inside functions (a lazy import is still an arrow).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("okdbench", "suites", "reports", "provision", "results", "plumbing")

# What each package may import besides itself (by top-level package, or an exact module).
ALLOWED = {
    "plumbing": set(),
    "results": {"plumbing"},
    "reports": {"results", "plumbing"},
    "provision": {"results", "plumbing"},
    "suites": {"provision", "results", "plumbing", "okdbench.plugin"},
    "okdbench": set(PACKAGES),
}
# Sibling platforms stay apart: adding an operation to one never touches the other.
APART = [("provision.kvm", "provision.vsphere"), ("provision.vsphere", "provision.kvm"),
         ("provision.okd", "provision.kvm"), ("provision.okd", "provision.vsphere")]


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _imports(path: Path, module: str) -> set[str]:
    tree = ast.parse(path.read_text(), str(path))
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            found.add(base)
            # `from provision.kvm import render` imports the module provision.kvm.render
            found.update(f"{base}.{a.name}" for a in node.names)
    return {m for m in found if m.split(".")[0] in PACKAGES}


def _graph() -> dict[str, set[str]]:
    files = {_module_name(p): p for pkg in PACKAGES for p in (ROOT / pkg).rglob("*.py")}
    graph = {}
    for mod, path in files.items():
        # keep only names that are modules of ours (drop `from x import some_function`)
        graph[mod] = {m for m in _imports(path, mod) if m in files and m != mod}
    return graph


GRAPH = _graph()


def test_the_graph_is_not_empty():
    assert len(GRAPH) > 80 and sum(map(len, GRAPH.values())) > 150


@pytest.mark.parametrize("package", sorted(ALLOWED))
def test_imports_flow_down(package):
    allowed = ALLOWED[package]
    bad = []
    for mod, deps in GRAPH.items():
        if mod.split(".")[0] != package:
            continue
        for dep in deps:
            top = dep.split(".")[0]
            if top == package or top in allowed or dep in allowed:
                continue
            bad.append(f"{mod} imports {dep}")
    assert not bad, "arrows pointing up:\n" + "\n".join(sorted(bad))


@pytest.mark.parametrize("src,dst", APART)
def test_platforms_stay_apart(src, dst):
    bad = [f"{m} imports {d}" for m, deps in GRAPH.items() if m.startswith(src + ".") or m == src
           for d in deps if d == dst or d.startswith(dst + ".")]
    assert not bad, "\n".join(bad)


def test_no_import_cycles():
    # Tarjan's strongly connected components; any component of size > 1 is a cycle.
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    cycles: list[list[str]] = []
    counter = [0]

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in GRAPH[v]:
            if w not in GRAPH:
                continue
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
            # a package importing its own submodule from __init__ is not a cycle of modules
            if len(comp) > 1:
                cycles.append(sorted(comp))

    for v in sorted(GRAPH):
        if v not in index:
            visit(v)
    assert not cycles, "import cycles: " + "; ".join(" <-> ".join(c) for c in cycles)


def test_the_checker_sees_upward_arrows(tmp_path):
    # The checker itself can fail: absolute, lazy and relative imports are all seen.
    f = tmp_path / "schema.py"
    f.write_text("import json\nfrom reports.model import Options\n"
                 "def later():\n    from ..okdbench import cli\n    import provision.spec\n")
    found = _imports(f, "results.schema")
    assert {"reports.model", "reports.model.Options", "okdbench", "okdbench.cli", "provision.spec"} <= found
    assert "json" not in found
