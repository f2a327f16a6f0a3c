"""README's install lines and promised commands, read as `.ci/wheel_smoke.py` reads them.

The fresh-venv half (install the built wheel per line, run every promised command) runs in
`.ci/run`; these tests keep the README and pyproject.toml saying the same thing.
"""

import importlib.util
import re
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
EXTRAS = set(PYPROJECT["project"]["optional-dependencies"])

_spec = importlib.util.spec_from_file_location(
    "readme_promises", ROOT / ".ci" / "readme_promises.py")
promises = importlib.util.module_from_spec(_spec)
sys.modules.setdefault("readme_promises", promises)
_spec.loader.exec_module(promises)


def test_install_section_has_the_user_line_then_the_test_line():
    lines = promises.install_lines(README)
    assert [(line.target, line.editable) for line in lines] == [(".", False), (".", True)]
    user, test = lines
    assert "tensorflow" in user.extras and user.then == ["keras-initkit demo"]
    assert test.extras == ["test"] and test.then == ["python -m pytest"]


def test_every_extra_the_readme_names_exists():
    named = promises.pip_install_extras(README)
    assert {"tensorflow", "examples", "test"} <= named
    assert named <= EXTRAS, f"README installs extras pyproject.toml lacks: {named - EXTRAS}"


def test_readme_lists_exactly_the_declared_extras():
    (listed,) = re.findall(r"Extras: (.*?)\.\n", README, flags=re.DOTALL)
    listed = re.sub(r"\([^)]*\)", "", listed)  # the notes in parentheses name files
    assert sorted(re.findall(r"`([a-z]+)`", listed)) == sorted(EXTRAS)


def test_readme_states_the_tested_python_range():
    lowest = PYPROJECT["project"]["requires-python"].removeprefix(">=")
    ci = (ROOT / ".ci" / "run").read_text()
    assert f"PYTHON_LOWEST={lowest}\n" in ci
    (highest,) = re.findall(r"^PYTHON_HIGHEST=(\S+)$", ci, flags=re.MULTILINE)
    assert f"Python {lowest} to {highest}" in README
    classifiers = PYPROJECT["project"]["classifiers"]
    assert f"Programming Language :: Python :: {lowest}" in classifiers
    assert f"Programming Language :: Python :: {highest}" in classifiers


def test_promised_commands_include_the_tensorboard_promise():
    commands = promises.promised_commands(README)
    programs = {promises.program(command) for command in commands}
    assert {"keras-initkit", "tensorboard"} <= programs
    assert not any(command.startswith("pip ") for command in commands)


@pytest.mark.parametrize(
    ("markdown", "expected"),
    [
        ("Run `tensorboard --logdir runs/x` to see it.", ["tensorboard --logdir runs/x"]),
        ("```bash\npip install .[a] && tool one && other --flag\n```",
         ["tool one", "other --flag"]),
        ("```text\n$ keras-initkit study --init x\nerror: ...\n```",
         ["keras-initkit study --init x"]),
        ("`import keras_initkit`, `x * sigmoid(beta x)`, `steps > 1`, `seed=None`, `fit`", []),
        ("the input projection `x_t @ kernel`, `a = b c`", []),
    ],
)
def test_promised_commands_parser(markdown, expected):
    assert promises.promised_commands(markdown) == expected


def test_install_line_parser():
    readme = ('## Install, run, test\n```bash\npip install -e ".[a, b]" && x y\n```\n'
              '## Next\n```bash\npip install ".[c]"\n```')
    (line,) = promises.install_lines(readme)
    assert (line.target, line.extras, line.editable, line.then) == (".", ["a", "b"], True, ["x y"])
    assert promises.program("KERAS_BACKEND=jax keras-initkit demo") == "keras-initkit"
    assert promises.python_module("python -m pytest -x") == "pytest"


def test_changelog_starts_at_the_package_version():
    changelog = (ROOT / "CHANGELOG.md").read_text()
    (version,) = re.findall(r'__version__ = "([^"]+)"', (ROOT / "keras_initkit" / "version.py")
                            .read_text())
    assert re.findall(r"^## (\S+)", changelog, flags=re.MULTILINE)[0] == version
