"""Run a mask or keypoint source over a dataset's images and fill an aux-map cache.

:func:`extract` is the body of ``tools/extract_masks.py`` and ``tools/extract_keypoints.py``:

- images already in the cache are skipped, so a re-run resumes where a killed run stopped;
- masks are written one PNG at a time, atomically (:mod:`reid_ext.preprocess.cache`);
  keypoints go to small atomic *shards* (``.partial/shard-*.npz``, one per batch) that the
  final step merges into ``keypoints.npz``; a kill at any moment leaves only complete files
  under real names (a stale ``.*.tmp`` is removed by the next run);
- an unreadable image is reported by path, counted and skipped (a re-run tries it again);
- the manifest, written last, names the source, its weights (and SHA-256), the options, the
  config, the skeleton and whether the weights were random;
- one run at a time per cache directory (an exclusive lock on ``.lock``); a cache made by a
  different source, weights or options is refused rather than mixed.
"""
from __future__ import annotations

import fcntl
import json
import os
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image
from tqdm import tqdm

from reid_ext.preprocess.base import AuxSource
from reid_ext.preprocess.cache import (
    KEYPOINTS_NAME,
    MANIFEST_NAME,
    _atomic_write,
    image_relpath,
    mask_relpath,
    normalize_relpath,
    write_keypoints,
    write_manifest,
    write_mask,
)

RUN_FILE = ".extract.json"
LOCK_FILE = ".lock"
SHARD_DIR = ".partial"
IDENTITY_KEYS = ("kind", "source", "weights", "weights_sha256", "random_weights", "options",
                 "keypoint_format")


class ExtractError(RuntimeError):
    """The cache directory cannot take this run (busy, or made by another source)."""


@dataclass
class ExtractSummary:
    """What one run did; ``failed`` holds ``(image path, reason)``."""

    out_dir: Path
    total: int = 0
    cached_before: int = 0
    written: int = 0
    empty: int = 0
    no_map: int = 0
    failed: list[tuple[str, str]] = field(default_factory=list)
    seconds: float = 0.0
    count_in_cache: int = 0

    def format(self) -> str:
        rate = self.written / self.seconds if self.seconds > 0 else 0.0
        lines = [
            f"{self.out_dir}: {self.total} images; {self.cached_before} already cached, "
            f"{self.written} written ({rate:.1f} images/s), {self.empty} with nothing found, "
            f"{self.no_map} without a map from the source, {len(self.failed)} unreadable; "
            f"{self.count_in_cache} in the cache",
        ]
        lines += [f"  unreadable: {path}: {reason}" for path, reason in self.failed]
        return "\n".join(lines)


def read_image(path: str) -> np.ndarray:
    """An image file as ``HxWx3`` uint8 RGB (errors: ``OSError``/``ValueError`` from PIL)."""
    with Image.open(path) as image:
        return np.asarray(image.convert("RGB"))


@contextmanager
def _exclusive(out_dir: Path) -> Iterator[None]:
    out_dir.mkdir(parents=True, exist_ok=True)
    with open(out_dir / LOCK_FILE, "w") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise ExtractError(f"another extraction is writing to '{out_dir}'") from None
        yield


def _remove_stale_temporaries(out_dir: Path) -> None:
    """Temporary files a killed writer left (``.<name>.<random>.tmp``); only we hold the lock."""
    for folder, _, files in os.walk(out_dir):
        for name in files:
            if name.startswith(".") and name.endswith(".tmp"):
                os.unlink(os.path.join(folder, name))


def _identity(source: AuxSource, info: dict[str, Any]) -> dict[str, Any]:
    full = {**info, "kind": source.kind, "keypoint_format": source.skeleton}
    # through JSON, so that it compares equal to what a manifest read back holds
    return json.loads(json.dumps({key: full.get(key) for key in IDENTITY_KEYS}))


def _check_same_producer(out_dir: Path, identity: dict[str, Any]) -> None:
    for name in (MANIFEST_NAME, RUN_FILE):
        path = out_dir / name
        if not path.is_file():
            continue
        recorded = json.loads(path.read_text())
        if recorded.get("kind") == "keypoints" and recorded.get("skeleton"):
            recorded.setdefault("keypoint_format", recorded["skeleton"])
        old = {key: recorded.get(key) for key in IDENTITY_KEYS}
        differ = sorted(key for key in IDENTITY_KEYS if old[key] != identity[key])
        if differ:
            details = "; ".join(f"{key}: {old[key]!r} there, {identity[key]!r} now"
                                for key in differ)
            raise ExtractError(
                f"'{out_dir}' holds a cache made differently ({details}); pass another --out "
                f"or delete it"
            )


def _read_shards(out_dir: Path) -> dict[str, np.ndarray]:
    entries: dict[str, np.ndarray] = {}
    shard_dir = out_dir / SHARD_DIR
    files = sorted(shard_dir.glob("shard-*.npz")) if shard_dir.is_dir() else []
    main = out_dir / KEYPOINTS_NAME
    for path in ([main] if main.is_file() else []) + files:
        with np.load(path, allow_pickle=False) as npz:
            for rel, points in zip(npz["paths"], npz["keypoints"]):
                entries[normalize_relpath(str(rel))] = points
    return entries


def _write_shard(out_dir: Path, entries: dict[str, np.ndarray]) -> None:
    target = out_dir / SHARD_DIR / f"shard-{time.time_ns():020d}.npz"
    paths = np.asarray(list(entries), dtype=str)
    points = np.stack(list(entries.values())).astype(np.float32)
    _atomic_write(target, lambda handle: np.savez(handle, paths=paths, keypoints=points))


def extract(
    source: AuxSource,
    root: str | os.PathLike,
    impaths: Sequence[str],
    out_dir: str | os.PathLike,
    batch_size: int = 16,
    config: str = "",
    dataset: str = "",
    progress: bool = True,
) -> ExtractSummary:
    """Fill ``out_dir`` with ``source``'s maps of ``impaths`` (keyed relative to ``root``)."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    out = Path(out_dir).resolve()
    summary = ExtractSummary(out_dir=out, total=len(impaths))
    info = source.manifest_info()
    identity = _identity(source, info)
    relpaths = [image_relpath(path, root) for path in impaths]
    with _exclusive(out):
        _remove_stale_temporaries(out)
        _check_same_producer(out, identity)
        _atomic_write(out / RUN_FILE,
                      lambda handle: handle.write(json.dumps(identity, indent=2).encode()))
        is_mask = source.kind == "mask"
        if is_mask:
            done = {rel for rel in relpaths if (out / mask_relpath(rel)).is_file()}
        else:
            done = set(_read_shards(out)) & set(relpaths)
        todo = [(path, rel) for path, rel in zip(impaths, relpaths) if rel not in done]
        summary.cached_before = len(relpaths) - len(todo)
        start = time.perf_counter()
        bar = tqdm(total=len(todo), desc=f"{source.kind} [{source.name}]", unit="img",
                   disable=not progress, dynamic_ncols=True)
        try:
            for first in range(0, len(todo), batch_size):
                _run_batch(source, todo[first:first + batch_size], out, summary, bar)
        finally:
            bar.close()
            summary.seconds = time.perf_counter() - start
        summary.count_in_cache = _finish(source, out, relpaths, info, config, dataset, summary)
    return summary


def _run_batch(source: AuxSource, batch: list[tuple[str, str]], out: Path,
               summary: ExtractSummary, bar: tqdm) -> None:
    images, keys = [], []
    for path, rel in batch:
        try:
            images.append(read_image(path))
            keys.append(rel)
        except (OSError, ValueError) as err:
            summary.failed.append((path, str(err)))
            bar.write(f"unreadable image skipped: {path}: {err}")
    outputs = source(images, keys) if images else []
    shard: dict[str, np.ndarray] = {}
    for rel, output in zip(keys, outputs):
        if output is None:
            summary.no_map += 1
            continue
        if source.kind == "mask":
            write_mask(out, rel, output)
            summary.empty += int(output.max(initial=0.0) < getattr(source, "threshold", 0.5))
        else:
            shard[rel] = output
            summary.empty += int(not np.any(output[:, 2] > 0))
        summary.written += 1
    if shard:
        _write_shard(out, shard)
    bar.update(len(batch))
    bar.set_postfix(unreadable=len(summary.failed), empty=summary.empty, refresh=False)


def _finish(source: AuxSource, out: Path, relpaths: list[str], info: dict[str, Any],
            config: str, dataset: str, summary: ExtractSummary) -> int:
    """Merge keypoint shards, write the manifest last; returns the images in the cache."""
    if source.kind == "mask":
        count = sum(1 for rel in relpaths if (out / mask_relpath(rel)).is_file())
    else:
        entries = _read_shards(out)
        if entries:
            write_keypoints(out, entries, source.skeleton)
        for shard in sorted((out / SHARD_DIR).glob("shard-*.npz")):
            shard.unlink()
        count = len(set(entries) & set(relpaths))
    extra = {key: info[key] for key in ("weights_sha256", "random_weights", "options")}
    extra.update(config=config, dataset=dataset, unreadable=len(summary.failed))
    if source.kind == "keypoints":
        extra["skeleton"] = source.skeleton
    write_manifest(out, source.kind, info["source"], info["weights"], info["version"], count,
                   keypoint_format=source.skeleton if source.kind == "keypoints" else None,
                   extra=extra)
    (out / RUN_FILE).unlink(missing_ok=True)
    return count
