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


def package_graph(graph):
    """The module graph collapsed to tfvrec's top-level packages and modules (tfvrec.models, tfvrec.training,
    tfvrec.config, ...): an edge a → b when any module of a imports one of b."""
    def top(module):
        return ".".join(module.split(".")[:2])
    out = {}
    for module, targets in graph.items():
        out.setdefault(top(module), set()).update(top(t) for t in targets if top(t) != top(module))
    for targets in list(out.values()):
        for t in targets:
            out.setdefault(t, set())
    return out


def test_no_cycle_between_packages():
    """tfvrec.models, tfvrec.training, tfvrec.inspect, tfvrec.runs, ...: the layers import downwards only,
    function-level imports included (`import_graph` counts them)."""
    packages = package_graph(import_graph(_modules()))
    assert {"tfvrec.models", "tfvrec.training", "tfvrec.runs", "tfvrec.inspect", "tfvrec.serving"} <= set(packages)
    assert cycles(packages) == []
    # The run layer is below the models and the trainer and imports neither.
    assert not {"tfvrec.models", "tfvrec.training"} & packages["tfvrec.runs"]
    assert "tfvrec.models" not in packages["tfvrec.training"]


def function_level_imports():
    """``path:line`` of every ``import tfvrec…`` / ``from tfvrec… import`` inside a function."""
    found = []
    for name, path in _modules().items():
        tree = ast.parse(open(path).read(), path)
        for function in [n for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))]:
            for node in ast.walk(function):
                names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                    [node.module or ""] if isinstance(node, ast.ImportFrom) and not node.level else []
                if any(n == "tfvrec" or n.startswith("tfvrec.") for n in names):
                    found.append(f"{os.path.relpath(path, REPO)}:{node.lineno}")
    return sorted(set(found))


def test_function_level_imports_are_few_and_say_why():
    """Imports hidden in functions hide the shape of the package: at most 15, each with a comment saying why."""
    found = function_level_imports()
    assert len(found) <= 15, found
    for place in found:
        path, line = place.rsplit(":", 1)
        text = open(os.path.join(REPO, path)).read().splitlines()[int(line) - 1]
        assert "#" in text, f"{place}: a function-level import needs a comment saying why: {text.strip()}"


def test_no_model_name_is_tested_for_outside_its_package():
    """Model-specific behaviour is the model package's (ModelSpec hooks), not a name test elsewhere."""
    names = "|".join(registry.load_models())
    # A model's (or a row's) name compared: `config.model.name == "hasc"`, `kind == "curatornet"`, ... (an option
    # value that happens to name a model, as HASC's `auxiliary_init: bpr`, is not a model's name).
    pattern = re.compile(r"""(name|kind|baseline)\w*\)?\s*(==|!=|in)\s*\(?["'](%s)["']|["'](%s)["']\s*(==|!=)\s*"""
                         r"""\w*(name|kind|baseline)""" % (names, names))
    offending = []
    for path in _text_files("tfvrec", "tools"):
        if not path.endswith(".py"):
            continue
        relative = os.path.relpath(path, REPO)
        own = relative.split(os.sep)[2] if relative.startswith(os.path.join("tfvrec", "models")) else None
        for number, line in enumerate(open(path, encoding="utf-8"), 1):
            found = pattern.search(line)
            if found and (found.group(3) or found.group(4)) != own:
                offending.append(f"{relative}:{number}: {line.strip()[:100]}")
    assert not offending, "\n".join(offending)


def test_tools_do_not_read_error_messages():
    """A tool that matches an error's text breaks when the message is reworded: typed errors instead."""
    offending = []
    for path in _text_files("tools"):
        for number, line in enumerate(open(path, encoding="utf-8"), 1):
            if re.search(r"""["'][^"']{6,}["']\s+(not\s+)?in\s+str\((e|error|exc|err)\)""", line):
                offending.append(f"{os.path.relpath(path, REPO)}:{number}: {line.strip()[:100]}")
    assert not offending, "\n".join(offending)
