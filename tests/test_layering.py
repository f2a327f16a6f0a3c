"""The package's layers, read from every `import` statement (function-local ones included).

From the bottom up: `initializers`; `layers`, `activations` and the private modules at the
package root (`_graph.py`, `_trace.py`, `_capture.py`, `_patch.py`, ...); `stats`;
`model_init`; `callbacks`; `cli`. A module may import its own layer and the layers below,
never one above: that is what keeps `stats` and `model_init` from importing each other.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "keras_initkit"

# layer of the importing module -> subpackages it must not import
FORBIDDEN = {
    "initializers": {"layers", "stats", "model_init", "callbacks", "cli"},
    "layers": {"stats", "model_init", "callbacks", "cli"},
    "activations": {"stats", "model_init", "callbacks", "cli"},
    "<private root>": {"stats", "model_init", "callbacks", "cli"},
    "stats": {"model_init", "callbacks", "cli"},
    "model_init": {"callbacks", "cli"},
    "callbacks": {"model_init", "cli"},
}


def _layer(path: Path) -> str | None:
    parts = path.relative_to(PACKAGE).parts
    if len(parts) == 1:
        private = parts[0].startswith("_") and not parts[0].startswith("__")  # not __main__
        return "<private root>" if private else None
    return parts[0]


def _module_name(path: Path) -> list[str]:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return parts[:-1] if parts[-1] == "__init__" else parts


def imported_subpackages(source: str, package: list[str]) -> set[str]:
    """The `keras_initkit` subpackages or modules that `source`, a module of the package
    `package` (e.g. `["keras_initkit", "stats"]`), imports anywhere in it."""
    tree = ast.parse(source)
    names: list[list[str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names += [alias.name.split(".") for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: resolve against the importing module's package
                base = package[: len(package) - node.level + 1]
                module = base + (node.module.split(".") if node.module else [])
            else:
                module = (node.module or "").split(".")
            names.append(module)
            # `from keras_initkit import stats` imports the subpackage `stats`
            names += [module + [alias.name] for alias in node.names]
    return {n[1] for n in names if len(n) > 1 and n[0] == "keras_initkit"}


MODULES = sorted(p for p in PACKAGE.rglob("*.py") if _layer(p) in FORBIDDEN)


def test_every_layer_has_modules():
    layers = {_layer(p) for p in MODULES}
    assert layers == set(FORBIDDEN), layers
    assert PACKAGE / "_graph.py" in MODULES and PACKAGE / "_trace.py" in MODULES


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_no_module_imports_a_layer_above_its_own(path):
    layer = _layer(path)
    package = _module_name(path)
    if path.name != "__init__.py":
        package = package[:-1]
    upward = imported_subpackages(path.read_text(), package) & FORBIDDEN[layer]
    assert not upward, f"{path.relative_to(PACKAGE)} ({layer}) imports {sorted(upward)}"


def test_the_checker_sees_every_import_form():
    """A checker that found nothing would pass on any layout: it must see each form."""
    source = (
        "import numpy\n"
        "from keras_initkit.model_init import inspect\n"
        "def f():\n"
        "    import keras_initkit.callbacks.activation_stats\n"
        "    from keras_initkit import cli\n"
        "    from .. import layers\n"
        "    from .accumulator import fold\n"
    )
    found = imported_subpackages(source, ["keras_initkit", "stats"])
    assert found == {"model_init", "callbacks", "cli", "layers", "stats"}
