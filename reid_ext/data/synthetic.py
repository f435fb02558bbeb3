"""The synthetic Re-ID sets ``synthetic_person`` and ``synthetic_tiger``: generated on first
use, cached on disk, and served to torchreid like Market-1501.

``generate_synthetic(kind, root, **options)`` writes ``<root>/synthetic_<kind>/<signature>/``
(the signature is a hash of the options and the generator version) with
``bounding_box_train/``, ``query/``, ``bounding_box_test/`` PNG images named
``{pid:04d}_c{cam}s1_{idx:06d}_00.png`` and the ground-truth aux maps in the cache format of
docs/architecture.md under ``aux/masks/`` and ``aux/keypoints/``. The files are a pure function
of the options: the same options give byte-identical files. The dataset is built in a temporary
folder and renamed into place, so an interrupted run never leaves a half dataset behind.
"""
from __future__ import annotations

import hashlib
import io
import json
import multiprocessing
import os
import re
import shutil
import tempfile
import zipfile
from collections.abc import Iterable
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image
from tqdm import tqdm

from reid_ext import host
from reid_ext.data.options import get_dataset_options
from reid_ext.data.synthetic_draw import KINDS, render_sample
from reid_ext.registry import DATASETS
from reid_ext.skeletons import ATRW15, COCO17

GENERATOR_VERSION = "1"
# The manifests' "created" field is fixed per generator version so that files stay
# byte-identical across runs; the data is a function of the options, not of the clock.
GENERATOR_CREATED = "2026-11-21T00:00:00+00:00"
INFO_FILE = "synthetic.json"
SPLIT_DIRS = {"train": "bounding_box_train", "query": "query", "gallery": "bounding_box_test"}
KEYPOINT_FORMAT = {"person": COCO17, "tiger": ATRW15}

DEFAULT_OPTIONS: dict[str, dict[str, int]] = {
    "person": {"num_train_ids": 50, "num_test_ids": 50, "images_per_id_per_camera": 4,
               "num_cameras": 4, "height": 128, "width": 64, "seed": 0},
    "tiger": {"num_train_ids": 50, "num_test_ids": 50, "images_per_id_per_camera": 4,
              "num_cameras": 4, "height": 64, "width": 128, "seed": 0},
}
# Hardness controls, in percent of the default sets' strength (100: unchanged files). Kept out
# of the folder signature at 100, so the default sets keep their folders.
HARDNESS_OPTIONS = {"camera_shift": 100, "occlusion": 100}
# Presets: a dataset name with its own defaults over a kind's.
PRESETS: dict[str, tuple[str, dict[str, int]]] = {
    # several hundred identities, strong per-camera imaging shifts, frequent occluders
    "synthetic_person_hard": ("person", {"num_train_ids": 200, "num_test_ids": 200,
                                         "images_per_id_per_camera": 2, "num_cameras": 4,
                                         "camera_shift": 250, "occlusion": 250}),
}
_MINIMUM = {"camera_shift": 0, "occlusion": 0, "num_train_ids": 1, "num_test_ids": 1,
            "images_per_id_per_camera": 2, "num_cameras": 2, "height": 32, "width": 32, "seed": 0}
_MAXIMUM = {"camera_shift": 1000, "occlusion": 300, "num_cameras": 9, "height": 2048, "width": 2048}
_FILENAME = re.compile(r"^(\d{4})_c(\d)s1_(\d{6})_00\.png$")


def dataset_name(kind: str) -> str:
    return f"synthetic_{kind}"


def normalise_kind(kind: str) -> str:
    """Accept ``person``/``tiger`` or the dataset names ``synthetic_person``/``synthetic_tiger``."""
    short = kind[len("synthetic_"):] if kind.startswith("synthetic_") else kind
    if short not in KINDS:
        raise ValueError(f"unknown synthetic dataset kind '{kind}'; expected one of "
                         f"{[*KINDS, *map(dataset_name, KINDS)]}")
    return short


def resolve_options(kind: str, options: dict[str, Any],
                    preset: dict[str, int] | None = None) -> dict[str, int]:
    """Defaults (the kind's, the hardness controls, then ``preset``'s) overlaid with
    ``options``; unknown names and bad values raise ``ValueError``."""
    kind = normalise_kind(kind)
    defaults = {**DEFAULT_OPTIONS[kind], **HARDNESS_OPTIONS, **(preset or {})}
    unknown = sorted(set(options) - set(defaults))
    if unknown:
        raise ValueError(f"unknown option(s) {unknown} for dataset '{dataset_name(kind)}'; "
                         f"known options: {sorted(defaults)}")
    resolved = {**defaults, **options}
    for key, value in resolved.items():
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
            raise ValueError(f"option '{key}' of dataset '{dataset_name(kind)}' must be an "
                             f"integer, got {value!r}")
        low, high = _MINIMUM[key], _MAXIMUM.get(key)
        if value < low or (high is not None and value > high):
            bound = f">= {low}" if high is None else f"in [{low}, {high}]"
            raise ValueError(f"option '{key}' of dataset '{dataset_name(kind)}' must be {bound}, "
                             f"got {value}")
        resolved[key] = int(value)
    if resolved["num_train_ids"] + resolved["num_test_ids"] > 9999:
        raise ValueError("num_train_ids + num_test_ids must be <= 9999 (4-digit person ids)")
    return resolved


def signature(kind: str, options: dict[str, int]) -> str:
    """Short hash naming the folder of one option set (and generator version)."""
    options = {k: v for k, v in options.items() if HARDNESS_OPTIONS.get(k) != v}
    payload = json.dumps({"kind": kind, "version": GENERATOR_VERSION, **options}, sort_keys=True)
    return hashlib.sha1(payload.encode()).hexdigest()[:10]


def plan_images(options: dict[str, int]) -> list[tuple[str, int, int, int]]:
    """Every image as ``(split, pid, cam, index)``; cam 1-based, index 1-based per (pid, cam).

    Train ids are 1..num_train_ids, test ids follow. For a test id the first frame of each
    camera is a query, the others go to the gallery.
    """
    n_train, n_test = options["num_train_ids"], options["num_test_ids"]
    plan = []
    for pid in range(1, n_train + n_test + 1):
        for cam in range(1, options["num_cameras"] + 1):
            for index in range(1, options["images_per_id_per_camera"] + 1):
                split = "train" if pid <= n_train else ("query" if index == 1 else "gallery")
                plan.append((split, pid, cam, index))
    return plan


def image_relpath(split: str, pid: int, cam: int, index: int) -> str:
    return f"{SPLIT_DIRS[split]}/{pid:04d}_c{cam}s1_{index:06d}_00.png"


def generate_synthetic(kind: str, out_dir: str | os.PathLike[str], workers: int | None = None,
                       progress: bool = True, preset: str | None = None,
                       **options: Any) -> Path:
    """Make sure the dataset for ``options`` exists under ``out_dir`` and return its folder.

    An existing complete folder is reused. ``workers`` processes render in parallel (default:
    up to 4, one per CPU); this changes speed only, never the files.
    """
    kind = normalise_kind(kind)
    resolved = resolve_options(kind, options, PRESETS[preset][1] if preset else None)
    folder = preset or dataset_name(kind)
    final = Path(out_dir).expanduser().resolve() / folder / signature(kind, resolved)
    if (final / INFO_FILE).is_file():
        return final
    if final.exists():
        raise RuntimeError(f"{final} exists but has no {INFO_FILE}: it was not written by "
                           f"reid_ext's generator; delete it to regenerate")
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.partial-", dir=final.parent))
    try:
        _write_dataset(kind, resolved, tmp, workers, progress)
        os.chmod(tmp, 0o755)
        try:
            os.rename(tmp, final)
        except OSError:
            if not (final / INFO_FILE).is_file():  # not a concurrent writer winning the race
                raise
            shutil.rmtree(tmp, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return final


def _render_and_save(kind: str, options: dict[str, int], root: str,
                     items: list[tuple[str, int, int, int]]) -> list[np.ndarray]:
    """Render ``items``, write image and mask PNGs, return their keypoints (worker function)."""
    keypoints = []
    for split, pid, cam, index in items:
        sample = render_sample(kind, options["seed"], pid, cam, index, options["height"],
                               options["width"],
                               camera_shift=options.get("camera_shift", 100) / 100.0,
                               occlusion=options.get("occlusion", 100) / 100.0)
        rel = image_relpath(split, pid, cam, index)
        Image.fromarray(sample.image, "RGB").save(os.path.join(root, rel), format="PNG")
        mask = sample.mask.astype(np.uint8) * 255
        Image.fromarray(mask, "L").save(os.path.join(root, "aux", "masks", rel), format="PNG")
        keypoints.append(sample.keypoints)
    return keypoints


def _chunks(items: list[Any], size: int) -> Iterable[list[Any]]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


def _write_dataset(kind: str, options: dict[str, int], root: Path, workers: int | None,
                   progress: bool) -> None:
    plan = plan_images(options)
    for split_dir in SPLIT_DIRS.values():
        (root / split_dir).mkdir()
        (root / "aux" / "masks" / split_dir).mkdir(parents=True, exist_ok=True)
    (root / "aux" / "keypoints").mkdir()

    chunks = list(_chunks(plan, 32))
    workers = min(4, os.cpu_count() or 1) if workers is None else workers
    bar = tqdm(total=len(plan), desc=f"generating {dataset_name(kind)}", unit="img",
               disable=not progress)
    keypoints: list[np.ndarray] = []
    parallel = (workers > 1 and len(chunks) > 1 and not multiprocessing.current_process().daemon
                and "fork" in multiprocessing.get_all_start_methods())
    if parallel:
        # fork: the children only need numpy and PIL, and skip re-importing torch
        context = multiprocessing.get_context("fork")
        with ProcessPoolExecutor(workers, mp_context=context) as pool:
            jobs = [pool.submit(_render_and_save, kind, options, str(root), c) for c in chunks]
            for job, chunk in zip(jobs, chunks):
                keypoints += job.result()
                bar.update(len(chunk))
    else:
        for chunk in chunks:
            keypoints += _render_and_save(kind, options, str(root), chunk)
            bar.update(len(chunk))
    bar.close()

    relpaths = [image_relpath(*item) for item in plan]
    fmt = KEYPOINT_FORMAT[kind]
    _write_npz(root / "aux" / "keypoints" / "keypoints.npz", paths=np.array(relpaths),
               keypoints=np.stack(keypoints).astype(np.float32))
    common = {"source": "ground_truth", "weights": "", "version": f"synthetic-{GENERATOR_VERSION}",
              "created": GENERATOR_CREATED, "count": len(plan)}
    _write_json(root / "aux" / "masks" / "manifest.json", {"kind": "mask", **common})
    _write_json(root / "aux" / "keypoints" / "manifest.json",
                {"kind": "keypoints", "keypoint_format": fmt.name, **common})
    counts = {split: sum(1 for item in plan if item[0] == split) for split in SPLIT_DIRS}
    _write_json(root / INFO_FILE, {"dataset": dataset_name(kind), "version": GENERATOR_VERSION,
                                   "options": options, "counts": counts,
                                   "keypoint_format": fmt.name})


def _write_json(path: Path, payload: dict[str, Any]) -> None:
    path.write_text(json.dumps(payload, indent=2, sort_keys=True) + "\n")


def _write_npz(path: Path, **arrays: np.ndarray) -> None:
    """``np.savez`` with fixed zip timestamps, so equal arrays give equal bytes."""
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, array in arrays.items():
            buffer = io.BytesIO()
            np.lib.format.write_array(buffer, np.asarray(array), allow_pickle=False)
            info = zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, buffer.getvalue())


def read_split(dataset_dir: str | os.PathLike[str], split: str,
               relabel: bool = False) -> list[tuple[str, int, int]]:
    """``(absolute image path, pid, camid)`` of one split, camid 0-based, sorted by path;
    ``relabel`` maps the pids to 0..N-1 in increasing order (torchreid's training labels)."""
    folder = Path(dataset_dir) / SPLIT_DIRS[split]
    items = []
    for path in sorted(folder.iterdir()):
        match = _FILENAME.match(path.name)
        if match is None:
            raise ValueError(f"unexpected file {path} in a synthetic dataset folder (expected "
                             f"names like 0001_c1s1_000001_00.png)")
        items.append((str(path), int(match.group(1)), int(match.group(2)) - 1))
    if relabel:
        labels = {pid: label for label, pid in enumerate(sorted({pid for _, pid, _ in items}))}
        items = [(path, labels[pid], cam) for path, pid, cam in items]
    return items


class SyntheticImageDataset(host.get_host().ImageDataset):
    """A generated set in torchreid's Market-1501 form with ground-truth masks and keypoints.

    Options come from ``reid_ext.data.options.set_dataset_options('<name>', ...)``; the data is
    generated under ``<root>/<name>/<signature>/`` the first time those options are used.
    """

    kind = ""
    preset: str | None = None  # a PRESETS name: its folder and defaults

    def __init__(self, root: str = "", **kwargs: Any) -> None:
        name = self.preset or dataset_name(self.kind)
        preset = PRESETS[self.preset][1] if self.preset else None
        options = resolve_options(self.kind, get_dataset_options(name), preset)
        self.root = os.path.abspath(os.path.expanduser(root))
        self.dataset_dir = str(generate_synthetic(self.kind, self.root, preset=self.preset,
                                                  **options))
        self.options = options
        self.aux_dirs = {"mask": os.path.join(self.dataset_dir, "aux", "masks"),
                         "keypoints": os.path.join(self.dataset_dir, "aux", "keypoints")}
        self.keypoint_format = KEYPOINT_FORMAT[self.kind].name
        train = read_split(self.dataset_dir, "train", relabel=True)
        query = read_split(self.dataset_dir, "query")
        gallery = read_split(self.dataset_dir, "gallery")
        super().__init__(train, query, gallery, **kwargs)


@DATASETS.register("synthetic_person")
class SyntheticPerson(SyntheticImageDataset):
    """Drawn pedestrians (COCO-17 keypoints) seen by several cameras in street clutter."""

    kind = "person"


@DATASETS.register("synthetic_tiger")
class SyntheticTiger(SyntheticImageDataset):
    """Drawn striped tigers (ATRW-15 keypoints) seen by several cameras in grass."""

    kind = "tiger"


@DATASETS.register("synthetic_person_hard")
class SyntheticPersonHard(SyntheticImageDataset):
    """``synthetic_person`` made hard: 200 + 200 identities, per-camera imaging differences
    2.5x stronger, occluders 2.5x as often (see PRESETS; its options override these)."""

    kind = "person"
    preset = "synthetic_person_hard"
