"""Per-dataset options that torchreid's ImageDataManager has no argument for.

torchreid constructs datasets itself with a fixed set of keyword arguments, so options such as
the synthetic set's size or col780's protocol are stored here, by dataset name, and read by the
dataset class when torchreid builds it. The tools fill this from the ``data.options`` config.
"""
from __future__ import annotations

from typing import Any

_OPTIONS: dict[str, dict[str, Any]] = {}


def set_dataset_options(name: str, **options: Any) -> None:
    """Replace the options of dataset ``name``."""
    _OPTIONS[name] = dict(options)


def get_dataset_options(name: str) -> dict[str, Any]:
    """The options set for ``name`` (an empty dict if none)."""
    return dict(_OPTIONS.get(name, {}))


def clear_dataset_options() -> None:
    _OPTIONS.clear()
