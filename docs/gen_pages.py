"""Generates the site's pages at `mkdocs build` time (mkdocs-gen-files), from the sources.

- `index.md`: README.md, the tour, with its image paths made relative to docs/.
- `api/<group>/<Name>.md`: one page per name in each public subpackage's `__all__`, rendered
  from the docstrings by mkdocstrings; `api/<group>/index.md`: the group's module docstring
  and a table of its objects. `__all__` is read statically, so a new public object gets its
  page without touching this file.
- `examples/<name>.md`: each script of examples/, its docstring, the figures it wrote (the
  PNGs in docs/figures/<name>/, saved from a run of the script) and its source.
- `SUMMARY.md`: the navigation (mkdocs-literate-nav).
"""

from __future__ import annotations

import ast
from pathlib import Path

import mkdocs_gen_files

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = "keras_initkit"
# Public subpackages in the order a reader meets them in the README.
GROUPS = ["initializers", "layers", "activations", "model_init", "callbacks", "stats", "cli"]


def module_info(path: Path) -> tuple[str, list[str]]:
    """A module's docstring and its `__all__`, read without importing it."""
    tree = ast.parse(path.read_text())
    names: list[str] = []
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(
            isinstance(target, ast.Name) and target.id == "__all__" for target in node.targets
        ):
            names = list(ast.literal_eval(node.value))
    return ast.get_docstring(tree) or "", names


def first_line(text: str) -> str:
    return text.strip().split("\n\n")[0].replace("\n", " ")


nav = ["* [Tour](index.md)\n", "* API reference\n"]

readme = (ROOT / "README.md").read_text().replace("](docs/", "](")
with mkdocs_gen_files.open("index.md", "w") as page:
    page.write(readme)
mkdocs_gen_files.set_edit_path("index.md", "../README.md")

top_doc, top_names = module_info(ROOT / PACKAGE / "__init__.py")
with mkdocs_gen_files.open("api/index.md", "w") as page:
    page.write(f"# `{PACKAGE}`\n\n{top_doc}\n\n")
    page.write("| group | what |\n|---|---|\n")
    for group in GROUPS:
        doc, _ = module_info(ROOT / PACKAGE / group / "__init__.py")
        page.write(f"| [`{PACKAGE}.{group}`]({group}/index.md) | {first_line(doc)} |\n")
    shortcuts = [name for name in top_names if name not in GROUPS and not name.startswith("_")]
    page.write("\nAlso importable from the top level: "
               + ", ".join(f"`{PACKAGE}.{name}`" for name in shortcuts) + ".\n")
nav.append("    * [Overview](api/index.md)\n")

for group in GROUPS:
    doc, names = module_info(ROOT / PACKAGE / group / "__init__.py")
    nav.append(f"    * [{PACKAGE}.{group}](api/{group}/index.md)\n")
    with mkdocs_gen_files.open(f"api/{group}/index.md", "w") as page:
        page.write(f"# `{PACKAGE}.{group}`\n\n{doc}\n\n| name | |\n|---|---|\n")
        for name in names:
            page.write(f"| [`{name}`]({name}.md) | [{PACKAGE}.{group}.{name}][] |\n")
    for name in names:
        path = f"api/{group}/{name}.md"
        with mkdocs_gen_files.open(path, "w") as page:
            page.write(f"::: {PACKAGE}.{group}.{name}\n")
        nav.append(f"        * [{name}]({path})\n")

nav.append("* Examples\n")
for script in sorted((ROOT / "examples").glob("*.py")):
    doc, _ = module_info(script)
    path = f"examples/{script.stem}.md"
    with mkdocs_gen_files.open(path, "w") as page:
        page.write(f"# `examples/{script.name}`\n\n{doc}\n\n")
        for figure in sorted((ROOT / "docs" / "figures" / script.stem).glob("*.png")):
            page.write(f"![{figure.stem}](../figures/{script.stem}/{figure.name})\n\n"
                       f"`{figure.stem}` (written by `python examples/{script.name}`)\n\n")
        page.write(f"```python\n{script.read_text()}```\n")
    nav.append(f"    * [{script.stem}]({path})\n")

with mkdocs_gen_files.open("SUMMARY.md", "w") as page:
    page.writelines(nav)
