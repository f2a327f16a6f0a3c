"""Bounded memory over any run length: the records a callback keeps in `.records`."""

from __future__ import annotations

from typing import Any, TypeVar

R = TypeVar("R")


def thin(records: list[R]) -> list[R]:
    """Drops every other read (the records of one `(fit, step)`), keeping the first and
    the last, so the kept records still span the whole run.

    `ActivationStats` and `GradientStats` call it when `.records` grows past
    `max_records`; their files keep every record.

    Args:
        records: records with `fit` and `step` attributes, in any order.

    Returns:
        The kept records, in their order.

    Example:
    >>> from types import SimpleNamespace as Record
    >>> records = [Record(fit=0, step=s, layer=l) for s in (1, 2, 3, 4) for l in "ab"]
    >>> [(r.step, r.layer) for r in thin(records)]
    [(1, 'a'), (1, 'b'), (3, 'a'), (3, 'b'), (4, 'a'), (4, 'b')]

    Reference:
    - [TensorBoard's reservoir](https://github.com/tensorflow/tensorboard/blob/master/tensorboard/backend/event_processing/reservoir.py)
      (bounded points per tag over any run; here the first and last read stay exact)
    """
    reads = sorted({_read(r) for r in records})
    if not reads:
        return list(records)
    keep = set(reads[::2]) | {reads[-1]}
    return [r for r in records if _read(r) in keep]


def _read(record: Any) -> tuple[int, int]:
    return int(record.fit), int(record.step)
