"""Argument types for the `keras-initkit` command: each turns a string into a value or
raises `argparse.ArgumentTypeError` with a one-line message naming the allowed values."""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable, Sequence
from typing import Any

BACKENDS = ("tensorflow", "jax", "torch")
PLOT_SUFFIXES = (".png", ".pdf", ".svg")


def _int_at_least(minimum: int, words: str) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be {words}; got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be {words}; got {value}")
        return value

    return parse


positive_int = _int_at_least(1, "a positive integer")  # depth, width, batch, epochs
non_negative_int = _int_at_least(0, "an integer >= 0")  # seeds


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


def output_file(suffixes: Sequence[str] | None = None, allow_stdout: bool = False) -> Callable:
    """A path a file can be written to (its folder is created if missing)."""

    def parse(text: str) -> str:
        if allow_stdout and text == "-":
            return text
        if not text or os.path.isdir(text):
            raise argparse.ArgumentTypeError(f"must be a file path, not a folder; got {text!r}")
        if suffixes is not None and os.path.splitext(text)[1].lower() not in suffixes:
            raise argparse.ArgumentTypeError(
                f"must end in one of {', '.join(suffixes)}; got {text!r}"
            )
        if not _writable_directory(os.path.dirname(text)):
            raise argparse.ArgumentTypeError(f"cannot write {text!r}: folder is not writable")
        return text

    return parse


def output_folder(text: str) -> str:
    """A folder that exists and is writable, or can be created."""
    if os.path.exists(text) and not os.path.isdir(text):
        raise argparse.ArgumentTypeError(f"must be a folder; {text!r} is a file")
    if not _writable_directory(text):
        raise argparse.ArgumentTypeError(f"cannot write to {text!r}: folder is not writable")
    return text
