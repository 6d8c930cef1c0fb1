"""The package layout's rules (docs/architecture.md), read from the source with ``ast``, never by importing it.

``violations(src)`` walks every module under ``src/programs_bridge`` and lists each import that breaks a
rule, one line per break, naming the module, the line and the rule.  An empty list means the layout holds.
Every import counts, at the top of a module or inside a function, ``TYPE_CHECKING`` blocks included: a
function-level import is still an edge a newcomer must follow, and the lazy ones are exactly where cycles hid
(the demo and its command once imported each other).
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

ROOT_PACKAGE = "programs_bridge"

#: Packages from the top down.  A module may import its own package and any package on a lower floor; the
#: packages that share a floor (``ledger`` and ``delivery``) may not import each other.
FLOORS: tuple[frozenset[str], ...] = (
    frozenset({"cli"}),
    frozenset({"local"}),
    frozenset({"pipeline"}),
    frozenset({"report"}),
    frozenset({"ledger", "delivery"}),
    frozenset({"convert"}),
    frozenset({"programs_txt"}),
)
#: Top-level modules and the floor they stand on (``programs_bridge/__init__.py`` holds only the version and
#: may be imported by anyone).
TOP_LEVEL_FLOORS = {"__main__": "cli"}

#: Libraries that talk to the outside world.  The pure packages import none of them; in ``ledger`` only the
#: DynamoDB adapter (``ledger.store``) may.
IO_LIBRARIES = frozenset({"boto3", "botocore", "paramiko", "aws_lambda_powertools", "asyncssh", "moto"})
PURE_PACKAGES = frozenset({"programs_txt", "convert", "report"})
IO_ADAPTERS = frozenset({"programs_bridge.ledger.store"})

#: The module the Lambda runtime loads (template.yaml's Handler): nothing it reaches may be local or cli.
HANDLER = "programs_bridge.pipeline.handler"
NEVER_ON_HANDLER_PATH = frozenset({"local", "cli"})
LOCAL_ONLY_LIBRARIES = frozenset({"asyncssh", "moto"})
#: ``cli`` may import ``local`` only inside a function (the ``demo`` command's handler), so that no other
#: command pays for moto and asyncssh at start-up.
LAZY_ONLY = {("cli", "local")}


@dataclass(frozen=True)
class Edge:
    """One import: ``source`` imports ``target`` (a module of ours or a library's top-level name)."""

    source: str
    target: str
    line: int
    lazy: bool  # inside a function body


def modules(src: Path) -> dict[str, Path]:
    """Every module of the package under ``src``, by dotted name (a package by its ``__init__``)."""
    found = {}
    for path in sorted((src / ROOT_PACKAGE).rglob("*.py")):
        parts = path.relative_to(src).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        found[".".join(parts)] = path
    return found


def edges(src: Path) -> Iterator[Edge]:
    known = modules(src)
    for name, path in known.items():
        is_package = path.name == "__init__.py"
        yield from _edges_of(name, ast.parse(path.read_text(encoding="utf-8")), known, is_package=is_package)


def _edges_of(name: str, tree: ast.Module, known: dict[str, Path], *, is_package: bool) -> Iterator[Edge]:
    def visit(node: ast.AST, lazy: bool) -> Iterator[Edge]:
        for child in ast.iter_child_nodes(node):
            inner = lazy or isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda)
            if isinstance(child, ast.Import):
                for alias in child.names:
                    yield Edge(name, _ours_or_library(alias.name, known), child.lineno, lazy)
            elif isinstance(child, ast.ImportFrom):
                base = _absolute(name, child, is_package=is_package)
                for alias in child.names:
                    submodule = f"{base}.{alias.name}"
                    target = submodule if submodule in known else _ours_or_library(base, known)
                    yield Edge(name, target, child.lineno, lazy)
            yield from visit(child, inner)

    yield from visit(tree, False)


def _absolute(name: str, node: ast.ImportFrom, *, is_package: bool) -> str:
    if not node.level:
        return node.module or ""
    parts = name.split(".")
    base = parts if is_package else parts[:-1]
    base = base[: len(base) - node.level + 1]
    return ".".join([*base, *([node.module] if node.module else [])])


def _ours_or_library(dotted: str, known: dict[str, Path]) -> str:
    """Our module that ``import dotted`` runs last, or the library's top-level name."""
    if dotted.split(".")[0] != ROOT_PACKAGE:
        return dotted.split(".")[0]
    while dotted not in known and "." in dotted:
        dotted = dotted.rsplit(".", 1)[0]
    return dotted


def package_of(module: str) -> str | None:
    """``programs_bridge.convert.rows`` -> ``convert``; the root package itself -> None (anyone may import it)."""
    parts = module.split(".")
    if parts[0] != ROOT_PACKAGE or len(parts) == 1:
        return None
    return TOP_LEVEL_FLOORS.get(parts[1], parts[1])


def _floor(package: str) -> int:
    for number, floor in enumerate(FLOORS):
        if package in floor:
            return number
    raise KeyError(package)


def violations(src: Path) -> list[str]:
    """Every break of the layout's rules under ``src``, as lines a person can act on; empty when it holds."""
    found = [*_unplaced(src)]
    all_edges = list(edges(src))
    for edge in all_edges:
        found.extend(_direction(edge))
        found.extend(_purity(edge))
    found.extend(_cycles(all_edges))
    found.extend(_handler_path(all_edges))
    return found


def _unplaced(src: Path) -> Iterator[str]:
    for module in modules(src):
        package = package_of(module)
        if package is not None and not any(package in floor for floor in FLOORS):
            yield f"{module}: package {package!r} has no floor in the layout (add it to docs/architecture.md)"


def _direction(edge: Edge) -> Iterator[str]:
    source, target = package_of(edge.source), package_of(edge.target)
    if source is None or target is None or source == target or not edge.target.startswith(ROOT_PACKAGE):
        return
    if (source, target) in LAZY_ONLY:
        if not edge.lazy:
            yield (
                f"{edge.source}:{edge.line}: imports {edge.target} at module level; "
                f"{source} may import {target} only inside a function"
            )
        return
    if _floor(target) <= _floor(source):
        yield f"{edge.source}:{edge.line}: imports {edge.target}, but {source} stands below or beside {target}"


def _purity(edge: Edge) -> Iterator[str]:
    if edge.target not in IO_LIBRARIES or edge.source in IO_ADAPTERS:
        return
    package = package_of(edge.source)
    if package in PURE_PACKAGES:
        yield f"{edge.source}:{edge.line}: imports {edge.target}, but {package} is pure"
    elif package == "ledger":
        yield f"{edge.source}:{edge.line}: imports {edge.target}; in ledger only its store adapter may"


def _cycles(all_edges: list[Edge]) -> Iterator[str]:
    graph: dict[str, set[str]] = {}
    for edge in all_edges:
        if edge.target.startswith(ROOT_PACKAGE) and edge.target != edge.source:
            graph.setdefault(edge.source, set()).add(edge.target)
    for component in _strongly_connected(graph):
        if len(component) > 1:
            yield "import cycle: " + " <-> ".join(sorted(component))


def _strongly_connected(graph: dict[str, set[str]]) -> list[set[str]]:
    """Tarjan's algorithm, iterative (the graph is small, but recursion depth should not be the limit)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[set[str]] = []
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph.get(root, ()))))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is None:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    component = set()
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.add(member)
                        if member == node:
                            break
                    components.append(component)
            elif child not in index:
                index[child] = low[child] = len(index)
                stack.append(child)
                on_stack.add(child)
                work.append((child, iter(sorted(graph.get(child, ())))))
            elif child in on_stack:
                low[node] = min(low[node], index[child])
    return components


def _handler_path(all_edges: list[Edge]) -> Iterator[str]:
    graph: dict[str, list[Edge]] = {}
    for edge in all_edges:
        graph.setdefault(edge.source, []).append(edge)
    seen = {HANDLER}
    queue = [HANDLER]
    while queue:
        for edge in graph.get(queue.pop(), []):
            if package_of(edge.target) in NEVER_ON_HANDLER_PATH or edge.target in LOCAL_ONLY_LIBRARIES:
                yield f"{edge.source}:{edge.line}: imports {edge.target}, which the Lambda handler must never load"
            elif edge.target.startswith(ROOT_PACKAGE) and edge.target not in seen:
                seen.add(edge.target)
                queue.append(edge.target)
