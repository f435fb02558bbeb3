"""Read and write the on-disk aux-map cache (format: docs/architecture.md, "Aux-map cache").

A cache directory holds one kind of map for one dataset root:

- ``manifest.json``: kind, source, weights, version, keypoint_format (keypoints only),
  created, count;
- masks: ``<relpath with its extension replaced by .png>``, 8-bit single channel, 0..255 -> [0, 1];
- keypoints: one ``keypoints.npz`` with ``paths`` (image relpaths) and ``keypoints`` [N, K, 3].

``relpath`` is an image's path relative to the dataset root, always with ``/`` separators
(:func:`image_relpath` computes it; extraction tools and the loaders share it). Every writer is
atomic: it writes a temporary file next to the target and ``os.replace``-s it, so a crashed or
concurrent extraction never leaves a half-written file under a valid name.
"""
from __future__ import annotations

import json
import os
import tempfile
import warnings
from collections.abc import Iterator, Mapping
from datetime import datetime, timezone
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np
from PIL import Image

from reid_ext.skeletons import get_keypoint_format

MANIFEST_NAME = "manifest.json"
KEYPOINTS_NAME = "keypoints.npz"
MASK_SUFFIX = ".png"
CACHE_KINDS = ("mask", "keypoints")


class CacheError(ValueError):
    """A cache directory or file that is missing, malformed or of the wrong kind."""


class RandomWeightsCacheWarning(UserWarning):
    """A cache whose manifest says its maps came from a randomly initialised model."""


# --- paths ----------------------------------------------------------------------------------
def image_relpath(impath: str | os.PathLike, root: str | os.PathLike) -> str:
    """``impath`` relative to the dataset ``root``, with ``/`` separators (the cache key)."""
    rel = os.path.relpath(os.path.abspath(impath), os.path.abspath(root))
    if rel == os.curdir or rel.split(os.sep)[0] == os.pardir:
        raise CacheError(f"image '{impath}' is not under the dataset root '{root}'")
    return Path(rel).as_posix()


def normalize_relpath(relpath: str | os.PathLike) -> str:
    """A relpath as the cache stores it: ``/`` separators, no leading ``./``."""
    text = os.fspath(relpath).replace("\\", "/")
    posix = PurePosixPath(text)
    if posix.is_absolute() or ".." in posix.parts:
        raise CacheError(f"cache relpath '{text}' must be relative to the dataset root")
    return posix.as_posix()


def mask_relpath(relpath: str | os.PathLike) -> str:
    """Where the mask of image ``relpath`` lives inside a mask cache (extension -> ``.png``)."""
    return PurePosixPath(normalize_relpath(relpath)).with_suffix(MASK_SUFFIX).as_posix()


# --- atomic writes --------------------------------------------------------------------------
def _atomic_write(target: Path, write: Any) -> Path:
    """Call ``write(file_object)`` on a temporary file beside ``target``, then rename it."""
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            write(handle)
        os.replace(tmp, target)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return target


def mask_to_uint8(mask: Any) -> np.ndarray:
    """An HxW (or 1xHxW) mask as 8-bit: bool -> {0, 255}, uint8 kept, floats in [0, 1] x 255."""
    array = np.asarray(mask)
    if array.ndim == 3 and array.shape[0] == 1:
        array = array[0]
    if array.ndim != 2:
        raise CacheError(f"a mask must be HxW or 1xHxW, got shape {tuple(array.shape)}")
    if array.dtype == np.bool_:
        return array.astype(np.uint8) * 255
    if array.dtype == np.uint8:
        return array
    if not np.issubdtype(array.dtype, np.floating):
        raise CacheError(f"a mask must be bool, uint8 or float in [0, 1], got {array.dtype}")
    if array.size and (np.nanmin(array) < 0 or np.nanmax(array) > 1):
        raise CacheError(
            f"a float mask must lie in [0, 1], got [{np.nanmin(array)}, {np.nanmax(array)}]"
        )
    return np.rint(np.nan_to_num(array) * 255).astype(np.uint8)


def write_mask(cache_dir: str | os.PathLike, relpath: str, mask: Any) -> Path:
    """Write the mask of image ``relpath`` as an 8-bit PNG; returns the file written."""
    target = Path(cache_dir) / mask_relpath(relpath)
    pixels = Image.fromarray(mask_to_uint8(mask), mode="L")
    return _atomic_write(target, lambda handle: pixels.save(handle, format="PNG"))


def write_keypoints(
    cache_dir: str | os.PathLike,
    entries: Mapping[str, Any],
    keypoint_format: str,
) -> Path:
    """Write all keypoints of a dataset into ``keypoints.npz`` (``[K, 3]`` per image relpath).

    Every entry must have the format's number of keypoints. The manifest is written separately
    (:func:`write_manifest`) because it also names the source and weights.
    """
    num_keypoints = get_keypoint_format(keypoint_format).num_keypoints
    paths = [normalize_relpath(p) for p in entries]
    stacked = np.zeros((len(paths), num_keypoints, 3), dtype=np.float32)
    for row, (relpath, points) in enumerate(entries.items()):
        array = np.asarray(points, dtype=np.float32)
        if array.shape != (num_keypoints, 3):
            raise CacheError(
                f"keypoints of '{relpath}' have shape {tuple(array.shape)}; format "
                f"'{keypoint_format}' expects ({num_keypoints}, 3) as (x, y, score)"
            )
        stacked[row] = array
    target = Path(cache_dir) / KEYPOINTS_NAME
    return _atomic_write(
        target,
        lambda handle: np.savez(handle, paths=np.asarray(paths, dtype=str), keypoints=stacked),
    )


def write_manifest(
    cache_dir: str | os.PathLike,
    kind: str,
    source: str,
    weights: str,
    version: str,
    count: int,
    keypoint_format: str | None = None,
    extra: Mapping[str, Any] | None = None,
) -> Path:
    """Write ``manifest.json`` naming what produced the cache; ``created`` is UTC now.

    ``extra`` adds fields (an extraction tool's config, weights hash, random_weights flag...);
    it cannot replace the fields above."""
    if kind not in CACHE_KINDS:
        raise CacheError(f"cache kind must be one of {CACHE_KINDS}, got '{kind}'")
    if (kind == "keypoints") != (keypoint_format is not None):
        raise CacheError("keypoint_format is required for a keypoints cache and only for one")
    manifest: dict[str, Any] = {
        "kind": kind,
        "source": source,
        "weights": weights,
        "version": version,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "count": int(count),
    }
    if keypoint_format is not None:
        manifest["keypoint_format"] = keypoint_format
    clash = sorted(set(extra or {}) & (set(manifest) | {"keypoint_format"}))
    if clash:
        raise CacheError(f"extra manifest fields {clash} would replace the standard ones")
    manifest.update(extra or {})
    text = json.dumps(manifest, indent=2, sort_keys=True).encode()
    return _atomic_write(Path(cache_dir) / MANIFEST_NAME, lambda handle: handle.write(text))


# --- reading --------------------------------------------------------------------------------
def read_manifest(cache_dir: str | os.PathLike, expected_kind: str | None = None) -> dict:
    """Load and check ``manifest.json``; errors name the file and what was expected."""
    path = Path(cache_dir) / MANIFEST_NAME
    if not Path(cache_dir).is_dir():
        raise CacheError(f"aux-map cache directory '{cache_dir}' does not exist")
    if not path.is_file():
        raise CacheError(
            f"'{path}' is missing: '{cache_dir}' is not an aux-map cache (run the extraction "
            f"tool, which writes the manifest last)"
        )
    try:
        manifest = json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise CacheError(f"cannot read the cache manifest '{path}': {err}") from err
    if not isinstance(manifest, dict) or manifest.get("kind") not in CACHE_KINDS:
        raise CacheError(f"'{path}' must hold an object whose 'kind' is one of {CACHE_KINDS}")
    if expected_kind is not None and manifest["kind"] != expected_kind:
        raise CacheError(
            f"'{path}' says kind '{manifest['kind']}', but a '{expected_kind}' cache was expected"
        )
    if manifest["kind"] == "keypoints" and "keypoint_format" not in manifest:
        raise CacheError(f"'{path}' is a keypoints manifest without 'keypoint_format'")
    if manifest.get("random_weights"):
        warnings.warn(
            f"aux-map cache '{cache_dir}' was extracted with RANDOM weights (its manifest says "
            f"random_weights: true): its {manifest['kind']} maps are noise, fit for tests only",
            RandomWeightsCacheWarning, stacklevel=2)
    return manifest


class MaskCache:
    """Masks of one dataset root, read on demand (cheap to copy into DataLoader workers)."""

    def __init__(self, cache_dir: str | os.PathLike) -> None:
        self.cache_dir = Path(cache_dir)
        self.manifest = read_manifest(cache_dir, expected_kind="mask")

    def path_of(self, relpath: str) -> Path:
        return self.cache_dir / mask_relpath(relpath)

    def available(self) -> set[str]:
        """The mask files present, as relpaths inside the cache (one directory walk)."""
        found = set()
        for folder, _, files in os.walk(self.cache_dir):
            rel_folder = Path(os.path.relpath(folder, self.cache_dir))
            for name in files:
                if name.endswith(MASK_SUFFIX) and not name.startswith("."):
                    found.add((rel_folder / name).as_posix())
        return found

    def __contains__(self, relpath: object) -> bool:
        return isinstance(relpath, str) and self.path_of(relpath).is_file()

    def get(self, relpath: str) -> np.ndarray | None:
        """The mask of image ``relpath`` as float32 HxW in [0, 1], or None when absent."""
        path = self.path_of(relpath)
        if not path.is_file():
            return None
        try:
            with Image.open(path) as pixels:
                gray = np.asarray(pixels.convert("L"), dtype=np.float32)
        except OSError as err:
            raise CacheError(f"cannot read the mask '{path}': {err}") from err
        return gray / 255.0


class KeypointCache:
    """Keypoints of one dataset root, all loaded at once from ``keypoints.npz``."""

    def __init__(self, cache_dir: str | os.PathLike) -> None:
        self.cache_dir = Path(cache_dir)
        self.manifest = read_manifest(cache_dir, expected_kind="keypoints")
        self.keypoint_format: str = self.manifest["keypoint_format"]
        num_keypoints = get_keypoint_format(self.keypoint_format).num_keypoints
        path = self.cache_dir / KEYPOINTS_NAME
        try:
            with np.load(path, allow_pickle=False) as npz:
                paths, points = npz["paths"], npz["keypoints"]
        except (OSError, KeyError, ValueError) as err:
            raise CacheError(
                f"cannot read '{path}' (expected arrays 'paths' and 'keypoints'): {err}"
            ) from err
        if points.ndim != 3 or points.shape[1:] != (num_keypoints, 3) or len(paths) != len(points):
            raise CacheError(
                f"'{path}' holds keypoints of shape {points.shape} for {len(paths)} paths; "
                f"expected [N, {num_keypoints}, 3] for format '{self.keypoint_format}'"
            )
        self.keypoints = points.astype(np.float32, copy=False)
        self._row = {normalize_relpath(str(p)): i for i, p in enumerate(paths)}

    def __contains__(self, relpath: object) -> bool:
        return isinstance(relpath, str) and relpath in self._row

    def __len__(self) -> int:
        return len(self._row)

    def __iter__(self) -> Iterator[str]:
        return iter(self._row)

    def get(self, relpath: str) -> np.ndarray | None:
        """The ``[K, 3]`` keypoints (x, y, score) of image ``relpath``, or None when absent."""
        row = self._row.get(relpath)
        return None if row is None else self.keypoints[row].copy()
