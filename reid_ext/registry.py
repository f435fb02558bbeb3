"""Name -> object registries for everything reid_ext plugs into torchreid.

One small :class:`Registry` class serves all kinds of component. A registration carries its
metadata (``LOSSES.register("softmax", reads="logits")``), and listeners hear of every
registration, past and future: that is how ``reid_ext.host`` pushes MODELS, DATASETS and
SAMPLERS into torchreid (this module knows nothing of the host).
"""
from __future__ import annotations

import difflib
import inspect
from collections.abc import Callable, Iterator, Mapping
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
    """A named table of components with a decorator API, metadata and listeners.

    Registering the same object under the same name twice is a no-op (module reloads are
    harmless); registering a *different* object under a taken name is an error unless
    ``override=True``.
    """

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._table: dict[str, Any] = {}
        self._meta: dict[str, dict[str, Any]] = {}
        self._listeners: list[Callable[[str, Any], None]] = []

    def register(self, name: str | None = None, obj: Any = None, *, override: bool = False,
                 **metadata: Any) -> Any:
        """Register ``obj`` under ``name`` with ``metadata``; without ``obj`` act as a decorator."""
        if obj is None:

            def decorator(target: T) -> T:
                self.register(name or target.__name__, target, override=override, **metadata)
                return target

            return decorator
        key = name or obj.__name__
        old = self._table.get(key)
        if old is not None and not override and not same_object(old, obj):
            raise ValueError(
                f"{self.kind} name '{key}' is already registered to {describe(old)}; "
                f"pass override=True to replace it with {describe(obj)}"
            )
        self._table[key] = obj
        self._meta[key] = dict(metadata)
        for listener in self._listeners:
            listener(key, obj)
        return obj

    def subscribe(self, listener: Callable[[str, Any], None]) -> None:
        """Call ``listener(name, obj)`` for every registration, existing ones first; once."""
        if any(same_object(listener, old) for old in self._listeners):
            return
        self._listeners.append(listener)
        for key, obj in self.items():
            listener(key, obj)

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

    def meta(self, name: str) -> dict[str, Any]:
        """The metadata ``name`` was registered with (a copy)."""
        self.get(name)
        return dict(self._meta.get(name, {}))

    def build(self, name: str, *args: Any, context: Mapping[str, Any] | None = None,
              **kwargs: Any) -> Any:
        """Call the component ``name`` with ``kwargs`` plus the entries of ``context`` that its
        signature accepts (what the caller can offer, e.g. ``num_classes``, ``use_gpu``).

        ``kwargs`` are the user's and are passed as they are: a misspelt one still fails.
        """
        factory = self.get(name)
        offered = {k: v for k, v in (context or {}).items() if k not in kwargs}
        return factory(*args, **accepted_kwargs(factory, offered), **kwargs)

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


def accepted_kwargs(fn: Callable[..., Any], kwargs: Mapping[str, Any]) -> dict[str, Any]:
    """The subset of ``kwargs`` that ``fn`` names as parameters.

    A catch-all ``**kwargs`` does not count: offered extras (torchreid's ``use_gpu``, the
    engine's ``num_classes``) reach a factory only when it asks for them by name, so they never
    leak through ``**kwargs`` into a constructor that does not know them.
    """
    names = {p.name for p in inspect.signature(fn).parameters.values()
             if p.kind in (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)}
    return {k: v for k, v in kwargs.items() if k in names}


def call_accepting(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """Call ``fn`` with only the keyword arguments it accepts (the host passes extras such as
    ``use_gpu``; loss factories need not take ``num_classes``)."""
    return fn(*args, **accepted_kwargs(fn, kwargs))


def same_object(a: Any, b: Any) -> bool:
    """True for the same object, or the same qualified name (a reloaded module's new copy)."""
    if a is b:
        return True
    return (
        getattr(a, "__module__", None) == getattr(b, "__module__", None)
        and getattr(a, "__qualname__", None) == getattr(b, "__qualname__", None)
        and getattr(a, "__qualname__", None) is not None
    )


def describe(obj: Any) -> str:
    return f"{getattr(obj, '__module__', '?')}.{getattr(obj, '__qualname__', repr(obj))}"


MODELS = Registry("model")
LOSSES = Registry("loss")
SAMPLERS = Registry("sampler")
DATASETS = Registry("dataset")
MASK_SOURCES = Registry("mask source")
KEYPOINT_SOURCES = Registry("keypoint source")
