"""`Report`: rows of what an operation on a model did, printable as a table."""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from typing import Any


def _cell(value: Any) -> str:
    if isinstance(value, float):
        if math.isnan(value):
            return "-"
        if value != 0 and (abs(value) < 1e-3 or abs(value) >= 1e5):
            return f"{value:.3g}"
        return f"{value:.4f}".rstrip("0").rstrip(".") if value != int(value) else f"{value:g}"
    return "-" if value is None else str(value)


class Report(Sequence):
    """A list of row dicts with a title, printed as an aligned text table.

    Args:
        title: the first line of the printed table.
        columns: the column names, in order.
        rows: one dict per row, keyed by column (missing keys print as `-`).
        notes: lines printed under the table (warnings, remarks).

    Example:
    >>> report = keras_initkit.model_init.Report(
    ...     "demo", ["layer", "std"], [{"layer": "dense", "std": 0.25}])
    >>> print(report)
    demo
    layer  std
    -----  ----
    dense  0.25

    Reference:
    - The per-layer tables of Glorot & Bengio (2010) and Mishkin & Matas (2016).
    """

    def __init__(
        self, title: str, columns: list[str], rows: list[dict[str, Any]], notes: Sequence[str] = ()
    ) -> None:
        self.title = title
        self.columns = list(columns)
        self.rows = list(rows)
        self.notes = list(notes)

    def __getitem__(self, index: Any) -> Any:
        return self.rows[index]

    def __len__(self) -> int:
        return len(self.rows)

    def __iter__(self) -> Iterator[dict[str, Any]]:
        return iter(self.rows)

    def column(self, name: str) -> list[Any]:
        """The values of one column, in row order."""
        return [row.get(name) for row in self.rows]

    def to_dataframe(self) -> Any:
        """The rows as a pandas DataFrame (needs pandas)."""
        try:
            import pandas as pd
        except ImportError:  # pragma: no cover - depends on the environment
            raise ImportError(
                "to_dataframe needs pandas: pip install pandas (or keras-initkit[plot])"
            ) from None
        return pd.DataFrame(self.rows, columns=self.columns)

    def __str__(self) -> str:
        table = [self.columns] + [[_cell(row.get(c)) for c in self.columns] for row in self.rows]
        widths = [max(len(line[i]) for line in table) for i in range(len(self.columns))]
        lines = [self.title] if self.title else []
        header = zip(self.columns, widths, strict=True)
        lines.append("  ".join(h.ljust(w) for h, w in header).rstrip())
        lines.append("  ".join("-" * w for w in widths))
        for line in table[1:]:
            lines.append("  ".join(v.ljust(w) for v, w in zip(line, widths, strict=True)).rstrip())
        lines.extend(self.notes)
        return "\n".join(lines)

    def __repr__(self) -> str:
        return str(self)
