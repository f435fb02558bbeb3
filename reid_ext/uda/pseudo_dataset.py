"""The pseudo-labelled target set, served to torchreid's ``ImageDataManager`` as ``uda_pseudo``.

Each refinement step writes a labels file (JSON: ``train`` = ``[path, pseudo_label, camid]`` of
the clustered target images, outliers left out or given their own labels; ``query``/``gallery``
= the target's test split, which the host's ``Dataset`` requires). The loop points the dataset at
that file with ``set_dataset_options("uda_pseudo", labels_file=...)`` and builds a data manager
with ``sources=["uda_pseudo"]``; the host's samplers (``pk`` included) then see contiguous
pseudo-identities like any labelled training set.
"""
from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from reid_ext import host
from reid_ext.data.options import get_dataset_options
from reid_ext.registry import DATASETS

PSEUDO_DATASET = "uda_pseudo"
Item = tuple[str, int, int]


def write_pseudo_labels(path: str | Path, train: Sequence[Sequence[Any]], labels: np.ndarray,
                        query: Sequence[Sequence[Any]], gallery: Sequence[Sequence[Any]],
                        info: dict[str, Any] | None = None) -> Path:
    """Write the labels file atomically; items with ``label < 0`` (dropped outliers) are left out.

    ``train`` are the target's ``(path, pid, camid, ...)`` items in the order the labels were
    computed; their own pids are ignored.
    """
    labels = np.asarray(labels)
    if len(labels) != len(train):
        raise ValueError(f"got {len(labels)} pseudo-labels for {len(train)} target images")
    kept = [[str(item[0]), int(label), int(item[2])]
            for item, label in zip(train, labels.tolist()) if label >= 0]
    if not kept:
        raise ValueError("every target image is an outlier: no pseudo-labelled image to train on")
    payload = {"train": kept, "query": [[str(i[0]), int(i[1]), int(i[2])] for i in query],
               "gallery": [[str(i[0]), int(i[1]), int(i[2])] for i in gallery],
               "info": info or {}}
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    with os.fdopen(fd, "w") as f:
        json.dump(payload, f)
    os.replace(tmp, path)
    return path


def read_pseudo_labels(path: str | Path) -> dict[str, list[Item]]:
    """``{"train", "query", "gallery"}`` lists of ``(path, pid, camid)`` from a labels file."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"pseudo-labels file '{path}' does not exist")
    payload = json.loads(path.read_text())
    missing = [k for k in ("train", "query", "gallery") if not payload.get(k)]
    if missing:
        raise ValueError(f"pseudo-labels file '{path}' has no entries for {missing}")
    return {k: [(str(p), int(pid), int(cam)) for p, pid, cam in payload[k]]
            for k in ("train", "query", "gallery")}


@DATASETS.register(PSEUDO_DATASET)
class PseudoLabelledDataset(host.get_host().ImageDataset):
    """Target images with cluster pseudo-labels; the file comes from the dataset options."""

    def __init__(self, root: str = "", **kwargs: Any) -> None:
        options = get_dataset_options(PSEUDO_DATASET)
        labels_file = options.get("labels_file")
        if not labels_file:
            raise ValueError(f"dataset '{PSEUDO_DATASET}' needs a labels file: "
                             f"set_dataset_options('{PSEUDO_DATASET}', labels_file=...) or "
                             f"data.options.{PSEUDO_DATASET}.labels_file in the config")
        split = read_pseudo_labels(labels_file)
        self.labels_file = str(labels_file)
        super().__init__(split["train"], split["query"], split["gallery"], **kwargs)
