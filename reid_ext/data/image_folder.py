"""A generic folder-per-identity image dataset, and the col780 presets built on it.

Layout: ``<dataset_dir>/<split>/<pid>/<cam>_<anything>.<ext>``, one folder per split
(train, query, gallery; names set by options). ``<cam>`` is an integer token; cameras are
numbered 0.. in the order of their tokens over all splits (col780's ``01``/``02`` -> 0/1).
Train identities are relabelled 0..N-1; query/gallery identities keep their folder number
(or, if any folder name is not a number, get a label shared by query and gallery).

Options (``reid_ext.data.options.set_dataset_options(name, ...)``): ``data_dir`` (the dataset
folder), ``train`` / ``query`` / ``gallery`` (split folders relative to it),
``drop_query_copies`` (remove from the gallery every image byte-identical to a query image),
``mask_dir`` / ``keypoints_dir`` (aux-map caches, exposed as ``aux_dirs``) and
``keypoint_format``.

col780 (``<root>/col780/data/{train,val/query,val/gallery}``): ``col780`` is the
``as_published`` protocol, whose gallery holds byte-identical copies of 17 of its 28 queries;
``col780_clean`` drops those copies, matched by content hash so the match is exact. Dropping
same-identity same-camera gallery images is left to the evaluator, which does it per query.
"""
from __future__ import annotations

import hashlib
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from reid_ext import host
from reid_ext.data.options import get_dataset_options
from reid_ext.registry import DATASETS

logger = logging.getLogger(__name__)

IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"})
LAYOUT = "<split>/<pid>/<cam>_<anything>.<ext>"


class DatasetLayoutError(ValueError):
    """A file or folder that does not follow the expected layout."""


@dataclass(frozen=True)
class FolderImage:
    path: str
    pid: str
    cam: str


def _is_image(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_EXTENSIONS


def scan_split(split_dir: Path) -> list[FolderImage]:
    """Every image of one split folder, sorted by path; hidden and non-image files are skipped."""
    if not split_dir.is_dir():
        raise FileNotFoundError(f"split folder '{split_dir}' does not exist (layout: {LAYOUT})")
    images = []
    for pid_dir in sorted(split_dir.iterdir()):
        if pid_dir.name.startswith("."):
            continue
        if not pid_dir.is_dir():
            if _is_image(pid_dir):
                raise DatasetLayoutError(
                    f"'{pid_dir}' lies directly in the split folder; expected {LAYOUT}"
                )
            continue
        for path in sorted(pid_dir.iterdir()):
            if path.name.startswith("."):
                continue
            if path.is_dir():
                raise DatasetLayoutError(f"unexpected folder '{path}'; expected {LAYOUT}")
            if not _is_image(path):
                continue
            cam, sep, _ = path.stem.partition("_")
            if not sep or not cam.isdigit():
                raise DatasetLayoutError(
                    f"'{path}' does not match {LAYOUT}: its name must start with a numeric "
                    f"camera token and '_'"
                )
            images.append(FolderImage(str(path), pid_dir.name, cam))
    if not images:
        raise DatasetLayoutError(f"no images in split folder '{split_dir}' (layout: {LAYOUT})")
    return images


def _sort_key(token: str) -> tuple[int, int | str]:
    return (0, int(token)) if token.isdigit() else (1, token)


def _file_digest(path: str) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def drop_copies(gallery: list[FolderImage], query: list[FolderImage]) -> list[FolderImage]:
    """``gallery`` without the images whose bytes equal those of some query image."""
    query_digests = {_file_digest(item.path) for item in query}
    return [item for item in gallery if _file_digest(item.path) not in query_digests]


@DATASETS.register("image_folder")
class ImageFolderDataset(host.get_host().ImageDataset):
    """``<split>/<pid>/<cam>_<anything>.<ext>`` folders as a torchreid image dataset."""

    name = "image_folder"
    option_sources: tuple[str, ...] = ("image_folder",)
    defaults: dict[str, Any] = {
        "data_dir": None,
        "train": "train",
        "query": "query",
        "gallery": "gallery",
        "drop_query_copies": False,
        "mask_dir": None,
        "keypoints_dir": None,
        "keypoint_format": "coco17",
    }
    protocol = "as_published"

    def __init__(self, root: str = "", **kwargs: Any) -> None:
        options = self.options()
        root = os.path.abspath(os.path.expanduser(root or "."))
        self.dataset_dir = os.path.abspath(
            os.path.expanduser(options["data_dir"] or self.default_dataset_dir(root))
        )
        if not os.path.isdir(self.dataset_dir):
            raise FileNotFoundError(
                f"{self.name} dataset not found: expected the folder '{self.dataset_dir}' "
                f"(pass root=, or set the dataset option data_dir)"
            )
        splits = {
            split: scan_split(Path(self.dataset_dir, options[split]))
            for split in ("train", "query", "gallery")
        }
        self.num_dropped_copies = 0
        if options["drop_query_copies"]:
            kept = drop_copies(splits["gallery"], splits["query"])
            self.num_dropped_copies = len(splits["gallery"]) - len(kept)
            splits["gallery"] = kept
            self.protocol = "clean"
            logger.info(
                "%s: dropped %d gallery images byte-identical to a query image",
                self.name, self.num_dropped_copies,
            )
        self.aux_dirs = {
            kind: options[f"{kind}_dir"] for kind in ("mask", "keypoints") if options[f"{kind}_dir"]
        }
        self.keypoint_format = options["keypoint_format"]
        train, query, gallery = self._label(splits)
        super().__init__(train, query, gallery, **kwargs)

    @classmethod
    def options(cls) -> dict[str, Any]:
        """Defaults overridden by the options of each name in ``option_sources``, in order."""
        merged = dict(cls.defaults)
        for source in cls.option_sources:
            given = get_dataset_options(source)
            unknown = sorted(set(given) - set(merged))
            if unknown:
                raise KeyError(
                    f"unknown option(s) {unknown} for dataset '{source}'; known: {sorted(merged)}"
                )
            merged.update(given)
        return merged

    def default_dataset_dir(self, root: str) -> str:
        return root

    @staticmethod
    def _label(splits: dict[str, list[FolderImage]]) -> tuple[list, list, list]:
        """(impath, pid, camid) lists: train pids relabelled, cameras indexed by token order."""
        cams = sorted({item.cam for items in splits.values() for item in items}, key=_sort_key)
        cam_index = {cam: i for i, cam in enumerate(cams)}
        train_pids = sorted({item.pid for item in splits["train"]}, key=_sort_key)
        train_label = {pid: i for i, pid in enumerate(train_pids)}
        test_pids = sorted(
            {item.pid for split in ("query", "gallery") for item in splits[split]}, key=_sort_key
        )
        if all(pid.isdigit() for pid in test_pids):
            test_label = {pid: int(pid) for pid in test_pids}
        else:
            test_label = {pid: i for i, pid in enumerate(test_pids)}

        def rows(items: list[FolderImage], label: dict[str, int]) -> list[tuple[str, int, int]]:
            return [(item.path, label[item.pid], cam_index[item.cam]) for item in items]

        return (
            rows(splits["train"], train_label),
            rows(splits["query"], test_label),
            rows(splits["gallery"], test_label),
        )

    def show_summary(self) -> None:
        super().show_summary()
        if self.num_dropped_copies:
            print(f"  ({self.protocol} protocol: {self.num_dropped_copies} gallery images "
                  f"identical to a query image dropped)")


@DATASETS.register("col780")
class Col780(ImageFolderDataset):
    """COL780 person re-ID, ``as_published`` protocol (gallery keeps the query copies)."""

    name = "col780"
    option_sources = ("col780",)
    defaults = {
        **ImageFolderDataset.defaults,
        "train": "data/train",
        "query": "data/val/query",
        "gallery": "data/val/gallery",
    }

    def default_dataset_dir(self, root: str) -> str:
        return os.path.join(root, "col780")


@DATASETS.register("col780_clean")
class Col780Clean(Col780):
    """COL780, ``clean`` protocol: gallery copies of query images removed by content hash.

    Reads the ``col780`` options, then the ``col780_clean`` ones.
    """

    name = "col780_clean"
    option_sources = ("col780", "col780_clean")
    defaults = {**Col780.defaults, "drop_query_copies": True}
