"""Capturing layer outputs during one eager forward pass, on every backend.

Each selected layer's `call` is wrapped on the instance (not the class) for the duration
of a `with` block and restored after, so the model object is left exactly as it was.
This works for Sequential, Functional, subclassed and nested models alike, since every
one of them reaches its layers through `layer.__call__` -> `layer.call`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import keras


def _first_tensor(outputs: Any) -> Any:
    flat = keras.tree.flatten(outputs)
    return flat[0] if flat else None


@contextlib.contextmanager
def capture_outputs(layers: list[Any]) -> Iterator[dict[int, Any]]:
    """Yields a dict `id(layer) -> last output tensor`, filled by forward passes in the block."""
    records: dict[int, Any] = {}
    patched: list[Any] = []
    try:
        for layer in layers:
            if id(layer) in {id(p) for p in patched}:
                continue
            original = layer.call

            def wrapped(*args: Any, _original: Any = original, _key: int = id(layer),
                        **kwargs: Any) -> Any:
                outputs = _original(*args, **kwargs)
                records[_key] = _first_tensor(outputs)
                return outputs

            object.__setattr__(layer, "call", wrapped)
            patched.append(layer)
        yield records
    finally:
        for layer in patched:
            object.__delattr__(layer, "call")


@contextlib.contextmanager
def intercept_calls(layers: list[Any], hook: Any) -> Iterator[None]:
    """Within the block, `layer.call(...)` runs `hook(layer, original_call, args, kwargs)`.

    The hook calls `original_call(*args, **kwargs)` as often as it needs and returns the
    outputs the rest of the model sees (LSUV rescales a layer during the pass).
    """
    patched: list[Any] = []
    try:
        for layer in layers:
            if any(layer is p for p in patched):
                continue
            original = layer.call

            def wrapped(*args: Any, _original: Any = original, _layer: Any = layer,
                        **kwargs: Any) -> Any:
                return hook(_layer, _original, args, kwargs)

            object.__setattr__(layer, "call", wrapped)
            patched.append(layer)
        yield
    finally:
        for layer in patched:
            object.__delattr__(layer, "call")
