"""Serve a torchreid image dataset together with its masks, keypoints and part regions.

:class:`AuxMapDataset` wraps a host dataset's ``data`` list ``[(impath, pid, camid, dsetid)]``
and returns torchreid's item dict plus ``mask`` [1, H, W], ``keypoints`` [K, 3] and/or
``parts`` [P, H, W] and/or ``seg`` [H, W], all moved by the same joint transform as the image.
:func:`attach_aux_maps` swaps an ``ImageDataManager``'s loaders for loaders over such wrappers.

Missing maps (an image with no entry in its cache) never pass silently. With
``on_missing="fallback"`` a missing mask becomes all ones (the whole image is foreground) and
missing keypoints become zeros with score 0 (so every part region built from them is empty);
the misses are counted at construction, by scanning the cache index once in the main process
(DataLoader workers hold copies, so counting there would be lost), exposed as
``missing_counts`` and logged once by :meth:`AuxMapDataset.report`. With ``on_missing="error"``
construction fails, naming the first missing image and the cache directory.
"""
from __future__ import annotations

import logging
import os
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset
from torchvision.transforms import v2

from reid_ext.data.parts import get_part_scheme, keypoints_to_parts
from reid_ext.data.tiger_maps import get_structure, keypoints_to_class_map
from reid_ext.data.transforms import ImageOnly, JointTransform, build_joint_transforms
from reid_ext.images import UnreadableImageError, read_rgb_image
from reid_ext.preprocess.cache import (
    CacheError,
    KeypointCache,
    MaskCache,
    image_relpath,
    mask_relpath,
)
from reid_ext.skeletons import get_keypoint_format

logger = logging.getLogger(__name__)

AUX_KEYS = ("mask", "keypoints", "parts", "seg")
ON_MISSING = ("fallback", "error")
__all__ = ["AUX_KEYS", "AuxMapDataset", "MissingAuxMapError", "UnreadableImageError",
           "attach_aux_maps", "read_rgb_image"]
FALLBACK_TEXT = {
    "mask": "all-ones mask",
    "keypoints": "zero keypoints with score 0",
}


class MissingAuxMapError(LookupError):
    """An image without a map in its cache while ``on_missing="error"``."""


class AuxMapDataset(Dataset):
    """Images of ``data`` with the aux maps named in ``keys`` (``mask``, ``keypoints``, ``parts``).

    ``root`` is the dataset root the caches are keyed against (relpath = image path relative
    to it). ``transform`` is a joint transform (:func:`build_joint_transforms`); without one the
    image is only converted to a float tensor in [0, 1]. ``parts`` needs keypoints and a
    ``parts_scheme`` (see :mod:`reid_ext.data.parts`). ``seg`` [H, W] (long) is a tiger class
    map of ``seg_structure`` (I-IV, :mod:`reid_ext.data.tiger_maps`) drawn from the transformed
    atrw15 keypoints, so a flip swaps left and right with the keypoints.
    """

    def __init__(
        self,
        data: Sequence[tuple],
        root: str | os.PathLike,
        keys: Sequence[str] = ("mask",),
        *,
        transform: Callable[[dict], dict] | None = None,
        mask_dir: str | os.PathLike | None = None,
        keypoints_dir: str | os.PathLike | None = None,
        keypoint_format: str | None = None,
        parts_scheme: str | None = None,
        parts_threshold: float = 0.1,
        on_missing: str = "fallback",
        name: str = "",
        seg_structure: str | None = None,
    ) -> None:
        unknown = sorted(set(keys) - set(AUX_KEYS))
        if unknown:
            raise ValueError(f"unknown aux key(s) {unknown}; known: {list(AUX_KEYS)}")
        if on_missing not in ON_MISSING:
            raise ValueError(f"on_missing must be one of {ON_MISSING}, got '{on_missing}'")
        self.data = list(data)
        self.root = os.fspath(root)
        self.keys = tuple(keys)
        self.name = name or self.root
        self.on_missing = on_missing
        self.transform = transform or JointTransform(
            [ImageOnly(v2.ToDtype(torch.float32, scale=True))]
        )
        self.relpaths = [image_relpath(item[0], self.root) for item in self.data]

        self.mask_cache = None
        if "mask" in self.keys:
            if mask_dir is None:
                raise ValueError(f"aux key 'mask' needs a mask cache directory for {self.name}")
            self.mask_cache = MaskCache(mask_dir)
        self.keypoint_cache = None
        self.keypoint_format = keypoint_format
        if "keypoints" in self.keys or "parts" in self.keys or "seg" in self.keys:
            if keypoints_dir is None:
                raise ValueError(
                    f"aux keys {self.keys} need a keypoints cache directory for {self.name}"
                )
            self.keypoint_cache = KeypointCache(keypoints_dir)
            cached = self.keypoint_cache.keypoint_format
            if keypoint_format not in (None, cached):
                raise CacheError(
                    f"keypoint cache '{keypoints_dir}' holds '{cached}' keypoints, but "
                    f"keypoint_format '{keypoint_format}' was asked for"
                )
            self.keypoint_format = cached
        self.parts_scheme = parts_scheme
        self.parts_threshold = parts_threshold
        if "parts" in self.keys:
            if parts_scheme is None:
                raise ValueError("aux key 'parts' needs a parts_scheme, e.g. 'coco_spindle'")
            if get_part_scheme(parts_scheme).keypoint_format != self.keypoint_format:
                raise ValueError(
                    f"part scheme '{parts_scheme}' needs "
                    f"'{get_part_scheme(parts_scheme).keypoint_format}' keypoints; cache "
                    f"'{keypoints_dir}' holds '{self.keypoint_format}'"
                )
        self.seg_structure = seg_structure
        if "seg" in self.keys:  # a tiger class map drawn from the transformed keypoints
            if seg_structure is None:
                raise ValueError("aux key 'seg' needs a seg_structure (aux.seg: I, II, III or IV)")
            get_structure(seg_structure)
            if self.keypoint_format != "atrw15":
                raise ValueError(f"aux key 'seg' draws tiger class maps from 'atrw15' keypoints; "
                                 f"cache '{keypoints_dir}' holds '{self.keypoint_format}'")
        self.missing = self._scan_missing()
        self.missing_counts = {kind: len(rows) for kind, rows in self.missing.items()}
        self._reported = False
        if on_missing == "error":
            self._raise_if_missing()

    # --- the index scan -----------------------------------------------------------------
    def _scan_missing(self) -> dict[str, list[int]]:
        """Rows of ``data`` whose map is absent, per loaded map kind."""
        missing: dict[str, list[int]] = {}
        if self.mask_cache is not None:
            present = self.mask_cache.available()
            missing["mask"] = [
                row for row, rel in enumerate(self.relpaths) if mask_relpath(rel) not in present
            ]
        if self.keypoint_cache is not None:
            cache = self.keypoint_cache
            missing["keypoints"] = [
                row for row, rel in enumerate(self.relpaths) if rel not in cache
            ]
        return missing

    def _cache_dir(self, kind: str) -> str:
        cache = self.mask_cache if kind == "mask" else self.keypoint_cache
        return os.fspath(cache.cache_dir)

    def _raise_if_missing(self) -> None:
        for kind, rows in self.missing.items():
            if rows:
                rel = self.relpaths[rows[0]]
                raise MissingAuxMapError(
                    f"{len(rows)} of {len(self)} images of {self.name} have no {kind} in cache "
                    f"'{self._cache_dir(kind)}'; first: '{rel}' (image '{self.data[rows[0]][0]}')"
                )

    def report(self) -> str:
        """Log, once, how many maps are missing and what replaced them; return the message."""
        parts = [
            f"{kind} missing for {count} (fallback: {FALLBACK_TEXT[kind]}, cache "
            f"'{self._cache_dir(kind)}')"
            for kind, count in self.missing_counts.items()
            if count
        ]
        message = f"aux maps of {self.name} ({len(self)} images): " + (
            "; ".join(parts) if parts else "none missing"
        )
        if not self._reported:
            (logger.warning if parts else logger.info)(message)
            self._reported = True
        return message

    # --- items --------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.data)

    def _load_mask(self, index: int, size: tuple[int, int]) -> np.ndarray:
        mask = self.mask_cache.get(self.relpaths[index])
        if mask is None:
            return np.ones(size, dtype=np.float32)
        if mask.shape != size:
            raise CacheError(
                f"mask '{self.mask_cache.path_of(self.relpaths[index])}' is {mask.shape[1]}x"
                f"{mask.shape[0]} (WxH) but image '{self.data[index][0]}' is {size[1]}x{size[0]}:"
                f" the cache is stale"
            )
        return mask

    def _load_keypoints(self, index: int) -> np.ndarray:
        points = self.keypoint_cache.get(self.relpaths[index])
        if points is None:
            num_keypoints = get_keypoint_format(self.keypoint_format).num_keypoints
            return np.zeros((num_keypoints, 3), dtype=np.float32)
        return points

    def __getitem__(self, index: int) -> dict[str, Any]:
        impath, pid, camid, dsetid = self.data[index][:4]
        image = read_rgb_image(impath)
        sample: dict[str, Any] = {
            "img": image, "pid": pid, "camid": camid, "impath": impath, "dsetid": dsetid,
        }
        if self.mask_cache is not None:
            sample["mask"] = self._load_mask(index, (image.height, image.width))
        if self.keypoint_cache is not None:
            sample["keypoints"] = self._load_keypoints(index)
        sample = self.transform(sample)
        if "parts" in self.keys:
            height, width = sample["img"].shape[-2:]
            sample["parts"] = keypoints_to_parts(
                sample["keypoints"], height, width, self.keypoint_format, self.parts_scheme,
                threshold=self.parts_threshold,
            )
        if "seg" in self.keys:
            height, width = sample["img"].shape[-2:]
            sample["seg"] = keypoints_to_class_map(
                sample["keypoints"], height, width, self.seg_structure
            )
        if "keypoints" not in self.keys:
            sample.pop("keypoints", None)
        return sample


# --- swapping a data manager's loaders ----------------------------------------------------
def _pick(value: Any, name: str, default: Any) -> Any:
    """``value`` for dataset ``name``: a mapping is looked up by name; None/"auto" -> default."""
    if isinstance(value, Mapping):
        value = value.get(name)
    if value is None or value == "auto":
        return default
    return value


def _loader_like(loader: DataLoader, dataset: Dataset) -> DataLoader:
    """A DataLoader over ``dataset`` with ``loader``'s sampler, batching and workers."""
    kwargs: dict[str, Any] = {
        "num_workers": loader.num_workers,
        "pin_memory": loader.pin_memory,
        "collate_fn": loader.collate_fn,
        "worker_init_fn": loader.worker_init_fn,
        "timeout": loader.timeout,
        "persistent_workers": loader.persistent_workers,
    }
    if loader.num_workers > 0:
        kwargs["prefetch_factor"] = loader.prefetch_factor
    if loader.batch_size is None:  # a custom batch sampler
        return DataLoader(dataset, batch_sampler=loader.batch_sampler, **kwargs)
    return DataLoader(
        dataset, sampler=loader.sampler, batch_size=loader.batch_size,
        drop_last=loader.drop_last, **kwargs,
    )


def attach_aux_maps(
    datamanager: Any,
    keys: tuple[str, ...] = ("mask",),
    mask_dir: str | Mapping[str, str] | None = None,
    keypoints_dir: str | Mapping[str, str] | None = None,
    *,
    root: str | Mapping[str, str] | None = None,
    transforms: str | Sequence[str] | None = "random_flip",
    norm_mean: Sequence[float] | None = None,
    norm_std: Sequence[float] | None = None,
    keypoint_format: str | None = None,
    parts_scheme: str | None = None,
    parts_threshold: float = 0.1,
    on_missing: str = "fallback",
    seg_structure: str | None = None,
) -> None:
    """Replace ``datamanager``'s train and test loaders by loaders that also yield aux maps.

    ``mask_dir``, ``keypoints_dir`` and ``root`` are a path (for every dataset), a mapping
    from dataset name to path, or None / ``"auto"``: then the dataset's own ``aux_dirs`` and
    ``dataset_dir`` are used. The train set of several combined sources has neither, so it
    needs explicit values. ``transforms`` are torchreid's names, as given to the data manager
    (it does not keep them). The wrapped datasets are kept in ``datamanager.aux_datasets``
    (``"train"``, ``"train_t"``, ``"<name>/query"``, ``"<name>/gallery"``); each has
    reported its missing maps.
    """
    height, width = datamanager.height, datamanager.width

    def wrap(loader: DataLoader, name: str, label: str, is_train: bool) -> AuxMapDataset:
        host_set = loader.dataset
        if getattr(host_set, "k_tfm", 1) != 1:
            raise ValueError(f"aux maps support k_tfm=1 only; {label} has k_tfm={host_set.k_tfm}")
        aux_dirs = getattr(host_set, "aux_dirs", None) or {}
        dataset_root = _pick(root, name, getattr(host_set, "dataset_dir", None))
        if dataset_root is None:
            raise ValueError(
                f"{label}: the dataset has no 'dataset_dir' (several sources combined?); pass "
                f"root= the folder its aux-map caches are keyed against"
            )
        needs_keypoints = "keypoints" in keys or "parts" in keys or "seg" in keys
        fmt = keypoint_format or getattr(host_set, "keypoint_format", None)
        aux_set = AuxMapDataset(
            host_set.data, dataset_root, keys,
            mask_dir=_pick(mask_dir, name, aux_dirs.get("mask")),
            keypoints_dir=_pick(keypoints_dir, name, aux_dirs.get("keypoints")),
            keypoint_format=fmt if needs_keypoints else None, parts_scheme=parts_scheme,
            parts_threshold=parts_threshold, on_missing=on_missing, name=label,
            seg_structure=seg_structure,
        )
        aux_set.transform = build_joint_transforms(
            height, width, transforms, norm_mean, norm_std,
            keypoint_format=aux_set.keypoint_format, is_train=is_train,
        )
        aux_set.report()
        return aux_set

    sources = list(datamanager.sources)
    train_name = sources[0] if len(sources) == 1 else "+".join(sources)
    wrapped: dict[str, AuxMapDataset] = {}
    wrapped["train"] = wrap(datamanager.train_loader, train_name, f"{train_name}/train", True)
    datamanager.train_loader = _loader_like(datamanager.train_loader, wrapped["train"])
    if getattr(datamanager, "train_loader_t", None) is not None:
        targets = list(datamanager.targets)
        target_name = targets[0] if len(targets) == 1 else "+".join(targets)
        wrapped["train_t"] = wrap(
            datamanager.train_loader_t, target_name, f"{target_name}/train", True
        )
        datamanager.train_loader_t = _loader_like(datamanager.train_loader_t, wrapped["train_t"])
    for name, loaders in datamanager.test_loader.items():
        for split in ("query", "gallery"):
            aux_set = wrap(loaders[split], name, f"{name}/{split}", False)
            wrapped[f"{name}/{split}"] = aux_set
            loaders[split] = _loader_like(loaders[split], aux_set)
    datamanager.aux_datasets = wrapped
