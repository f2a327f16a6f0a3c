"""`zero_init_residual`: start each residual branch at zero, scale the rest (Fixup)."""

from __future__ import annotations


import keras

from keras_initkit import initializers as ki
from keras_initkit.model_init import _validate
from keras_initkit.model_init._graph import (
    bias_weights,
    is_functional_model,
    kernel_weights,
    producers_from_config,
)
from keras_initkit.model_init.reinitialize import check_built
from keras_initkit.model_init.report import Report

COLUMNS = ["add", "branch", "zeroed", "weighted layers", "fixup scale"]


def _path_back(name: str, producers: dict[str, list[str]]) -> list[str]:
    """The chain of layers from `name` back to an input, following first inputs."""
    path = [name]
    while producers.get(path[-1]) and len(path) < 10_000:
        path.append(producers[path[-1]][0])
    return path


def zero_init_residual(model: keras.Model, *, fixup: bool = True) -> Report:
    """Zeroes the last layer of each residual branch of a Functional model (and Fixup-scales).

    A residual branch is found at every `Add` layer: following each input back to where
    the two paths meet, the input with more weighted layers on its way is the branch and
    the other the skip (identity or a 1x1 projection). The branch's last weighted layer
    (kernel and bias) is zeroed, or the gamma of a BatchNormalization that ends the branch
    (Goyal et al. 2017), so every block starts as the identity. With `fixup=True`, in
    branches without that normalization, the other weighted layers of each branch are
    multiplied by `L^(-1/(2m-2))` (Zhang et al. 2019; L branches, m weighted layers per
    branch). Initializer attributes are set to `ResidualZeros` and `Fixup(...)` so saved
    models describe what was done.

    Args:
        model: a built Functional model (the graph shows where the `Add`s are).
        fixup: whether to apply the Fixup scaling. Defaults to `True`.

    Returns:
        A `Report`: one row per branch (the Add, its layers, what was zeroed, m, scale).

    Example:
    >>> inputs = keras.Input((8,))
    >>> h = keras.layers.Dense(8, activation="relu")(inputs)
    >>> h = keras.layers.Dense(8, name="last")(h)
    >>> outputs = keras.layers.Add()([inputs, h])
    >>> report = keras_initkit.zero_init_residual(keras.Model(inputs, outputs))
    >>> report[0]["zeroed"], report[0]["fixup scale"]
    ('last/kernel', 1.0)

    Reference:
    - [Goyal et al., 2017](https://arxiv.org/abs/1706.02677)
    - [Zhang, Dauphin & Ma, 2019](https://arxiv.org/abs/1901.09321)
    """
    _validate.zero_init_residual_arguments(model, fixup)
    check_built(model)
    if isinstance(model, keras.Sequential) or not is_functional_model(model):
        raise ValueError(
            f"zero_init_residual needs a Functional model, whose graph shows the Add layers; "
            f"got {type(model).__name__} {model.name!r}"
        )
    producers = producers_from_config(model)
    branches = []
    for layer in model.layers:
        if not isinstance(layer, keras.layers.Add) or len(producers[layer.name]) < 2:
            continue
        paths = [_path_back(p, producers) for p in producers[layer.name][:2]]
        meet = next((n for n in paths[0] if n in paths[1]), None)
        segments = [p[: p.index(meet)] if meet in p else p for p in paths]
        counts = [sum(bool(kernel_weights(model.get_layer(n))) for n in s) for s in segments]
        branch = segments[0] if counts[0] > counts[1] else segments[1]
        if max(counts) == 0 or counts[0] == counts[1]:
            continue
        branches.append((layer, branch))
    if not branches:
        raise ValueError(
            f"no residual branch found in {model.name!r}: zero_init_residual looks for Add "
            "layers whose inputs are a skip path and a branch with more weighted layers"
        )

    total = len(branches)
    rows = []
    for add, branch in branches:
        layers = [model.get_layer(n) for n in branch]  # from the Add backwards
        weighted = [lay for lay in layers if kernel_weights(lay)]
        last = next(
            lay for lay in layers
            if kernel_weights(lay) or isinstance(lay, keras.layers.BatchNormalization)
        )
        normalized = isinstance(last, keras.layers.BatchNormalization)
        if normalized:
            last.gamma.assign(keras.ops.zeros_like(last.gamma.value))
            last.gamma_initializer = ki.ResidualZeros()
            zeroed = f"{last.name}/gamma"
        else:
            for owner, variable, attribute in kernel_weights(last):
                variable.assign(keras.ops.zeros_like(variable.value))
                setattr(owner, attribute, ki.ResidualZeros())
            for owner, variable in bias_weights(last):
                variable.assign(keras.ops.zeros_like(variable.value))
                owner.bias_initializer = ki.ResidualZeros()
            zeroed = f"{last.name}/kernel"
        m = len(weighted)
        scale = 1.0
        if fixup and not normalized and m >= 2:
            scale = float(total ** (-1.0 / (2 * m - 2)))
            for lay in weighted:
                if lay is last:
                    continue
                for owner, variable, attribute in kernel_weights(lay):
                    base = getattr(owner, attribute, None)
                    if isinstance(base, ki.Fixup):
                        continue  # scaled by an earlier call: scaling twice would compound
                    variable.assign(variable.value * scale)
                    if isinstance(base, keras.initializers.Initializer):
                        setattr(owner, attribute, ki.Fixup(base, total, m))
        rows.append(
            {
                "add": add.name,
                "branch": " <- ".join(lay.name for lay in layers),
                "zeroed": zeroed,
                "weighted layers": m,
                "fixup scale": scale,
            }
        )
    notes = [f"{total} residual branches (L = {total})"]
    return Report(f"zero_init_residual({model.name})", COLUMNS, rows, notes)
