"""Every private Keras attribute the statistics instrumentation touches, in one place.

Keras has no public API to add state to a built layer or to read per-replica values,
so the instrumentation goes through the few private names below. `check()` verifies
they still exist; `tests/stats/test_keras_internals.py` calls it, so a Keras release
that renames one fails that test with a message naming the attribute, instead of
breaking users' training runs.
"""

from __future__ import annotations

from typing import Any

import keras

# (what holds it, attribute, what we use it for)
PRIVATE_API = (
    (keras.layers.Layer, "_tracker", "unlock/lock a built layer's variable tracker"),
    (keras.layers.Layer, "_track_variable", "add the accumulator to a built layer's state"),
    (keras.layers.Layer, "_untrack_variable", "remove it again when training ends"),
    (keras.layers.Layer, "_non_trainable_variables", "hide it from save/load mid-fit"),
)


class KerasInternalsChanged(RuntimeError):
    """A private Keras attribute the instrumentation needs is gone."""


def check() -> None:
    """Raises `KerasInternalsChanged` naming any private attribute this Keras lacks."""
    layer = keras.layers.Dense(1)
    layer.build((None, 1))
    missing = [
        f"{owner.__name__}.{name} ({why})"
        for owner, name, why in PRIVATE_API
        if not hasattr(layer, name)
    ]
    if missing:
        raise KerasInternalsChanged(
            f"keras {keras.__version__} no longer has: {', '.join(missing)}. "
            "keras_initkit's ActivationStats needs an update for this Keras release."
        )


def track_variable(layer: Any, variable: Any) -> None:
    """Adds `variable` to the state of an already-built `layer` (as LoRA does in Keras)."""
    tracker = layer._tracker
    locked = tracker.locked
    tracker.unlock()
    try:
        layer._track_variable(variable)
    finally:
        if locked:
            tracker.lock()


def untrack_variable(layer: Any, variable: Any) -> None:
    layer._untrack_variable(variable)


def hide_from_saving(layer: Any, variable: Any) -> None:
    """While instrumented, `layer` saves and loads as if `variable` did not exist.

    So a checkpoint written mid-fit (e.g. by `ModelCheckpoint`) loads into the plain model.
    The patch is on the instance and is undone by `unhide_from_saving`.
    """
    for method_name in ("save_own_variables", "load_own_variables"):
        method = getattr(layer, method_name)

        def without_variable(store: Any, _method: Any = method) -> Any:
            hidden = layer._non_trainable_variables
            index = next((i for i, v in enumerate(hidden) if v is variable), None)
            if index is not None:
                list.pop(hidden, index)
            try:
                return _method(store)
            finally:
                if index is not None:
                    list.insert(hidden, index, variable)

        object.__setattr__(layer, method_name, without_variable)


def unhide_from_saving(layer: Any) -> None:
    for method_name in ("save_own_variables", "load_own_variables"):
        layer.__dict__.pop(method_name, None)


def local_values(model: Any, variable: Any) -> list[Any]:
    """The per-replica values of `variable` under `tf.distribute`, else `[value]`."""
    strategy = getattr(model, "distribute_strategy", None) if _is_tensorflow() else None
    if strategy is not None and strategy.num_replicas_in_sync > 1:
        return list(strategy.experimental_local_results(variable.value))
    return [variable.value]


def assign_locals(model: Any, variable: Any, value: Any) -> None:
    """Assigns `value` to every replica's copy of `variable`."""
    strategy = getattr(model, "distribute_strategy", None) if _is_tensorflow() else None
    if strategy is not None and strategy.num_replicas_in_sync > 1:
        for local in strategy.experimental_local_results(variable.value):
            local.assign(value)
        return
    variable.assign(value)


def strategy_scope(model: Any) -> Any:
    """The scope new variables must be created in (the model's distribution strategy)."""
    strategy = getattr(model, "distribute_strategy", None) if _is_tensorflow() else None
    if strategy is not None:
        return strategy.scope()
    import contextlib

    return contextlib.nullcontext()


def _is_tensorflow() -> bool:
    return keras.backend.backend() == "tensorflow"
