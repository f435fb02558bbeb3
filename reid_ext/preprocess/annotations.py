"""``annotations`` masks and keypoints: ground truth a dataset carries, served as a source.

Reads an existing cache in reid_ext's format (the synthetic sets write their ground truth so,
under ``aux/masks`` and ``aux/keypoints``) by the crops' relpaths; a crop without ground truth
gets ``None`` (nothing is written for it, so loaders count it missing). Useful to copy or
re-key ground truth, and as the reference in source benchmarks.
"""
from __future__ import annotations

import os
from typing import Any

import numpy as np

from reid_ext.preprocess.base import KeypointSource, MaskSource, SourceError
from reid_ext.registry import KEYPOINT_SOURCES, MASK_SOURCES


def _need_relpaths(name: str, relpaths: list[str] | None) -> list[str]:
    if relpaths is None:
        raise SourceError(f"source '{name}' looks maps up by image relpath: pass relpaths")
    return relpaths


@MASK_SOURCES.register("annotations")
class AnnotationMaskSource(MaskSource):
    """Ground-truth masks from the mask cache ``cache_dir``."""

    name = "annotations"

    def __init__(self, cache_dir: str | os.PathLike, threshold: float = 0.5,
                 binary: bool = False) -> None:
        from reid_ext.preprocess.cache import MaskCache

        super().__init__(threshold=threshold, binary=binary)
        self.cache = MaskCache(cache_dir)
        self.weights = f"annotations:{os.path.abspath(cache_dir)}"

    def predict(self, images: list[np.ndarray], relpaths: list[str] | None
                ) -> list[np.ndarray | None]:
        return [self.cache.get(rel) for rel in _need_relpaths(self.name, relpaths)]

    def options(self) -> dict[str, Any]:
        return {**super().options(), "from": self.cache.manifest.get("source", "")}


@KEYPOINT_SOURCES.register("annotations")
class AnnotationKeypointSource(KeypointSource):
    """Ground-truth keypoints from the keypoint cache ``cache_dir`` (its skeleton)."""

    name = "annotations"

    def __init__(self, cache_dir: str | os.PathLike) -> None:
        from reid_ext.preprocess.cache import KeypointCache

        cache = KeypointCache(cache_dir)
        super().__init__(cache.keypoint_format)
        self.cache = cache
        self.weights = f"annotations:{os.path.abspath(cache_dir)}"

    def predict(self, images: list[np.ndarray], relpaths: list[str] | None
                ) -> list[np.ndarray | None]:
        return [self.cache.get(rel) for rel in _need_relpaths(self.name, relpaths)]

    def options(self) -> dict[str, Any]:
        return {"from": self.cache.manifest.get("source", "")}
