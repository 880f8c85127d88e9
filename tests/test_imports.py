"""The import graph of mrcnn_tf, read from its source files with ``ast`` (nothing is imported): no circles, and
imports run one way (STYLE.md: ops <- layers <- model <- training / evaluation / export <- entry points).

Every ``import`` and ``from ... import`` of a ``mrcnn_tf`` module counts, at module level and inside functions (a
deferred import still ties the two modules together). ``from mrcnn_tf.x import y`` is an edge to ``mrcnn_tf.x.y``
when ``y`` is a module, else to ``mrcnn_tf.x``.
"""
import ast
import os

import pytest

import mrcnn_tf

PACKAGE = "mrcnn_tf"
ROOT = os.path.dirname(os.path.abspath(mrcnn_tf.__file__))


def module_files(root=ROOT, package=PACKAGE):
    """``{module name: source path}`` of every ``.py`` file under ``root`` (``__init__.py`` is its package)."""
    files = {}
    for folder, _, names in os.walk(root):
        for name in names:
            if name.endswith(".py"):
                parts = os.path.relpath(os.path.join(folder, name), root)[: -len(".py")].split(os.sep)
                if parts[-1] == "__init__":
                    parts = parts[:-1]
                files[".".join([package] + parts)] = os.path.join(folder, name)
    return files


def imported_modules(source, module, modules, is_package=False):
    """The modules of ``modules`` (a set of names) that the source text of ``module`` imports, anywhere in it."""
    found = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: from the module's package, one level up per extra dot
                package = module if is_package else module.rpartition(".")[0]
                for _ in range(node.level - 1):
                    package = package.rpartition(".")[0]
                base = f"{package}.{base}" if base else package
            names = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base for alias in node.names]
        else:
            continue
        found.update(name for name in names if name in modules)
    return found - {module}


def import_graph():
    """``{module: set of the package's modules it imports}`` for the installed package."""
    files = module_files()
    graph = {}
    for module, path in files.items():
        with open(path) as f:
            graph[module] = imported_modules(f.read(), module, set(files), path.endswith("__init__.py"))
    return graph


def find_cycle(graph):
    """One circle of ``graph`` as a path ``[a, b, ..., a]``, or None (depth-first search, in sorted order)."""
    state = {}  # module -> "open" while on the search path, "done" once all it reaches is searched

    def visit(module, path):
        state[module] = "open"
        for target in sorted(graph.get(module, ())):
            if state.get(target) == "open":
                return path[path.index(target):] + [target]
            if target not in state:
                cycle = visit(target, path + [target])
                if cycle:
                    return cycle
        state[module] = "done"
        return None

    for module in sorted(graph):
        if module not in state:
            cycle = visit(module, [module])
            if cycle:
                return cycle
    return None


def within(module, *parts):
    """Whether ``module`` is one of ``mrcnn_tf.<part>`` or inside it, for any of ``parts``."""
    return any(module == f"{PACKAGE}.{part}" or module.startswith(f"{PACKAGE}.{part}.") for part in parts)


GRAPH = import_graph()


def violations(importers, allowed=None, forbidden=None):
    """``importer -> imported`` edges from the modules ``importers`` selects to a module outside ``allowed`` (both
    predicates on a module name) or inside ``forbidden``."""
    return sorted(f"{source} -> {target}" for source, targets in GRAPH.items() if importers(source)
                  for target in targets
                  if (allowed is not None and not allowed(target)) or (forbidden is not None and forbidden(target)))


# --- the reading of the sources ---------------------------------------------------------------------------------


def test_the_graph_covers_the_package():
    assert {"mrcnn_tf", "mrcnn_tf.config", "mrcnn_tf.ops.boxes", "mrcnn_tf.layers.factory", "mrcnn_tf.runs",
            "mrcnn_tf.cli", "mrcnn_tf.cli.train", "mrcnn_tf.data.images", "mrcnn_tf.evaluation.runner"} <= set(GRAPH)
    assert "mrcnn_tf.config" in GRAPH["mrcnn_tf"]
    assert "mrcnn_tf.model" in GRAPH["mrcnn_tf.runs"]
    # Deferred imports count: cli.train imports training only inside main().
    assert {"mrcnn_tf.training", "mrcnn_tf.budget", "mrcnn_tf.config"} <= GRAPH["mrcnn_tf.cli.train"]


def test_imports_are_resolved_to_modules():
    modules = {"mrcnn_tf", "mrcnn_tf.a", "mrcnn_tf.b", "mrcnn_tf.sub", "mrcnn_tf.sub.c", "mrcnn_tf.sub.d"}
    source = """
import os
import mrcnn_tf.a
from mrcnn_tf import b, Config
from mrcnn_tf.sub.c import helper
from . import d
def later():
    from mrcnn_tf.sub import c as c_module
    import numpy
"""
    assert imported_modules(source, "mrcnn_tf.sub.e", modules) == {
        "mrcnn_tf.a", "mrcnn_tf.b", "mrcnn_tf", "mrcnn_tf.sub.c", "mrcnn_tf.sub.d"}
    assert imported_modules("from .. import a", "mrcnn_tf.sub", modules, is_package=True) == {"mrcnn_tf.a"}


def test_find_cycle_reports_the_circle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b", "c"}, "b": {"c"}, "c": set()}) is None
    assert find_cycle({"a": {"a"}}) == ["a", "a"]


# --- the package -------------------------------------------------------------------------------------------------


def test_no_import_circles():
    cycle = find_cycle(GRAPH)
    assert cycle is None, "import circle: " + " -> ".join(cycle)


LAYERS = [
    # (what, importers, allowed, forbidden)
    ("ops import only ops and errors", lambda m: within(m, "ops"), lambda m: within(m, "ops", "errors"), None),
    ("layers import only ops, layers and errors", lambda m: within(m, "layers"),
     lambda m: within(m, "ops", "layers", "errors"), None),
    ("config imports only errors", lambda m: within(m, "config"), lambda m: within(m, "errors"), None),
    ("data imports only data, errors and ops", lambda m: within(m, "data"),
     lambda m: within(m, "data", "errors", "ops"), None),
    ("the model imports only the model, layers, ops and errors",
     lambda m: within(m, "model", "backbone", "losses", "targets"),
     lambda m: within(m, "model", "backbone", "losses", "targets", "layers", "ops", "errors"), None),
    ("evaluation never imports training, callbacks, budget, export, predict or the CLI",
     lambda m: within(m, "evaluation"), None,
     lambda m: within(m, "training", "callbacks", "budget", "export", "predict", "cli")),
    ("only the CLI imports the CLI", lambda m: not within(m, "cli"), None, lambda m: within(m, "cli")),
    ("runs, export, predict and evaluation never import training",
     lambda m: within(m, "runs", "export", "predict", "evaluation"), None, lambda m: within(m, "training")),
]


@pytest.mark.parametrize("what, importers, allowed, forbidden", LAYERS, ids=[layer[0] for layer in LAYERS])
def test_imports_run_one_way(what, importers, allowed, forbidden):
    assert violations(importers, allowed, forbidden) == [], what


def test_the_layer_rules_catch_a_wrong_import(monkeypatch):
    monkeypatch.setitem(GRAPH, "mrcnn_tf.ops.boxes", GRAPH["mrcnn_tf.ops.boxes"] | {"mrcnn_tf.config"})
    _, importers, allowed, forbidden = LAYERS[0]
    assert violations(importers, allowed, forbidden) == ["mrcnn_tf.ops.boxes -> mrcnn_tf.config"]
