"""The images of a dataset, grouped by the root their cache is keyed against.

Extraction and visualisation tools name a dataset (``--dataset D --root R``) or a training
config (``--config-file C``: every dataset of ``data.sources`` and ``data.targets``, with
``data.options``). Datasets that share a folder (``col780`` and ``col780_clean``) share one
cache, so they are merged into one :class:`DatasetImages`.
"""
from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class DatasetImages:
    """Every image (all splits, each once, sorted) of one dataset root."""

    names: list[str]
    root: Path
    impaths: list[str]
    aux_dirs: dict[str, str] = field(default_factory=dict)
    keypoint_format: str | None = None

    @property
    def name(self) -> str:
        return "+".join(self.names)


def _dataset_class(name: str) -> type:
    from reid_ext.registry import DATASETS

    if name in DATASETS:
        return DATASETS.get(name)
    from reid_ext import host

    table = host.get_host().image_dataset_table()
    if name not in table:
        DATASETS.get(name)  # raises UnknownNameError listing reid_ext's names
    return table[name]


def load_dataset_images(name: str, root: str | os.PathLike,
                        options: Mapping[str, Any] | None = None) -> DatasetImages:
    """Build dataset ``name`` under ``root`` (with its dataset ``options``) and list its images."""
    from reid_ext.data.options import set_dataset_options

    if options:
        set_dataset_options(name, **dict(options))
    dataset = _dataset_class(name)(root=os.fspath(root), verbose=False)
    impaths = sorted({item[0] for split in (dataset.train, dataset.query, dataset.gallery)
                      for item in split})
    return DatasetImages(
        names=[name],
        root=Path(getattr(dataset, "dataset_dir", root)).resolve(),
        impaths=impaths,
        aux_dirs=dict(getattr(dataset, "aux_dirs", {}) or {}),
        keypoint_format=getattr(dataset, "keypoint_format", None),
    )


def merge_by_root(groups: Sequence[DatasetImages]) -> list[DatasetImages]:
    """One entry per distinct root, in first-seen order, image lists merged."""
    merged: dict[Path, DatasetImages] = {}
    for group in groups:
        if group.root not in merged:
            merged[group.root] = DatasetImages(list(group.names), group.root, list(group.impaths),
                                               dict(group.aux_dirs), group.keypoint_format)
            continue
        known = merged[group.root]
        known.names += [n for n in group.names if n not in known.names]
        known.impaths = sorted(set(known.impaths) | set(group.impaths))
        for kind, folder in group.aux_dirs.items():
            known.aux_dirs.setdefault(kind, folder)
    return list(merged.values())


def config_dataset_images(config_file: str | os.PathLike,
                          opts: Sequence[str] = ()) -> list[DatasetImages]:
    """The datasets of a training config (``data.sources`` + ``data.targets``), by root."""
    from reid_ext.config import load_config
    from reid_ext.data.options import clear_dataset_options, set_dataset_options

    cfg = load_config(config_file, list(opts))
    clear_dataset_options()
    for name, options in cfg.data.options.items():
        set_dataset_options(name, **dict(options))
    names = list(dict.fromkeys([*cfg.data.sources, *cfg.data.targets]))
    root = Path(cfg.data.root)
    if not root.is_absolute():
        # configs give data.root relative to the repository root (where tools run from)
        root = Path.cwd() / root
    return merge_by_root([load_dataset_images(name, root) for name in names])
