"""Records out to pandas, CSV and JSON; files are replaced atomically.

A file is written to a temporary name beside it, flushed to disk and renamed over the
old one, so a reader (or a crash) sees either the previous complete file or the new one.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import tempfile
from collections.abc import Callable, Iterable
from typing import Any

from keras_initkit.stats.record import STATISTICS, ActivationRecord

COLUMNS = ("fit", "epoch", "batch", "step", "layer", "activation", "statistic", "value")


def tidy_rows(records: Iterable[ActivationRecord]) -> list[tuple[Any, ...]]:
    """One row per record and statistic, in `COLUMNS` order."""
    rows = []
    for r in records:
        for name in STATISTICS:
            if name in r.stats:
                rows.append((r.fit, r.epoch, r.batch, r.step, r.layer, r.activation, name,
                             r.stats[name]))
    return rows


def to_dataframe(records: Iterable[ActivationRecord]) -> Any:
    """A tidy pandas DataFrame with the columns `COLUMNS`."""
    try:
        import pandas as pd
    except ImportError as error:  # pragma: no cover - pandas is in the test extra
        raise ImportError(
            "to_dataframe needs pandas: pip install 'keras-initkit[plot]'"
        ) from error
    return pd.DataFrame(tidy_rows(records), columns=list(COLUMNS))


def _new_file_mode() -> int:
    """The permissions `open()` would give a new file (mkstemp's are 0o600)."""
    umask = os.umask(0o022)
    os.umask(umask)
    return 0o666 & ~umask


def atomic_save(path: str | os.PathLike[str], write: Callable[[str], None]) -> None:
    """Calls `write(temporary_path)` beside `path`, then renames it over `path`.

    A reader (or a crash) sees the old complete file or the new one, never half of one.
    The temporary name keeps `path`'s suffix, for writers that read the format from it
    (matplotlib's `savefig`).
    """
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    handle, temporary = tempfile.mkstemp(
        prefix=".tmp-", suffix=os.path.splitext(path)[1], dir=directory)
    os.close(handle)
    try:
        write(temporary)
        os.chmod(temporary, _new_file_mode())
        os.replace(temporary, path)
    except BaseException:
        if os.path.exists(temporary):
            os.remove(temporary)
        raise


def atomic_write_text(path: str | os.PathLike[str], text: str) -> None:
    """Writes `text` to `path` so the file is never seen half-written."""

    def write(temporary: str) -> None:
        with open(temporary, "w", encoding="utf-8", newline="") as file:
            file.write(text)
            file.flush()
            os.fsync(file.fileno())

    atomic_save(path, write)


def csv_text(records: Iterable[ActivationRecord]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(COLUMNS)
    for row in tidy_rows(records):
        value = row[-1]
        writer.writerow((*row[:-1], repr(float(value)) if math.isfinite(value) else value))
    return buffer.getvalue()


def json_text(records: Iterable[ActivationRecord], warnings: list[str]) -> str:
    from keras_initkit.version import __version__

    payload = {
        "keras_initkit_version": __version__,
        "records": [r.to_json() for r in records],
        "warnings": list(warnings),
    }
    return json.dumps(payload, indent=1, allow_nan=False)


def load_json(path: str | os.PathLike[str]) -> tuple[list[ActivationRecord], list[str]]:
    """Records and warnings from `ActivationStats.to_json`'s file or its `log_dir`'s
    `activation_stats.jsonl` (JSON Lines; a torn last line, from a crash mid-write, is
    skipped).

    Args:
        path: a `.json` file written by `to_json`, or a `.jsonl` file.

    Returns:
        `(records, warnings)`.

    Example:
    >>> import os, tempfile
    >>> path = os.path.join(tempfile.mkdtemp(), "s.jsonl")
    >>> with open(path, "w") as f:
    ...     _ = f.write('{"keras_initkit_version": "0"}' + chr(10) + '{"warning": "w"}'
    ...                 + chr(10) + '{"fit": 0, "ep')
    >>> keras_initkit.stats.load_json(path)
    ([], ['w'])
    """
    path = os.fspath(path)
    with open(path, encoding="utf-8") as file:
        if not path.endswith(".jsonl"):
            payload = json.load(file)
            return ([ActivationRecord.from_json(r) for r in payload["records"]],
                    payload["warnings"])
        lines = file.read().split("\n")
    records, warnings = [], []
    for number, line in enumerate(lines):
        if not line.strip():
            continue
        try:
            item = json.loads(line)
        except json.JSONDecodeError:
            if number == len(lines) - 1:  # torn by a crash mid-write
                break
            raise
        if "warning" in item:
            warnings.append(item["warning"])
        elif "layer" in item:
            records.append(ActivationRecord.from_json(item))
    return records, warnings
