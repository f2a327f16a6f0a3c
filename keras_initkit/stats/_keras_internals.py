"""Every private Keras attribute the statistics instrumentation touches, in one place.

Keras has no public API to add state to a built layer, so the instrumentation goes
through the private name below. `check()` verifies
they still exist; `tests/stats/test_keras_internals.py` calls it, so a Keras release
that renames one fails that test with a message naming the attribute, instead of
breaking users' training runs.
"""

from __future__ import annotations

from typing import Any

import keras

# (what holds it, attribute, what we use it for)
PRIVATE_API = (
    (
        keras.layers.Layer,
        "_seed_generators",
        (
            "attach the accumulator as layer state (like a SeedGenerator's), so it is part "
            "of `non_trainable_variables` (JAX threads it through the train step) but not "
            "of `weights` (get_weights, set_weights and saved files never see it)"
        ),
    ),
)


class KerasInternalsChanged(RuntimeError):
    """A private Keras attribute the instrumentation needs is gone."""


def check() -> None:
    """Raises `KerasInternalsChanged` naming any private attribute this Keras lacks.

    It also checks the behaviour relied on: state attached this way is a non-trainable
    variable of the layer and not one of its weights.
    """
    layer = keras.layers.Dense(1)
    layer.build((None, 1))
    missing = [
        f"{owner.__name__}.{name} ({why})"
        for owner, name, why in PRIVATE_API
        if not hasattr(layer, name)
    ]
    if not missing:
        variable = keras.Variable(0.0, trainable=False, name="probe")
        attach_state(layer, variable)
        seen = [v is variable for v in layer.non_trainable_variables]
        hidden = all(v is not variable for v in layer.weights)
        detach_state(layer, variable)
        if not (any(seen) and hidden):
            missing.append("Layer._seed_generators no longer feeds `variables` only")
    if missing:
        raise KerasInternalsChanged(
            f"keras {keras.__version__} no longer has: {', '.join(missing)}. "
            "keras_initkit's ActivationStats needs an update for this Keras release."
        )


class _State:
    """Holds a variable where Keras looks for a SeedGenerator's `.state`."""

    def __init__(self, variable: keras.Variable) -> None:
        self.state = variable


def attach_state(layer: Any, variable: keras.Variable) -> None:
    """Makes `variable` part of `layer.variables` (not `layer.weights`) until detached."""
    list.append(layer._seed_generators, _State(variable))


def detach_state(layer: Any, variable: keras.Variable) -> None:
    generators = layer._seed_generators
    for index, item in enumerate(list(generators)):
        if isinstance(item, _State) and item.state is variable:
            list.pop(generators, index)
            return


def local_values(model: keras.Model, variable: keras.Variable) -> list[Any]:
    """The per-replica values of `variable` under `tf.distribute`, else `[value]`."""
    strategy = getattr(model, "distribute_strategy", None) if _is_tensorflow() else None
    if strategy is not None and strategy.num_replicas_in_sync > 1:
        return list(strategy.experimental_local_results(variable.value))
    return [variable.value]


def assign_locals(model: keras.Model, variable: keras.Variable, value: Any) -> None:
    """Assigns `value` to every replica's copy of `variable`."""
    strategy = getattr(model, "distribute_strategy", None) if _is_tensorflow() else None
    if strategy is not None and strategy.num_replicas_in_sync > 1:
        for local in strategy.experimental_local_results(variable.value):
            local.assign(value)
        return
    variable.assign(value)


def replicas(model: keras.Model) -> int:
    """How many `tf.distribute` replicas train `model` in sync (1 on other backends)."""
    strategy = getattr(model, "distribute_strategy", None) if _is_tensorflow() else None
    return 1 if strategy is None else int(strategy.num_replicas_in_sync)


def strategy_scope(model: keras.Model) -> Any:
    """The scope new variables must be created in (the model's distribution strategy)."""
    strategy = getattr(model, "distribute_strategy", None) if _is_tensorflow() else None
    if strategy is not None:
        return strategy.scope()
    import contextlib

    return contextlib.nullcontext()


def _is_tensorflow() -> bool:
    return keras.backend.backend() == "tensorflow"
