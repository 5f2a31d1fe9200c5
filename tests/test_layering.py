"""The package is layered: each module imports only from its own group or the groups before it, with no cycle, and
no symnet import hides inside a function (except in the command line, which imports lazily for start-up time).

Read from the sources with ``ast`` (and the AST reader of generated modules), not from imported modules.  A new module must be placed in LAYERS.
"""

import ast
from pathlib import Path

from symnet.generate.modules import _dotted   # the allowlist's reader of `a.b.c` chains

PACKAGE = Path(__file__).resolve().parent.parent / "symnet"

LAYERS = [
    # leaves: no symnet import but each other
    ("leaves", ["symnet.version", "symnet.text", "symnet.errors", "symnet.files", "symnet.latex", "symnet.plotting",
                "symnet.timing", "symnet.datasets",
                "symnet.declare", "symnet.generate", "symnet.train"]),      # the sub-packages' __init__: docstrings
    # pure-SymPy helpers the declarations use (below them because a declaration derives its own f', VJPs and
    # stable loss form when asked): derivative conventions, index notation, stability rewrites
    ("symbolic helpers", ["symnet.calculus", "symnet.indexed", "symnet.rewrites"]),
    ("declarations", ["symnet.declare.parse", "symnet.declare.activations", "symnet.declare.layers",
                      "symnet.declare.losses", "symnet.declare.optimizers", "symnet.layers", "symnet.optim"]),
    ("derivation", ["symnet.differentiate", "symnet.simplify", "symnet.backprop"]),
    ("generation", ["symnet.generate.kernels", "symnet.generate.printer", "symnet.generate.modules",
                    "symnet.generate.writer", "symnet.generate.contractions", "symnet.generate.layers_code",
                    "symnet.generate.loss_code", "symnet.generate.optimizer_code", "symnet.generate.second_order",
                    "symnet.generate.network"]),
    ("models", ["symnet.expression", "symnet.network", "symnet.swell"]),
    ("training", ["symnet.train.checkpoint", "symnet.train.loop", "symnet.train.optim"]),
    ("applications", ["symnet.cli", "symnet.report", "symnet.compare", "symnet.bench", "symnet.models",
                      "symnet.check", "symnet.__main__", "symnet.sweep"]),
    ("package", ["symnet"]),
]
GROUP = {module: number for number, (_, modules) in enumerate(LAYERS) for module in modules}
LAZY_IMPORTS_ALLOWED = {"symnet.cli"}


def module_name(path):
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}


def symnet_imports(path):
    """``[(target module, line, inside a function)]`` for every import of a symnet module in ``path``."""
    found = []

    def visit(node, in_function):
        for child in ast.iter_child_nodes(node):
            inside = in_function or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
            if isinstance(child, ast.Import):
                found.extend((alias.name, child.lineno, in_function) for alias in child.names
                             if alias.name.split(".")[0] == "symnet")
            elif isinstance(child, ast.Call) and _dotted(child.func) in ("importlib.import_module", "__import__") \
                    and child.args and isinstance(child.args[0], ast.Constant) \
                    and str(child.args[0].value).split(".")[0] == "symnet":   # an import spelled as a call
                found.append((child.args[0].value, child.lineno, in_function))
            elif isinstance(child, ast.ImportFrom):
                assert child.level == 0, f"{path.name}:{child.lineno}: use absolute imports"
                if (child.module or "").split(".")[0] == "symnet":
                    for alias in child.names:
                        submodule = f"{child.module}.{alias.name}"
                        found.append((submodule if submodule in MODULES else child.module, child.lineno, in_function))
            visit(child, inside)

    visit(ast.parse(path.read_text(encoding="utf-8")), False)
    return list(dict.fromkeys(found))


def test_every_module_has_a_layer():
    assert sorted(set(MODULES) - set(GROUP)) == [], "add these modules to LAYERS"
    assert sorted(set(GROUP) - set(MODULES)) == [], "LAYERS names modules that do not exist"


def test_imports_go_to_the_same_or_a_lower_layer():
    wrong = []
    for module, path in MODULES.items():
        for target, line, in_function in symnet_imports(path):
            where = f"{path.relative_to(PACKAGE.parent)}:{line}: {module} imports {target}"
            if in_function and module not in LAZY_IMPORTS_ALLOWED:
                wrong.append(f"{where} inside a function (import it at the top)")
            elif GROUP[target] > GROUP[module]:
                wrong.append(f"{where}, but {LAYERS[GROUP[target]][0]} comes after {LAYERS[GROUP[module]][0]}")
    assert not wrong, "\n".join(wrong)


def test_there_is_no_import_cycle():
    graph = {module: sorted({target for target, _, _ in symnet_imports(path)} - {module})
             for module, path in MODULES.items()}
    state, cycles = {}, []

    def walk(module, trail):
        state[module] = "open"
        for target in graph[module]:
            if state.get(target) == "open":
                cycles.append(" → ".join(trail[trail.index(target):] + [target]))
            elif target not in state:
                walk(target, trail + [target])
        state[module] = "done"

    for module in graph:
        if module not in state:
            walk(module, [module])
    assert not cycles, "import cycles:\n" + "\n".join(cycles)


def test_the_table_rejects_an_upward_import(tmp_path):
    """The check is not vacuous: an upward import in a leaf is reported by name."""
    source = tmp_path / "probe.py"
    source.write_text("from symnet.network import Sequential\n\ndef f():\n    from symnet import models\n"
                      "    importlib.import_module('symnet.check')\n")
    imports = symnet_imports(source)
    assert imports == [("symnet.network", 1, False), ("symnet.models", 4, True), ("symnet.check", 5, True)]
    assert all(GROUP[target] > GROUP["symnet.errors"] for target, _, _ in imports)
