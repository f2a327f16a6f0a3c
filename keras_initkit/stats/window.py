"""Which steps of a recording window are folded: the arithmetic both callbacks share.

A window runs from the batch after the last record to the next record. Records fall every
`every` batches (or at the end of each epoch), rounded up to a whole `steps_per_execution`
group, since Keras calls the batch hooks once per group. Of a window's steps, the last
`batches_per_record` are folded (all of them with `"all"`).
"""

from __future__ import annotations

NEVER = 3.0e38  # the fold bound of a window with no known end


def fold_bounds(
    start: int,
    every: int | str,
    batches_per_record: int | str,
    steps: int | None,
    steps_per_execution: int,
) -> tuple[int, float]:
    """The steps of the window starting at batch `start` to fold, as `(low, high)`.

    Steps are counted from the window's start; step `t` is folded when `low <= t < high`.

    Args:
        start: the window's first batch within the epoch.
        every: batches between records, or `"epoch"`.
        batches_per_record: how many of the window's last steps to fold, or `"all"`.
        steps: batches per epoch, when Keras knows it (`None` for an unsized dataset).
        steps_per_execution: the model's `steps_per_execution`.

    Example:
    >>> fold_bounds(0, every=10, batches_per_record=2, steps=None, steps_per_execution=1)
    (8, 10)
    >>> fold_bounds(10, every=10, batches_per_record="all", steps=25, steps_per_execution=4)
    (0, 10)

    Reference:
    - [Keras `steps_per_execution`](https://keras.io/api/models/model_training_apis/)
    """
    end: int | None
    if isinstance(every, int):
        boundary = (start // every + 1) * every
        rounded = -(-boundary // steps_per_execution) * steps_per_execution
        end = min(rounded, steps) if steps else rounded
    else:  # "epoch"
        end = steps
    count = batches_per_record if isinstance(batches_per_record, int) else None
    if end is None:
        return 0, (count if count is not None else NEVER)
    length = end - start
    return (0, length) if count is None else (max(length - count, 0), length)


class HistogramCadence:
    """Which windows count histograms: at most one in `histogram_every` steps.

    A window counts them when it is the first of an epoch or begins at least
    `histogram_every` steps after the last window that counted them began. When windows
    are that far apart anyway (`every >= histogram_every`, or `"epoch"`) every window
    does, and `every_window` says so (the step then needs no test of its own).

    Args:
        every: batches between records, or `"epoch"`.
        histogram_every: the least number of steps between two windows with histograms.

    Example:
    >>> cadence = HistogramCadence(every=1, histogram_every=3)
    >>> [cadence.due(step, first_of_epoch=step == 0) for step in range(7)]
    [True, False, False, True, False, False, True]
    >>> HistogramCadence(every=50, histogram_every=10).every_window
    True

    Reference:
    - [Keras `TensorBoard(histogram_freq=...)`](https://keras.io/api/callbacks/tensorboard/)
      (histograms apart from scalars)
    """

    def __init__(self, every: int | str, histogram_every: int) -> None:
        self.histogram_every = histogram_every
        self.every_window = not isinstance(every, int) or every >= histogram_every
        self.last_start: int | None = None  # the step the last window with histograms began

    def due(self, step: int, first_of_epoch: bool) -> bool:
        """Whether the window beginning after `step` training steps counts histograms."""
        due = (
            self.every_window
            or first_of_epoch
            or self.last_start is None
            or step - self.last_start >= self.histogram_every
        )
        if due:
            self.last_start = step
        return due
