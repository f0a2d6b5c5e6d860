"""The package's layering, read from the source: nothing below the command line imports it, no
two parts of keras_mt3 import each other (directly or around a loop), and the examples and
benchmarks use only the public library.

Every import counts, at module level or inside a function, and so do the lazy names of the
`_LAZY` tables (`lazy_module_getattr`), which import their modules on first use."""

import ast
import json
import pathlib

import pytest

pytestmark = pytest.mark.backend_independent

REPO = pathlib.Path(__file__).resolve().parents[1]
PACKAGE = REPO / "keras_mt3"

# Edges of a cycle that is known and being removed: (importer, imported). Delete an entry as
# soon as its cycle is gone; the test fails while a listed edge closes no cycle any more.
KNOWN_CYCLE_EDGES = set()


def module_name(path):
    relative = path.relative_to(REPO).with_suffix("")
    parts = list(relative.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def is_module(name):
    relative = pathlib.Path(*name.split("."))
    return (REPO / relative).is_dir() or (REPO / relative).with_suffix(".py").is_file()


def imported_modules(path):
    """Absolute names of the modules `path` imports: `from a import b` names `a.b` where that
    is a module, else `a` (b is defined in a)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    package = module_name(path)
    if path.name != "__init__.py":
        package = package.rpartition(".")[0]
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, *([base] if base else [])])
            for alias in node.names:
                name = f"{base}.{alias.name}"
                names.add(name if is_module(name) else base)
        elif isinstance(node, ast.Assign) and any(
            isinstance(target, ast.Name) and target.id == "_LAZY" for target in node.targets
        ):
            names.update(ast.literal_eval(node.value).values())
    return names


def part_of(name):
    """The node a keras_mt3 module belongs to: its subpackage, or the top-level module itself
    (`keras_mt3` alone is the package's own `__init__`). None outside keras_mt3."""
    parts = name.split(".")
    if parts[0] != "keras_mt3":
        return None
    if len(parts) == 1:
        return "keras_mt3"
    top = PACKAGE / parts[1]
    if top.is_dir() or top.with_suffix(".py").is_file():
        return parts[1]
    return "keras_mt3"  # a name defined in keras_mt3/__init__.py


def package_graph():
    """`{part: {parts it imports}}` over every module of keras_mt3."""
    graph = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        importer = part_of(module_name(path))
        targets = {part_of(name) for name in imported_modules(path)} - {None, importer}
        graph.setdefault(importer, set()).update(targets)
    return graph


def cycles(graph):
    """The strongly connected groups of more than one part (Tarjan's algorithm)."""
    index, low, stack, on_stack, groups = {}, {}, [], set(), []

    def visit(node):
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(graph.get(node, ())):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            group = set()
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.add(member)
                if member == node:
                    break
            if len(group) > 1:
                groups.append(sorted(group))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return groups


def test_the_graph_sees_module_and_function_level_imports():
    graph = package_graph()
    assert {"codec", "preprocessing", "layers", "models", "data", "metrics", "cli"} <= set(graph)
    assert "errors" in graph["codec"]  # a module-level import
    assert "training" in graph["cli"]  # train_command imports the library inside run()
    assert "models" in graph["keras_mt3"]  # a lazy name of keras_mt3/__init__.py
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_nothing_below_the_command_line_imports_it():
    importers = sorted(part for part, targets in package_graph().items() if "cli" in targets)
    assert importers == []


def test_no_import_cycle_between_parts_of_the_package():
    graph = package_graph()
    for importer, imported in KNOWN_CYCLE_EDGES:
        assert any({importer, imported} <= set(group) for group in cycles(graph)), (
            f"{importer} -> {imported} closes no cycle now: delete it from KNOWN_CYCLE_EDGES"
        )
        graph[importer] = graph[importer] - {imported}
    assert cycles(graph) == []


def example_sources():
    """`(file, source)` of every example and benchmark, notebooks' code cells included."""
    for path in sorted([*REPO.glob("examples/*.py"), *REPO.glob("benchmarks/*.py")]):
        yield path, path.read_text()
    for path in sorted(REPO.glob("examples/*.ipynb")):
        cells = json.loads(path.read_text())["cells"]
        code = [cell for cell in cells if cell["cell_type"] == "code"]
        source = "\n".join("".join(cell["source"]) for cell in code)
        # IPython's `!command` and `%magic` lines are not Python.
        yield path, "\n".join(line for line in source.splitlines() if line[:1] not in "!%")


def test_examples_and_benchmarks_use_only_the_public_library():
    offences = []
    for path, source in example_sources():
        if "keras_mt3.cli" in source:  # imported, or run as `python -m keras_mt3.cli...`
            offences.append(f"{path.name}: uses keras_mt3.cli")
        for node in ast.walk(ast.parse(source)):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("keras_mt3"):
                names = [*node.module.split("."), *(alias.name for alias in node.names)]
            elif isinstance(node, ast.Import):
                names = [part for alias in node.names if alias.name.startswith("keras_mt3")
                         for part in alias.name.split(".")]
            else:
                continue
            private = [name for name in names if name.startswith("_")]
            if private:
                offences.append(f"{path.name}:{node.lineno}: imports private {', '.join(private)}")
    assert offences == []
