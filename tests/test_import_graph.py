"""The import rules between the project's packages, read from the source with `ast`.

Every import counts: at module level, inside functions (the usual way round a cycle, which hides
it instead of removing it) and under `if TYPE_CHECKING:`. An import of a package is an import of
its `__init__`. Migrations are left out: they are generated and import only Django.
"""

from __future__ import annotations

import ast
from collections import deque
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("config", "annotation", "rewards")
# Frameworks that only make sense inside a Django process (or its Celery workers).
DJANGO_SIDE = ("django", "rest_framework", "drf_spectacular", "celery", "kombu")
# What rewards may use of annotation: its data, its write and read functions, the project admin it
# extends, the permission checks its API shares and the pure ranking math (consensus, pair
# expansion: one home for those rules). Not annotation's API internals or row helpers.
ANNOTATION_FOR_REWARDS = (
    "annotation.models",
    "annotation.ranking_math",
    "annotation.services",
    "annotation.selectors",
    "annotation.admin",
    "annotation.permissions",
)


@dataclass(frozen=True)
class Import:
    source: str  # the importing module
    target: str  # the module imported, absolute; `from a import b` gives a.b when that is a module
    path: str  # of the importing file, relative to the repository
    line: int

    def __str__(self) -> str:
        return f"{self.path}:{self.line} {self.source} imports {self.target}"


def within(name: str, *prefixes: str) -> bool:
    """Whether the dotted `name` is one of `prefixes` or inside one (a.b is within a, a.bc is not)."""
    return any(name == prefix or name.startswith(prefix + ".") for prefix in prefixes)


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports_of(
    *, source: str, module: str, is_package: bool, known: Iterable[str], path: str = "<string>"
) -> list[Import]:
    """Every import statement in `source`, wherever it sits, made absolute.

    `known` are the project's module names: `from a import b` names the module a.b when there is
    one, and the module a otherwise (b is then a name defined in a).
    """
    known = set(known)
    package = module if is_package else module.rpartition(".")[0]
    found: list[Import] = []
    for node in ast.walk(ast.parse(source, filename=path)):
        if isinstance(node, ast.Import):
            found += [Import(module, alias.name, path, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base_parts = package.split(".")
                base_parts = base_parts[: len(base_parts) - (node.level - 1)]
                base = ".".join([*base_parts, *([node.module] if node.module else [])])
            else:
                base = node.module or ""
            for alias in node.names:
                submodule = f"{base}.{alias.name}"
                found.append(Import(module, submodule if submodule in known else base, path, node.lineno))
    return list(dict.fromkeys(found))  # `from a import b, c` is one import of a, not two


@cache
def project_modules() -> dict[str, Path]:
    modules: dict[str, Path] = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            if "migrations" not in path.relative_to(ROOT).parts:
                modules[module_name(path)] = path
    return modules


@cache
def project_imports() -> tuple[Import, ...]:
    modules = project_modules()
    found: list[Import] = []
    for module, path in modules.items():
        found += imports_of(
            source=path.read_text(encoding="utf-8"),
            module=module,
            is_package=path.name == "__init__.py",
            known=modules,
            path=str(path.relative_to(ROOT)),
        )
    return tuple(found)


def resolve(target: str, modules: Collection[str]) -> str | None:
    """The project module an import loads: the target itself, or the nearest package holding it."""
    parts = target.split(".")
    while parts:
        candidate = ".".join(parts)
        if candidate in modules:
            return candidate
        parts.pop()
    return None


def import_graph() -> dict[str, set[str]]:
    modules = project_modules()
    graph: dict[str, set[str]] = {module: set() for module in modules}
    for item in project_imports():
        target = resolve(item.target, modules)
        if target is not None and target != item.source:
            graph[item.source].add(target)
    return graph


def strongly_connected_components(graph: Mapping[str, Iterable[str]]) -> list[list[str]]:
    """Tarjan's algorithm without recursion (an import chain can be deeper than Python's stack)."""
    successors = {node: sorted(set(targets)) for node, targets in graph.items()}
    for targets in list(successors.values()):
        for target in targets:
            successors.setdefault(target, [])
    index: dict[str, int] = {}
    lowlink: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = lowlink[node] = len(index)
        stack.append(node)
        on_stack.add(node)

    for root in sorted(successors):
        if root in index:
            continue
        visit(root)
        work = [(root, iter(successors[root]))]
        while work:
            node, children = work[-1]
            for child in children:
                if child not in index:
                    visit(child)
                    work.append((child, iter(successors[child])))
                    break
                if child in on_stack:
                    lowlink[node] = min(lowlink[node], index[child])
            else:  # every child done: close the node
                work.pop()
                if work:
                    parent = work[-1][0]
                    lowlink[parent] = min(lowlink[parent], lowlink[node])
                if lowlink[node] == index[node]:
                    component: list[str] = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.append(member)
                        if member == node:
                            break
                    components.append(sorted(component))
    return components


def import_cycles(graph: Mapping[str, Iterable[str]]) -> list[list[str]]:
    """The groups of modules that import each other round a cycle, each sorted, in sorted order."""
    return sorted(
        component
        for component in strongly_connected_components(graph)
        if len(component) > 1 or component[0] in set(graph.get(component[0], ()))
    )


def cycle_path(component: list[str], graph: Mapping[str, Iterable[str]]) -> list[str]:
    """One shortest way round the cycle from the component's first module back to it."""
    start, members = component[0], set(component)
    came_from: dict[str, str] = {}
    queue = deque([start])
    while queue:
        node = queue.popleft()
        for child in sorted(set(graph.get(node, ()))):
            if child == start:
                path = [node]
                while path[-1] != start:
                    path.append(came_from[path[-1]])
                return [*reversed(path), start]
            if child in members and child not in came_from:
                came_from[child] = node
                queue.append(child)
    return [start]


def _violations(found: Iterable[Import]) -> str:
    return "\n  ".join(str(item) for item in found)


# --- The cycle finder itself -------------------------------------------------------------------


def test_cycle_finder_finds_a_cycle_in_a_tiny_graph():
    graph = {
        "a": {"b"},
        "b": {"c"},
        "c": {"a", "d"},  # a -> b -> c -> a, with a tail to d
        "d": {"e"},
        "e": set(),
        "x": {"y"},
        "y": {"x"},  # a second, separate cycle
        "s": {"s"},  # a module that imports itself
    }
    assert import_cycles(graph) == [["a", "b", "c"], ["s"], ["x", "y"]]
    assert cycle_path(["a", "b", "c"], graph) == ["a", "b", "c", "a"]
    assert import_cycles({"a": {"b"}, "b": {"c"}, "c": set(), "d": {"a", "c"}}) == []


def test_cycle_finder_copes_with_a_chain_deeper_than_the_recursion_limit():
    chain = {f"m{i}": {f"m{i + 1}"} for i in range(5000)}
    assert import_cycles(chain) == []
    chain["m5000"] = {"m0"}
    [cycle] = import_cycles(chain)
    assert len(cycle) == 5001


def test_imports_inside_functions_and_type_checking_blocks_are_collected():
    source = """
from typing import TYPE_CHECKING
from . import sibling
from .sibling import name
from ..other import thing

if TYPE_CHECKING:
    from rewards.models import RewardModel

def later():
    import annotation.tasks
    from annotation.services import candidates
"""
    known = {"annotation.pkg", "annotation.pkg.sibling", "annotation.other", "annotation.services.candidates"}
    found = imports_of(source=source, module="annotation.pkg.mod", is_package=False, known=known)
    assert {item.target for item in found} == {
        "typing",
        "annotation.pkg.sibling",
        "annotation.other",
        "rewards.models",
        "annotation.tasks",
        "annotation.services.candidates",
    }


# --- The rules ---------------------------------------------------------------------------------


def test_every_project_import_names_a_module_that_exists():
    """A function-level import of a module that moved fails only when that code runs: catch it here."""
    modules = project_modules()
    missing = [
        item for item in project_imports() if within(item.target, *PACKAGES) and item.target not in modules
    ]
    assert not missing, f"imports of project modules that do not exist:\n  {_violations(missing)}"


def test_no_import_cycles_between_project_modules():
    graph = import_graph()
    cycles = import_cycles(graph)
    if not cycles:
        return
    by_edge: dict[tuple[str, str], list[Import]] = {}
    for item in project_imports():
        target = resolve(item.target, graph)
        if target is not None:
            by_edge.setdefault((item.source, target), []).append(item)
    report = []
    for component in cycles:
        path = cycle_path(component, graph)
        edges = [by_edge[(a, b)][0] for a, b in zip(path, path[1:], strict=False)]
        report.append(
            f"{len(component)} modules import each other: {', '.join(component)}\n"
            f"    for example {' -> '.join(path)}:\n      " + "\n      ".join(str(edge) for edge in edges)
        )
    raise AssertionError("import cycles between project modules:\n  " + "\n  ".join(report))


def test_selectors_do_not_import_services():
    """Reads never depend on writes; shared pure logic belongs in a module both can import."""
    found = [
        item
        for item in project_imports()
        if "selectors" in item.source.split(".")
        and within(item.target, *PACKAGES)
        and "services" in item.target.split(".")
    ]
    assert not found, f"selectors that import services:\n  {_violations(found)}"


def test_annotation_does_not_import_rewards():
    """rewards builds on annotation; annotation works without it (it routes to it by URL name)."""
    found = [
        item
        for item in project_imports()
        if within(item.source, "annotation") and within(item.target, "rewards")
    ]
    assert not found, f"annotation modules that import rewards:\n  {_violations(found)}"


def test_rewards_ml_is_plain_pytorch():
    """rewards.ml trains and scores without Django: nothing from Django, annotation, config or the
    rest of rewards, so it runs in a notebook or a bare GPU job."""
    found = [
        item
        for item in project_imports()
        if within(item.source, "rewards.ml")
        and (
            within(item.target, *DJANGO_SIDE, "annotation", "config")
            or (within(item.target, "rewards") and not within(item.target, "rewards.ml"))
        )
    ]
    assert not found, f"rewards.ml imports outside plain PyTorch:\n  {_violations(found)}"


def test_generation_backends_know_nothing_of_django():
    """annotation.generation holds backends that are handed their settings; the services read the
    project and Django settings. Only the shared error family (config.errors) is allowed in."""
    found = [
        item
        for item in project_imports()
        if within(item.source, "annotation.generation")
        and (
            within(item.target, *DJANGO_SIDE)
            or (
                within(item.target, *PACKAGES)
                and not within(item.target, "annotation.generation", "config.errors")
            )
        )
    ]
    assert not found, (
        f"annotation.generation imports Django or the rest of the project:\n  {_violations(found)}"
    )


def test_rewards_uses_annotation_only_through_its_public_layers():
    allowed = ", ".join(ANNOTATION_FOR_REWARDS)
    found = [
        item
        for item in project_imports()
        if within(item.source, "rewards")
        and within(item.target, "annotation")
        and not within(item.target, *ANNOTATION_FOR_REWARDS)
    ]
    assert not found, f"rewards may import annotation only through {allowed}:\n  {_violations(found)}"
