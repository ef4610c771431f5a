"""The package's shape: no import cycle, no reference outside the repository, models found by the registry."""
import ast
import os
import re

import pytest

from tfvrec import registry

from conftest import REPO

PACKAGE = os.path.join(REPO, "tfvrec")


def _modules():
    """``{module name: path}`` of every module under tfvrec/."""
    found = {}
    for directory, _, files in os.walk(PACKAGE):
        for name in files:
            if name.endswith(".py"):
                path = os.path.join(directory, name)
                parts = os.path.relpath(path, REPO)[:-3].split(os.sep)
                if parts[-1] == "__init__":
                    parts = parts[:-1]
                found[".".join(parts)] = path
    return found


def import_graph(modules):
    """Edges module → tfvrec module for every ``import`` statement, at any depth (lazy imports
    inside functions count: hiding a cycle in a function does not remove it)."""
    graph = {}
    for name, path in modules.items():
        package = name if path.endswith("__init__.py") else name.rsplit(".", 1)[0]
        targets = set()
        for node in ast.walk(ast.parse(open(path).read(), path)):
            if isinstance(node, ast.Import):
                targets.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    base = ".".join(package.split(".")[:len(package.split(".")) - node.level + 1] + ([base] if base
                                                                                                     else []))
                for alias in node.names:  # `from a.b import c` imports module a.b.c when there is one
                    targets.add(f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base)
        graph[name] = {t for t in targets if t in modules and t != name}
    return graph


def cycles(graph):
    """Strongly connected components with more than one module (Tarjan)."""
    index, low, stack, on_stack, found, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
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
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_cycle_detection_finds_a_planted_cycle():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert cycles(graph) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_cycle_in_the_package():
    graph = import_graph(_modules())
    assert len(graph) > 40  # the walk saw the package
    # A package's __init__ importing its own config module is not a cycle unless the module imports it back.
    assert cycles(graph) == []


def _text_files(*roots):
    for root in roots:
        path = os.path.join(REPO, root)
        if os.path.isfile(path):
            yield path
            continue
        for directory, _, files in os.walk(path):
            for name in files:
                if name.endswith((".py", ".md", ".yaml", ".yml", ".txt")):
                    yield os.path.join(directory, name)


@pytest.mark.parametrize("pattern, what", [
    (r"SPEC\s*(§|\.md)", "a reference to an external specification"),
    (r"shared/papers|/work/|/home/|/Users/", "a path of a development machine"),
    (r"/tmp/|gettempdir\(\)|mkdtemp\(prefix=\"(?!\.)", "a system temp directory default"),
])
def test_the_project_stands_alone(pattern, what):
    offending = []
    for path in _text_files("tfvrec", "configs", "docs", "README.md", "export/README.md"):
        for number, line in enumerate(open(path, encoding="utf-8"), 1):
            if re.search(pattern, line):
                offending.append(f"{os.path.relpath(path, REPO)}:{number}: {line.strip()[:100]}")
    assert not offending, f"{what}:\n" + "\n".join(offending)


def test_every_model_package_registers_itself_and_is_documented():
    names = registry.load_models()
    packages = sorted(d for d in os.listdir(os.path.join(PACKAGE, "models"))
                      if os.path.isfile(os.path.join(PACKAGE, "models", d, "__init__.py")))
    assert names == packages
    guide = open(os.path.join(REPO, "docs", "adding_a_model.md")).read()
    for name in names:
        spec = registry.models.get(name)
        assert registry.resolve(spec.create), name
        assert os.path.exists(os.path.join(REPO, "docs", "models", f"{name}.md")), name
        assert os.path.exists(os.path.join(REPO, "configs", f"{name}_synthetic.yaml")), name
    assert "tfvrec/models/<name>/" in guide
