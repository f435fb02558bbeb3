"""Name -> object registries for everything reid_ext plugs into torchreid.

One small :class:`Registry` class serves all kinds of component. ``register_into_host()``
pushes MODELS, DATASETS and SAMPLERS into torchreid's own factories so that the host's
``build_model``, ``ImageDataManager`` and sampler builder know the new names.
"""
from __future__ import annotations

import difflib
from collections.abc import Iterator
from typing import Any, TypeVar

T = TypeVar("T")


class UnknownNameError(KeyError):
    """Raised for an unregistered name; the message lists the known names, closest first."""

    def __str__(self) -> str:  # KeyError quotes its message; keep it readable.
        return str(self.args[0]) if self.args else ""


def closest_first(name: str, candidates: list[str]) -> list[str]:
    """Return ``candidates`` ordered so that the closest matches to ``name`` come first."""
    close = difflib.get_close_matches(name, candidates, n=len(candidates), cutoff=0.0)
    return close + sorted(set(candidates) - set(close))


class Registry:
    """A named table of components with a decorator API.

    Registering the same object under the same name twice is a no-op (module reloads are
    harmless); registering a *different* object under a taken name is an error unless
    ``override=True``.
    """

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._table: dict[str, Any] = {}

    def register(
        self, name: str | None = None, obj: Any = None, *, override: bool = False
    ) -> Any:
        """Register ``obj`` under ``name``; without ``obj`` act as a decorator."""
        if obj is None:

            def decorator(target: T) -> T:
                self.register(name or target.__name__, target, override=override)
                return target

            return decorator
        key = name or obj.__name__
        old = self._table.get(key)
        if old is not None and not override and not _same_object(old, obj):
            raise ValueError(
                f"{self.kind} name '{key}' is already registered to {_describe(old)}; "
                f"pass override=True to replace it with {_describe(obj)}"
            )
        self._table[key] = obj
        return obj

    def get(self, name: str) -> Any:
        """Return the component called ``name`` or raise :class:`UnknownNameError`."""
        try:
            return self._table[name]
        except KeyError:
            known = closest_first(name, list(self._table))
            raise UnknownNameError(
                f"unknown {self.kind} '{name}'; known {self.kind}s (closest first): "
                + ", ".join(known)
            ) from None

    def build(self, name: str, *args: Any, **kwargs: Any) -> Any:
        """Look ``name`` up and call it with the given arguments."""
        return self.get(name)(*args, **kwargs)

    def names(self) -> list[str]:
        return sorted(self._table)

    def items(self) -> list[tuple[str, Any]]:
        return sorted(self._table.items())

    def __contains__(self, name: object) -> bool:
        return name in self._table

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self._table)

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}, {self.names()})"


def _same_object(a: Any, b: Any) -> bool:
    """True for the same object, or the same qualified name (a reloaded module's new copy)."""
    if a is b:
        return True
    return (
        getattr(a, "__module__", None) == getattr(b, "__module__", None)
        and getattr(a, "__qualname__", None) == getattr(b, "__qualname__", None)
        and getattr(a, "__qualname__", None) is not None
    )


def _describe(obj: Any) -> str:
    return f"{getattr(obj, '__module__', '?')}.{getattr(obj, '__qualname__', repr(obj))}"


MODELS = Registry("model")
LOSSES = Registry("loss")
SAMPLERS = Registry("sampler")
DATASETS = Registry("dataset")
MASK_SOURCES = Registry("mask source")
KEYPOINT_SOURCES = Registry("keypoint source")


def register_into_host() -> None:
    """Push MODELS, DATASETS and SAMPLERS into torchreid; safe to call any number of times."""
    from reid_ext import host

    for name, factory in MODELS.items():
        host.register_model(name, factory)
    for name, dataset_cls in DATASETS.items():
        host.register_dataset(name, dataset_cls)
    host.install_sampler_hook(SAMPLERS)
