"""How many different functions the units of a layer compute on a batch.

With all-zero or constant weights every unit of a layer computes the same function and
receives the same gradient, so the units stay identical for ever: the layer is, in effect,
one unit wide. Counting the distinct unit output columns makes that visible.
"""

from __future__ import annotations

import numpy as np

# Random projections used to sort the columns into candidate groups (more cut wrong
# candidates sooner; the exact comparison afterwards makes the count independent of them).
_PROJECTIONS = 4
_SEED = 1986


def distinct_units(values: object, atol: float = 1e-6, rtol: float = 1e-5) -> int:
    """Counts the different unit output columns of a layer, up to a tolerance.

    `values` is read as a `(samples, units)` table: the last axis holds the units and every
    other axis counts as samples (for a convolution's `(batch, height, width, filters)`
    output, each spatial position of each example is a sample). Two unit columns `a` and
    `b` are the same when, on every sample, `|a - b| <= atol + rtol * max(|a|, |b|)`, NaN
    matching NaN and an infinity the same infinity (so NaN columns form groups of their
    own and never raise). Columns are grouped greedily in unit order: a unit joins the
    first earlier group whose first unit it matches, else starts a new group; the result
    is the number of groups. `1` for a layer with more than one unit means every unit
    computes the same function: the symmetry of a zero or constant initialization.

    `atol` is absolute: on a collapsed layer whose outputs are all smaller than it (tanh
    after ten layers of N(0, 0.01²) weights, std ~3e-7) every column matches. To tell
    symmetric units from merely tiny ones, scale it to the layer, e.g.
    `atol=1e-5 * scale` with `scale` the largest finite |value| (zero-initialized units
    still match exactly).

    The cost is O(N·U·log U) for N samples and U units, not O(N·U²): the columns are
    projected on a few seeded random vectors, sorted, and cut into candidate groups where
    neighbouring projections differ by more than any two matching columns can; only
    columns within a candidate group are compared element by element.

    Args:
        values: array-like (NumPy array, or anything `np.asarray` converts: a CPU tensor,
            nested lists) of shape `(..., units)`, at least one axis.
        atol: float >= 0. Absolute tolerance of the column comparison.
        rtol: float >= 0. Relative tolerance of the column comparison.

    Returns:
        int: the number of distinct unit columns, between `0` (no units) and `units`;
        `1` for any number of units when there are no samples.

    Example:
    >>> import numpy as np
    >>> from keras_initkit.stats.symmetry import distinct_units
    >>> distinct_units(np.zeros((32, 64)))  # zero init: all 64 units identical
    1
    >>> x = np.random.default_rng(0).normal(size=(32, 3))
    >>> distinct_units(np.concatenate([x, x[:, :1]], axis=-1))  # 4 units, one duplicated
    3

    Reference:
    - [Rumelhart, Hinton & Williams, 1986](https://doi.org/10.1038/323533a0): the
      symmetry-breaking argument for random initial weights.
    - [Goodfellow, Bengio & Courville, 2016, Deep Learning, section 8.4](
      https://www.deeplearningbook.org/contents/optimization.html)
    """
    for name, tol in (("atol", atol), ("rtol", rtol)):
        if isinstance(tol, bool) or not isinstance(tol, (int, float)) or not tol >= 0:
            raise ValueError(f"distinct_units: `{name}` must be a number >= 0, got {tol!r}.")
    array = np.asarray(values)
    if array.ndim == 0:
        raise ValueError(
            "distinct_units: `values` must have at least one axis (the units, last); got a "
            f"scalar {array!r}.")
    try:  # bfloat16 (ml_dtypes) has dtype kind "V" but converts
        if array.dtype.kind not in "biufV":
            raise TypeError
        array = array.astype(np.float64)
    except (TypeError, ValueError):
        raise ValueError(
            "distinct_units: `values` must hold real numbers (bool, int or float); got dtype "
            f"{array.dtype}.") from None
    units = array.shape[-1]
    if units == 0:
        return 0
    columns = np.ascontiguousarray(array.reshape(-1, units).T)
    if columns.shape[1] == 0:
        return 1
    finite = np.isfinite(columns)
    all_finite = finite.all(axis=1)
    groups = [np.flatnonzero(all_finite)]
    odd = np.flatnonzero(~all_finite)
    if odd.size:
        # Non-finite entries must sit at the same places with the same values to match:
        # group those columns by their pattern (hashing, linear), then compare the finite
        # rest within each pattern.
        by_pattern: dict[bytes, list[int]] = {}
        for unit in odd:
            column = columns[unit]
            key = (np.isnan(column).tobytes() + np.isposinf(column).tobytes()
                   + np.isneginf(column).tobytes())
            by_pattern.setdefault(key, []).append(int(unit))
        groups += [np.asarray(members) for members in by_pattern.values()]
    clean = np.where(finite, columns, 0.0)
    return sum(_count(clean, members, atol, rtol) for members in groups if members.size)


def _count(columns: np.ndarray, members: np.ndarray, atol: float, rtol: float) -> int:
    """Distinct columns among `columns[members]` (finite, in unit order)."""
    block = columns[members]
    scale = float(np.max(np.abs(block))) if block.size else 0.0
    # Matching columns differ by at most `atol + rtol * scale` per sample, so their
    # projections on r differ by at most ||r||_1 times that (plus float rounding).
    rng = np.random.default_rng(_SEED)
    directions = rng.standard_normal((block.shape[1], _PROJECTIONS))
    projections = block @ directions
    reach = (atol + rtol * scale) * np.abs(directions).sum(axis=0)
    reach += 1e-9 * (np.abs(projections).max(axis=0) + np.abs(directions).sum(axis=0) * scale)
    runs = [np.arange(len(members))]
    for k in range(_PROJECTIONS):
        split = []
        for run in runs:
            if run.size == 1:
                split.append(run)
                continue
            order = run[np.argsort(projections[run, k], kind="stable")]
            gaps = np.diff(projections[order, k]) > reach[k]
            split += np.split(order, np.flatnonzero(gaps) + 1)
        runs = split
    return sum(_leaders(block, np.sort(run), atol, rtol) for run in runs)


def _leaders(block: np.ndarray, run: np.ndarray, atol: float, rtol: float) -> int:
    """Greedy groups in unit order within one candidate run, by exact comparison."""
    if run.size == 1:
        return 1
    count = 0
    left = run
    while left.size:
        leader = block[left[0]]
        others = block[left]
        close = np.all(
            np.abs(others - leader) <= atol + rtol * np.maximum(np.abs(others), np.abs(leader)),
            axis=1)
        close[0] = True
        left = left[~close]
        count += 1
    return count
