"""What README.md tells a user to install and run, read from README.md itself.

Used by `.ci/wheel_smoke` (installs the built wheel the way each install line says, then
checks that every command the README promises exists and runs) and by
`tests/test_readme_install.py` (the extras the README names are the ones pyproject.toml
declares). Nothing here knows a command by name: adding `tensorboard --logdir ...` to the
README makes the check require the `tensorboard` executable after the install line.
"""

from __future__ import annotations

import keyword
import re
import shlex
from dataclasses import dataclass, field

INSTALL_SECTION = "## Install, run, test"
# A shell command as README writes one in inline code: a lowercase program name, then
# arguments (`tensorboard --logdir runs/demo`, `keras-initkit demo --help`), and none of
# the operators that mark a formula (`x * sigmoid(beta x)`, `steps_per_execution > 1`,
# `x_t @ kernel`).
_COMMAND_SPAN = re.compile(r"^[a-z][a-z0-9_-]*(?: [^*()<>^+|;@=]+)$")
_EXTRAS = re.compile(r"^(?P<target>[^\[\]]*)(?:\[(?P<extras>[^\]]*)\])?$")


@dataclass
class InstallLine:
    """One `pip install TARGET[EXTRAS] && COMMAND && ...` line of the install section."""

    line: str
    target: str
    extras: list[str]
    editable: bool
    then: list[str] = field(default_factory=list)


def _bash_lines(markdown: str) -> list[str]:
    lines = []
    for block in re.findall(r"```bash\n(.*?)```", markdown, flags=re.DOTALL):
        lines += [line.strip() for line in block.splitlines() if line.strip()]
    return lines


def install_lines(readme: str) -> list[InstallLine]:
    """The `pip install` lines of README's install section, in order."""
    start = readme.index(INSTALL_SECTION)
    end = readme.find("\n## ", start + len(INSTALL_SECTION))
    section = readme[start : end if end != -1 else None]
    found = []
    for line in _bash_lines(section):
        steps = [step.strip() for step in line.split("&&")]
        words = shlex.split(steps[0])
        if words[:2] != ["pip", "install"]:
            continue
        editable = "-e" in words
        (spec,) = [word for word in words[2:] if not word.startswith("-")]
        match = _EXTRAS.match(spec)
        if match is None:
            raise ValueError(f"cannot read the install target in {line!r}")
        extras = [e.strip() for e in (match["extras"] or "").split(",") if e.strip()]
        found.append(InstallLine(line, match["target"], extras, editable, steps[1:]))
    return found


def pip_install_extras(readme: str) -> set[str]:
    """Every extra named by a `pip install .[...]` anywhere in README (blocks and prose)."""
    extras: set[str] = set()
    for spec in re.findall(r'pip install (?:-e )?"?\.\[([^\]]*)\]', readme):
        extras |= {extra.strip() for extra in spec.split(",") if extra.strip()}
    return extras


def promised_commands(readme: str) -> list[str]:
    """Every shell command README tells a user to run, outside the install lines' pip.

    Read from bash blocks (each `&&` step), `$ ` lines of text blocks, and inline code
    spans shaped like a command (a program name and arguments; Python statements such
    as `import keras_initkit` are not commands).
    """
    commands: list[str] = []
    for line in _bash_lines(readme):
        commands += [step.strip() for step in line.split("&&")]
    for block in re.findall(r"```text\n(.*?)```", readme, flags=re.DOTALL):
        commands += [line[2:].strip() for line in block.splitlines() if line.startswith("$ ")]
    prose = re.sub(r"```.*?```", "", readme, flags=re.DOTALL)
    for span in re.findall(r"`([^`\n]+)`", prose):
        if _COMMAND_SPAN.match(span) and not keyword.iskeyword(span.split()[0]):
            commands.append(span)
    unique = []
    for command in commands:
        if command not in unique and not command.startswith("pip "):
            unique.append(command)
    return unique


def program(command: str) -> str:
    """The executable a command needs: `tensorboard` for `tensorboard --logdir x`."""
    words = [w for w in shlex.split(command) if not re.match(r"^[A-Z_]+=", w)]
    return words[0]


def python_module(command: str) -> str | None:
    """The module of `python -m MODULE ...`, else None."""
    words = shlex.split(command)
    if words[0] in ("python", "python3") and len(words) > 2 and words[1] == "-m":
        return words[2]
    return None
