"""The interface every mask and keypoint source follows, and what it records in a manifest.

A *source* turns a batch of RGB crops (``HxWx3`` uint8 arrays) into one map per crop:

- a :class:`MaskSource` returns a soft person mask ``[H, W]`` float32 in [0, 1];
  ``threshold`` (0.5 by default, as MGRAN binarises) decides which pixels count as the person
  when an instance is chosen, and with ``binary=True`` the returned mask is ``mask >= threshold``;
- a :class:`KeypointSource` returns ``[K, 3]`` float32 (x, y, score) in its named
  ``skeleton`` (``coco17``, ``atrw15``); x, y are pixel indices of the crop (x is the column
  whose centre the point sits on, as in the cache), score in [0, 1], 0 = not found.

A crop in which nothing is found gets an all-zero mask, or keypoints with score 0: that *is*
the model's answer, and the extraction tool counts such empty results in its summary. A source
that has no map at all for a crop (``annotations`` without ground truth for it) returns
``None``; the tool then writes nothing for it, so loaders count it as missing.

Sources with learned weights take them from a file or a library's named weights; random
weights only with an explicit ``random_weights=True`` (tests). Without usable weights the
constructor raises :class:`WeightsError` saying what to pass, before any work is done.
"""
from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

SOURCE_KINDS = ("mask", "keypoints")


class SourceError(ValueError):
    """A source built or called with bad arguments (the message names the value)."""


class WeightsError(SourceError):
    """No usable weights: the message says which option to pass."""


class BackendMissingError(ImportError):
    """An optional back-end library is not installed; the message names the extra."""


def sha256_of(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    """Hex SHA-256 of a file's bytes (recorded in the manifest next to the weights path)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(chunk), b""):
            digest.update(block)
    return digest.hexdigest()


def check_images(images: Sequence[Any]) -> list[np.ndarray]:
    """The batch as a list of ``HxWx3`` uint8 arrays; anything else raises :class:`SourceError`."""
    checked = []
    for index, image in enumerate(images):
        array = np.asarray(image)
        if array.ndim != 3 or array.shape[2] != 3 or array.dtype != np.uint8:
            raise SourceError(
                f"image {index} of the batch has shape {array.shape} and dtype {array.dtype}; "
                f"a source expects HxWx3 uint8 RGB arrays"
            )
        if array.shape[0] < 1 or array.shape[1] < 1:
            raise SourceError(f"image {index} of the batch is empty (shape {array.shape})")
        checked.append(array)
    return checked


class AuxSource:
    """Common part of mask and keypoint sources.

    Subclasses set ``name`` (the registry name), ``kind`` and implement :meth:`predict`.
    ``weights`` describes the weights used (a file path, a library's weights name, ``"random"``
    or ``""`` for a source without weights); ``weights_sha256`` is the file's hash when the
    weights came from a file.
    """

    name: ClassVar[str] = ""
    kind: ClassVar[str] = ""
    skeleton: str | None = None

    def __init__(self) -> None:
        self.weights = ""
        self.weights_sha256: str | None = None
        self.random_weights = False

    # --- to implement ---------------------------------------------------------------------
    def predict(
        self, images: list[np.ndarray], relpaths: list[str] | None
    ) -> list[np.ndarray | None]:
        """One map (or None: no map for this crop) per image; inputs are already checked."""
        raise NotImplementedError

    def library_version(self) -> str:
        """``"<library> <version>"`` of the back-end, for the manifest's version field."""
        return ""

    # --- shared ---------------------------------------------------------------------------
    def __call__(
        self, images: Sequence[np.ndarray], relpaths: Sequence[str] | None = None
    ) -> list[np.ndarray | None]:
        """One map per crop of ``images`` (``relpaths``: the crops' cache keys, used only by
        sources that look maps up, such as ``annotations``)."""
        checked = check_images(images)
        if relpaths is not None and len(relpaths) != len(checked):
            raise SourceError(f"{len(relpaths)} relpaths for {len(checked)} images")
        if not checked:
            return []
        outputs = self.predict(checked, None if relpaths is None else list(relpaths))
        if len(outputs) != len(checked):
            raise SourceError(
                f"source '{self.name}' returned {len(outputs)} maps for {len(checked)} images")
        return [None if out is None else self._check_output(out, image)
                for out, image in zip(outputs, checked)]

    def _check_output(self, output: np.ndarray, image: np.ndarray) -> np.ndarray:
        return output

    def set_weights(self, description: str, path: str | os.PathLike | None = None,
                    random_weights: bool = False) -> None:
        self.weights = description
        self.weights_sha256 = sha256_of(path) if path is not None else None
        self.random_weights = random_weights

    def manifest_info(self) -> dict[str, Any]:
        """What the extraction tool records about this source in the cache manifest."""
        from reid_ext import __version__

        version = f"reid_ext {__version__}"
        if self.library_version():
            version += f"; {self.library_version()}"
        return {
            "source": self.name,
            "weights": self.weights,
            "weights_sha256": self.weights_sha256,
            "random_weights": self.random_weights,
            "version": version,
            "options": self.options(),
        }

    def options(self) -> dict[str, Any]:
        """The source's settings that change its output (recorded in the manifest)."""
        return {}


class MaskSource(AuxSource):
    """A source of soft person masks ``[H, W]`` float32 in [0, 1], one per crop."""

    kind: ClassVar[str] = "mask"

    def __init__(self, threshold: float = 0.5, binary: bool = False) -> None:
        super().__init__()
        if not 0.0 < float(threshold) < 1.0:
            raise SourceError(f"mask threshold must lie in (0, 1), got {threshold}")
        self.threshold = float(threshold)
        self.binary = bool(binary)

    def _check_output(self, output: np.ndarray, image: np.ndarray) -> np.ndarray:
        mask = np.asarray(output, dtype=np.float32)
        if mask.shape != image.shape[:2]:
            raise SourceError(
                f"source '{self.name}' returned a mask of shape {mask.shape} for an image of "
                f"size {image.shape[:2]}"
            )
        mask = np.clip(np.nan_to_num(mask), 0.0, 1.0)
        if self.binary:
            mask = (mask >= self.threshold).astype(np.float32)
        return mask

    def options(self) -> dict[str, Any]:
        return {"threshold": self.threshold, "binary": self.binary}


class KeypointSource(AuxSource):
    """A source of ``[K, 3]`` keypoints (x, y, score) in the skeleton ``self.skeleton``."""

    kind: ClassVar[str] = "keypoints"

    def __init__(self, skeleton: str) -> None:
        super().__init__()
        from reid_ext.skeletons import get_keypoint_format

        self.skeleton = skeleton
        self.num_keypoints = get_keypoint_format(skeleton).num_keypoints

    def _check_output(self, output: np.ndarray, image: np.ndarray) -> np.ndarray:
        points = np.asarray(output, dtype=np.float32)
        if points.shape != (self.num_keypoints, 3):
            raise SourceError(
                f"source '{self.name}' returned keypoints of shape {points.shape}; skeleton "
                f"'{self.skeleton}' expects ({self.num_keypoints}, 3)"
            )
        points = np.nan_to_num(points)
        points[:, 2] = np.clip(points[:, 2], 0.0, 1.0)
        return points


def weights_file(path: str | os.PathLike) -> Path:
    """``path`` as an existing weights file, or :class:`WeightsError` naming it."""
    file = Path(path).expanduser()
    if not file.is_file():
        raise WeightsError(f"weights file '{file}' does not exist")
    return file
