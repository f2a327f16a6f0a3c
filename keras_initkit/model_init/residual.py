"""`zero_init_residual`: start each residual branch at zero, scale the rest (Fixup)."""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import keras

from keras_initkit import initializers as ki
from keras_initkit._graph import (
    bias_weights,
    is_container,
    is_functional_model,
    is_model,
    kernel_weights,
    read_model,
)
from keras_initkit._trace import Call, Graph
from keras_initkit.model_init import _validate
from keras_initkit.model_init.reinitialize import check_built
from keras_initkit.model_init.report import Report

COLUMNS = ["add", "branch", "zeroed", "weighted layers", "fixup scale"]
GPT2_COLUMNS = ["add", "branch", "scaled", "weighted layers", "scale"]
MODES = ("zero", "gpt2")

_NORMALIZATIONS = (
    keras.layers.BatchNormalization,
    keras.layers.LayerNormalization,
    keras.layers.GroupNormalization,
    keras.layers.UnitNormalization,
)


def _is_residual_sum(call: Call) -> bool:
    op = call.op
    if isinstance(op, keras.layers.Add):
        return len(set(call.inputs)) >= 2
    if isinstance(op, keras.layers.Layer):
        return False
    return type(op).__name__ == "Add" and len(set(call.inputs)) == 2


def _weighted(op: Any) -> bool:
    """A layer whose kernel shapes the branch (embeddings and scales do not count)."""
    if not isinstance(op, keras.layers.Layer) or isinstance(op, keras.layers.Embedding):
        return False
    if is_container(op):
        return any("embeddings" not in v.path for v in op.weights)
    return any(a != "embeddings_initializer" for _, _, a in kernel_weights(op))


@dataclasses.dataclass
class _Branch:
    name: str  # the sum, as a path
    calls: list[Call]  # the branch's calls, from the sum backwards
    last: Any  # the layer whose output starts at zero (or None: a custom layer ends it)
    prefix: str


def _ancestors(graph: Graph, tensor: int) -> set[int]:
    seen, stack = {tensor}, [tensor]
    while stack:
        call = graph.producer(stack.pop())
        if call is None:
            continue
        for parent in call.inputs:
            if parent not in seen:
                seen.add(parent)
                stack.append(parent)
    return seen


def _descendants(graph: Graph, tensor: int) -> set[int]:
    seen, stack = {tensor}, [tensor]
    while stack:
        for call in graph.consumers(stack.pop()):
            for child in call.outputs:
                if child not in seen:
                    seen.add(child)
                    stack.append(child)
    return seen


def _order_index(graph: Graph, tensor: int) -> int:
    call = graph.producer(tensor)
    return -1 if call is None else graph.calls.index(call)


def _segment(graph: Graph, tensor: int, own: set[int], start: set[int]) -> list[Call]:
    """The calls between the fork and `tensor`, from `tensor` backwards."""
    calls: list[Call] = []
    for t in sorted(own & start, key=lambda t: -_order_index(graph, t)):
        call = graph.producer(t)
        if call is not None and call not in calls:
            calls.append(call)
    return calls


def _branches(prefix: str, graph: Graph, traced: bool) -> list[_Branch]:
    found = []
    sums = 0
    for call in graph.calls:
        if not _is_residual_sum(call):
            continue
        sums += 1
        # a traced call's operations get new global names at every trace: number them
        name = f"add[{sums - 1}]" if traced and not isinstance(call.op, keras.layers.Layer) \
            else call.op.name
        a, b = list(dict.fromkeys(call.inputs))[:2]
        anc_a, anc_b = _ancestors(graph, a), _ancestors(graph, b)
        common = anc_a & anc_b
        if not common:
            continue
        fork = max(common, key=lambda t: _order_index(graph, t))
        after = _descendants(graph, fork) - {fork}
        segments = [_segment(graph, a, anc_a - anc_b, after),
                    _segment(graph, b, anc_b - anc_a, after)]
        counts = [len({id(c.op) for c in s if _weighted(c.op)}) for s in segments]
        if max(counts) == 0 or counts[0] == counts[1]:
            continue
        branch = segments[0] if counts[0] > counts[1] else segments[1]
        last = next(
            (c.op for c in branch
             if _weighted(c.op) or isinstance(c.op, keras.layers.BatchNormalization)),
            None,
        )
        found.append(_Branch(f"{prefix}{name}", branch, last, prefix))
    return found


def _inside(container: Any) -> tuple[list[Any], Any]:
    """A custom layer or nested model in a branch: its weighted leaves, and its last one."""
    contexts, graphs = read_model(container)
    leaves = [c.layer for c in contexts if _weighted(c.layer)]
    graph = graphs[0][2]
    last = None
    if graph is not None and graph.outputs:
        tensor, seen = graph.outputs[0], set()
        while tensor not in seen:
            seen.add(tensor)
            call = graph.producer(tensor)
            if call is None or not call.inputs:
                break
            op = call.op
            if _weighted(op) or isinstance(op, keras.layers.BatchNormalization):
                last = _inside(op)[1] if is_container(op) else op
                break
            tensor = call.inputs[0]
    return leaves, last


def _last_projection(layer: Any) -> Any:
    """The layer whose kernel a branch ends with: an attention's output projection."""
    if isinstance(layer, keras.layers.MultiHeadAttention):
        return layer.output_dense
    return layer


def _check_mode(mode: Any) -> str:
    if not isinstance(mode, str) or mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}; got {mode!r}")
    return mode


def zero_init_residual(model: keras.Model, *, fixup: bool = True, mode: str = "zero") -> Report:
    """Zeroes the last projection of each residual branch (and Fixup-scales the rest).

    A residual branch is found at every sum of two paths that fork from one tensor: an
    `Add` layer or a `+` (`keras.ops.add`) in a Functional or Sequential graph, inside a
    custom layer (a Transformer block's `x + attn(x)`, keras-hub's `TransformerEncoder`)
    or a subclassed model, whose `call` is traced symbolically. Of the two paths, the one
    with more weighted layers since the fork is the branch; the other is the skip (identity
    or a 1x1 projection). The branch's last weighted layer is zeroed, kernel and bias: for
    attention only its output projection, so the query, key and value projections keep
    their weights and still get gradients; a BatchNormalization that ends the branch gets
    gamma 0 instead (Goyal et al. 2017). So every block starts as the identity. With
    `fixup=True`, in branches without any normalization, the other weighted layers are
    multiplied by `L^(-1/(2m-2))` (Zhang et al. 2019; L branches, m weighted layers).
    Initializer attributes are set to `ResidualZeros` and `Fixup(...)`, so saved models
    describe what was done.

    `mode="gpt2"` instead multiplies each branch's last projection by `1/sqrt(L)`
    (Radford et al. 2019: `1/sqrt(2 n_layers)` for a Transformer's attention and MLP
    branches), and changes nothing else.

    Args:
        model: a built Keras model: Functional, Sequential or subclassed, with its residual
            sums in its graph or in custom layers.
        fixup: whether to apply the Fixup scaling (mode `"zero"`). Defaults to `True`.
        mode: `"zero"` (default) or `"gpt2"`.

    Returns:
        A `Report`: one row per branch (the sum, its layers, what was zeroed, m, scale).

    Example:
    >>> inputs = keras.Input((8,))
    >>> h = keras.layers.Dense(8, activation="relu")(inputs)
    >>> h = keras.layers.Dense(8, name="last")(h)
    >>> outputs = keras.layers.Add()([inputs, h])
    >>> report = keras_initkit.zero_init_residual(keras.Model(inputs, outputs))
    >>> row = report[0]
    >>> row["zeroed"], row["fixup scale"]
    ('last/kernel', 1.0)

    Reference:
    - [Goyal et al., 2017](https://arxiv.org/abs/1706.02677)
    - [Zhang, Dauphin & Ma, 2019](https://arxiv.org/abs/1901.09321)
    - [Radford et al., 2019](https://cdn.openai.com/better-language-models/language_models_are_unsupervised_multitask_learners.pdf)
      (GPT-2, section 2.3)
    """
    _validate.zero_init_residual_arguments(model, fixup)
    check_built(model)
    mode = _check_mode(mode)
    _, graphs = read_model(model)
    branches: list[_Branch] = []
    hidden = []
    for prefix, container, graph, why in graphs:
        if graph is None:
            hidden.append(why)
            continue
        traced = not (is_model(container) and (
            isinstance(container, keras.Sequential) or is_functional_model(container)))
        branches.extend(_branches(prefix, graph, traced))
    if not branches:
        detail = "".join(f"; not visible: {why}" for why in hidden)
        raise ValueError(
            f"no residual branch found in {model.name!r}: zero_init_residual looks for Add "
            "layers and `+` operations (in Functional graphs, custom layers and subclassed "
            "models) whose inputs are a skip path and a branch with more weighted layers"
            + detail
        )
    total = len(branches)
    rows, notes = [], [f"{total} residual branches (L = {total})"]
    for branch in branches:
        rows.append(_apply(branch, total, fixup, mode, notes))
    notes.extend(f"not visible: {why}" for why in hidden)
    columns = GPT2_COLUMNS if mode == "gpt2" else COLUMNS
    return Report(f"zero_init_residual({model.name})", columns, rows, notes)


def _apply(branch: _Branch, total: int, fixup: bool, mode: str, notes: list[str]) -> dict:
    layers = [c.op for c in branch.calls if isinstance(c.op, keras.layers.Layer)]
    weighted = []
    for lay in layers:
        if _weighted(lay):
            weighted.extend(_inside(lay)[0] if is_container(lay) else [lay])
    weighted = list({id(lay): lay for lay in weighted}.values())
    last = branch.last
    if last is not None and is_container(last):
        last = _inside(last)[1]
    names = " <- ".join(lay.name for lay in layers)
    m = len(weighted)
    if last is None or is_container(last):
        notes.append(f"{branch.name}: the branch ends in custom layer "
                     f"{getattr(last, 'name', '?')!r}; left unchanged")
        return {"add": branch.name, "branch": names, "zeroed": None, "scaled": None,
                "weighted layers": m, "fixup scale": 1.0, "scale": 1.0}
    normalized = isinstance(last, keras.layers.BatchNormalization)
    if mode == "gpt2":
        factor = 1.0 / math.sqrt(total)
        if normalized:
            last.gamma.assign(last.gamma.value * factor)
            what = f"{last.name}/gamma"
        else:
            target = _last_projection(last)
            for owner, variable, attribute in kernel_weights(target):
                base = getattr(owner, attribute, None)
                if isinstance(base, ki.Fixup):
                    continue  # scaled by an earlier call
                variable.assign(variable.value * factor)
                if isinstance(base, keras.initializers.Initializer):
                    setattr(owner, attribute, ki.Fixup(base, total, 2))  # L^(-1/2)
            what = _label(last, target)
        return {"add": branch.name, "branch": names, "scaled": what,
                "weighted layers": m, "scale": factor}
    if normalized:
        last.gamma.assign(keras.ops.zeros_like(last.gamma.value))
        last.gamma_initializer = ki.ResidualZeros()
        zeroed = f"{last.name}/gamma"
    else:
        target = _last_projection(last)
        for owner, variable, attribute in kernel_weights(target):
            variable.assign(keras.ops.zeros_like(variable.value))
            setattr(owner, attribute, ki.ResidualZeros())
        for owner, variable in bias_weights(target):
            variable.assign(keras.ops.zeros_like(variable.value))
            owner.bias_initializer = ki.ResidualZeros()
        zeroed = _label(last, target)
        if target is not last:
            notes.append(f"{branch.name}: {type(last).__name__} {last.name!r} keeps its "
                         "original initializer in its saved config (no public attribute)")
    has_norm = any(isinstance(lay, _NORMALIZATIONS) for lay in layers)
    scale = 1.0
    if fixup and not has_norm and m >= 2:
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
    return {"add": branch.name, "branch": names, "zeroed": zeroed,
            "weighted layers": m, "fixup scale": scale}


def _label(last: Any, target: Any) -> str:
    if target is last:
        return f"{last.name}/kernel"
    return f"{last.name}/{target.name}/kernel"
