"""Instance-level method patches that compose and always come off.

The statistics recorder (`stats/instrument.py`) and the one-pass output capture
(`_capture.py`) both wrap a method on one layer or model *instance* (never the
class). `patch(obj, name, make)` installs `make(original)` as `obj.name`; `Patch.undo()`
takes it off again, in any order relative to other patches on the same attribute:

- if the patch is the outermost one, the attribute the instance had before it (a user's
  own instance attribute, or an older patch) is put back, or the instance attribute is
  deleted when there was none;
- if another patch was installed over it, this one turns into a pass-through (it calls
  the original directly) and is unlinked when the outer one comes off.

So two tools can instrument the same layer, and removing one never removes the other.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

_MISSING = object()


class Patch:
    """One wrapper installed on `obj.<name>`; `undo()` is idempotent."""

    def __init__(self, obj: Any, name: str, make: Callable[[Any], Callable[..., Any]]) -> None:
        self.obj, self.name = obj, name
        self.previous = obj.__dict__.get(name, _MISSING)
        self.original = getattr(obj, name)
        hook = make(self.original)
        self.active = True
        original = self.original

        def wrapper(*args: Any, **kwargs: Any) -> Any:
            if wrapper.patch.active:  # type: ignore[attr-defined]
                return hook(*args, **kwargs)
            return original(*args, **kwargs)

        wrapper.patch = self  # type: ignore[attr-defined]
        self.wrapper = wrapper
        object.__setattr__(obj, name, wrapper)

    def undo(self) -> None:
        self.active = False
        _collapse(self.obj, self.name)


def _collapse(obj: Any, name: str) -> None:
    """Unlinks inactive patches from the top of `obj.<name>`'s chain."""
    while True:
        current = obj.__dict__.get(name, _MISSING)
        patch = getattr(current, "patch", None)
        if not isinstance(patch, Patch) or patch.active or patch.wrapper is not current:
            return
        if patch.previous is _MISSING:
            object.__delattr__(obj, name)
        else:
            object.__setattr__(obj, name, patch.previous)


def patch(obj: Any, name: str, make: Callable[[Any], Callable[..., Any]]) -> Patch:
    """Installs `make(original)` as `obj.<name>` on the instance; returns the `Patch`."""
    return Patch(obj, name, make)


def patches(obj: Any, name: str) -> list[Patch]:
    """The active patches on `obj.<name>`, outermost first."""
    found = []
    current = obj.__dict__.get(name, _MISSING)
    while isinstance(getattr(current, "patch", None), Patch):
        p = current.patch
        if p.active:
            found.append(p)
        current = p.previous
    return found
