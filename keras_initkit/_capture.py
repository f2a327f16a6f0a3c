"""Capturing layer outputs during one eager forward pass, on every backend.

Each selected layer's `call` is wrapped on the instance (not the class) for the duration
of a `with` block, through the composable patcher in `keras_initkit._patch`, and taken
off after, so the model object is left as it was, including any other wrapper already on
it. This works for Sequential, Functional, subclassed and nested models alike, since
every one of them reaches its layers through `layer.__call__` -> `layer.call`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import keras

from keras_initkit import _patch


def _first_tensor(outputs: Any) -> Any:
    flat = keras.tree.flatten(outputs)
    return flat[0] if flat else None


@contextlib.contextmanager
def capture_outputs(layers: list[Any]) -> Iterator[dict[int, Any]]:
    """Yields a dict `id(layer) -> last output tensor`, filled by forward passes in the block."""
    records: dict[int, Any] = {}
    installed: list[_patch.Patch] = []
    seen: set[int] = set()
    try:
        for layer in layers:
            if id(layer) in seen:
                continue
            seen.add(id(layer))

            def make(original: Any, _key: int = id(layer)) -> Any:
                def capturing(*args: Any, **kwargs: Any) -> Any:
                    outputs = original(*args, **kwargs)
                    records[_key] = _first_tensor(outputs)
                    return outputs

                return capturing

            installed.append(_patch.patch(layer, "call", make))
        yield records
    finally:
        for item in reversed(installed):
            item.undo()


@contextlib.contextmanager
def intercept_calls(layers: list[Any], hook: Any) -> Iterator[None]:
    """Within the block, `layer.call(...)` runs `hook(layer, original_call, args, kwargs)`.

    The hook calls `original_call(*args, **kwargs)` as often as it needs and returns the
    outputs the rest of the model sees (LSUV rescales a layer during the pass).
    """
    installed: list[_patch.Patch] = []
    seen: set[int] = set()
    try:
        for layer in layers:
            if id(layer) in seen:
                continue
            seen.add(id(layer))

            def make(original: Any, _layer: Any = layer) -> Any:
                def intercepting(*args: Any, **kwargs: Any) -> Any:
                    return hook(_layer, original, args, kwargs)

                return intercepting

            installed.append(_patch.patch(layer, "call", make))
        yield
    finally:
        for item in reversed(installed):
            item.undo()
