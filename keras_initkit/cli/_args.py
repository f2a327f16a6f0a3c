"""Argument types for the `keras-initkit` command: each turns a string into a value or
raises `argparse.ArgumentTypeError` with a one-line message naming the allowed values."""

from __future__ import annotations

import argparse
import math
import os
import tempfile
from collections.abc import Callable, Sequence
from typing import Any

BACKENDS = ("tensorflow", "jax", "torch")
PLOT_SUFFIXES = (".png", ".pdf", ".svg")


def int_in(minimum: int, maximum: int) -> Callable[[str], int]:
    """An integer in `[minimum, maximum]`; the bounds keep the run inside memory and
    inside what every backend's RNG accepts (seeds < 2**32)."""
    words = f"an integer in [{minimum}, {maximum}]"

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be {words}; got {text!r}") from None
        if not minimum <= value <= maximum:
            shown = text if len(text) <= 30 else f"{text[:12]}... ({len(text)} digits)"
            raise argparse.ArgumentTypeError(f"must be {words}; got {shown}")
        return value

    return parse


depth_int = int_in(1, 1000)
width_int = int_in(1, 4096)  # a 4096 x 4096 float32 kernel is 64 MB per layer
batch_int = int_in(1, 20000)
epochs_int = int_in(1, 1000)
seed_int = int_in(0, 2**32 - 1)
steps_int = int_in(0, 100000)


def rate_float(text: str) -> float:
    """A rate in [0, 1), such as a dropout rate (1 would drop everything)."""
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not 0 <= value < 1:
        raise argparse.ArgumentTypeError(f"must be a number in [0, 1); got {text!r}")
    return value


def positive_float(text: str) -> float:
    """A finite number > 0, such as a learning rate."""
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not 0 < value < math.inf:
        raise argparse.ArgumentTypeError(f"must be a number > 0; got {text!r}")
    return value


def choice_list(allowed: Sequence[str], check: Callable[[str], Any] | None = None) -> Callable:
    """A comma-separated list of names; each must be in `allowed` or pass `check`."""

    def parse(text: str) -> list[str]:
        names = [name.strip().lower() for name in text.split(",") if name.strip()]
        if not names:
            raise argparse.ArgumentTypeError(f"must name at least one of {', '.join(allowed)}")
        for name in names:
            if name in allowed:
                continue
            if check is not None:
                check(name)
                continue
            raise argparse.ArgumentTypeError(
                f"must be one of {', '.join(allowed)}; got {name!r}"
            )
        return list(dict.fromkeys(names))  # drop repeats, keep order

    return parse


def _writable_directory(directory: str) -> bool:
    """Whether files can be created in `directory`, or in the folders it would create."""
    directory = os.path.abspath(directory or ".")
    while not os.path.exists(directory):
        parent = os.path.dirname(directory)
        if parent == directory:
            return False
        directory = parent
    return os.path.isdir(directory) and os.access(directory, os.W_OK | os.X_OK)


def _can_create_in(folder: str) -> str | None:
    """None if a file can be created in `folder` (tried for real), else the reason."""
    try:
        with tempfile.NamedTemporaryFile(dir=folder or ".", prefix=".keras-initkit-probe-"):
            pass
    except OSError as error:
        return error.strerror or str(error)
    return None


def output_file(suffixes: Sequence[str] | None = None, allow_stdout: bool = False) -> Callable:
    """A path in an existing folder where a file can be created (checked by creating one)."""

    def parse(text: str) -> str:
        if allow_stdout and text == "-":
            return text
        if not text or os.path.isdir(text):
            raise argparse.ArgumentTypeError(f"must be a file path, not a folder; got {text!r}")
        if suffixes is not None and os.path.splitext(text)[1].lower() not in suffixes:
            raise argparse.ArgumentTypeError(
                f"must end in one of {', '.join(suffixes)}; got {text!r}"
            )
        folder = os.path.dirname(text)
        if folder and not os.path.isdir(folder):
            raise argparse.ArgumentTypeError(
                f"cannot write {text!r}: folder {folder!r} does not exist (create it first)"
            )
        reason = _can_create_in(folder)
        if reason is not None:
            raise argparse.ArgumentTypeError(f"cannot write {text!r}: {reason}")
        return text

    return parse


def output_folder(text: str) -> str:
    """A folder that exists and is writable, or can be created."""
    if os.path.exists(text) and not os.path.isdir(text):
        raise argparse.ArgumentTypeError(f"must be a folder; {text!r} is a file")
    if not _writable_directory(text):
        raise argparse.ArgumentTypeError(f"cannot write to {text!r}: folder is not writable")
    return text
