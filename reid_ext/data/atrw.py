"""ATRW (Amur Tiger Re-identification in the Wild), plain Re-ID track, as a torchreid dataset.

Files, under the dataset folder (``<root>/atrw`` or the ``data_dir`` option), as published:

- ``atrw_reid_train/train/*.jpg`` and ``atrw_anno_reid_train/reid_list_train.csv``: one
  ``entityid,filename`` row per training image (no header);
- ``atrw_anno_reid_train/reid_keypoints_train.json`` and
  ``atrw_anno_reid_test/reid_keypoints_test.json``: ``{filename: [x1, y1, v1, ..., x15, y15,
  v15]}``, ATRW-15 order (:data:`reid_ext.skeletons.ATRW15`), zeros for an invisible point;
- ``atrw_reid_test/test/*.jpg`` and ``atrw_anno_reid_test/reid_list_test.csv`` (one file name
  per row);
- ``gt_test_plain.json`` (the challenge's evaluation ground truth, a list of
  ``{imgid, entityid, frame: [a, b, c], query}``; the image id is the test file's stem), only
  for the ``test`` protocol; looked up in the dataset folder and then in
  ``eval_script/ATRWEvalScript-main/annotations/`` (or set the ``gt_file`` option).

Protocols (option ``protocol``):

- ``val`` (default): a seeded identity split of the training set. ``val_fraction`` of the
  identities are held out; of each held-out identity with at least two images,
  ``query_per_id`` random images are queries and the rest gallery (single-image identities are
  gallery distractors). The training list has no camera information, so queries get camid 0
  and gallery images camid 1: no gallery image is dropped by torchreid's same-camera rule.
- ``test``: train on the whole training set; queries are the test images whose record says
  ``sing`` or ``multi``, the gallery is every test image. Each test image gets its own camid,
  so torchreid's ranking drops exactly the query's own image; the official numbers (junk rule,
  single/cross-camera split) come from :func:`reid_ext.evaluation.atrw.evaluate_plain` with
  the dataset's ``plain_records``.

Keypoints are served as the dataset's keypoint cache (source ``annotations``): on first use
they are written to ``<dataset>/aux/keypoints`` (or the ``keypoints_dir`` option) in the cache
format of docs/architecture.md, score 1 for a visible point and 0 otherwise.
Malformed or missing files raise :class:`ATRWFormatError` / ``FileNotFoundError`` naming the
file and what was expected.
"""
from __future__ import annotations

import csv
import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from reid_ext import host
from reid_ext.data.options import get_dataset_options
from reid_ext.evaluation.atrw import PlainRecord, evaluate_plain
from reid_ext.preprocess.cache import (
    CacheError,
    KeypointCache,
    write_keypoints,
    write_manifest,
)
from reid_ext.registry import DATASETS
from reid_ext.skeletons import ATRW15

TRAIN_IMAGES = "atrw_reid_train/train"
TEST_IMAGES = "atrw_reid_test/test"
TRAIN_LIST = "atrw_anno_reid_train/reid_list_train.csv"
TEST_LIST = "atrw_anno_reid_test/reid_list_test.csv"
TRAIN_KEYPOINTS = "atrw_anno_reid_train/reid_keypoints_train.json"
TEST_KEYPOINTS = "atrw_anno_reid_test/reid_keypoints_test.json"
GT_PLAIN = "gt_test_plain.json"
GT_CANDIDATES = (GT_PLAIN, "eval_script/ATRWEvalScript-main/annotations/" + GT_PLAIN)
PROTOCOLS = ("val", "test")
CACHE_VERSION = "atrw-annotations-1"


class ATRWFormatError(ValueError):
    """An ATRW annotation file that does not have the published format."""


def _require(path: Path, what: str) -> Path:
    if not path.is_file():
        raise FileNotFoundError(f"ATRW file '{path}' is missing (expected {what})")
    return path


def read_train_list(path: str | os.PathLike) -> list[tuple[int, str]]:
    """``(entityid, filename)`` rows of ``reid_list_train.csv``."""
    path = _require(Path(path), "rows 'entityid,filename'")
    rows = []
    with open(path, newline="") as handle:
        for line_no, row in enumerate(csv.reader(handle), start=1):
            if not row or not "".join(row).strip():
                continue
            if len(row) != 2 or not row[0].strip().lstrip("-").isdigit() or not row[1].strip():
                raise ATRWFormatError(f"{path}, line {line_no}: expected 'entityid,filename' "
                                      f"(an integer id and a file name), got {row}")
            rows.append((int(row[0]), row[1].strip()))
    if not rows:
        raise ATRWFormatError(f"{path} holds no 'entityid,filename' rows")
    return rows


def read_test_list(path: str | os.PathLike) -> list[str]:
    """File names of ``reid_list_test.csv`` (one per row)."""
    path = _require(Path(path), "one test image file name per row")
    names = []
    with open(path, newline="") as handle:
        for line_no, row in enumerate(csv.reader(handle), start=1):
            cells = [c.strip() for c in row if c.strip()]
            if not cells:
                continue
            if len(cells) != 1:
                raise ATRWFormatError(f"{path}, line {line_no}: expected one file name, "
                                      f"got {row}")
            names.append(cells[0])
    if not names:
        raise ATRWFormatError(f"{path} holds no file names")
    return names


def read_keypoints_json(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """``{filename: [15, 3]}`` (x, y, score 1 if visible else 0) from a reid keypoints file."""
    path = _require(Path(path), "{filename: [x1, y1, v1, ..., x15, y15, v15]}")
    try:
        data = json.loads(path.read_text())
    except ValueError as err:
        raise ATRWFormatError(f"{path} is not valid JSON: {err}") from err
    if not isinstance(data, dict):
        raise ATRWFormatError(f"{path} must hold an object {{filename: [45 numbers]}}, got "
                              f"{type(data).__name__}")
    expected = 3 * ATRW15.num_keypoints
    out = {}
    for name, values in data.items():
        if (not isinstance(values, list) or len(values) != expected
                or not all(isinstance(v, (int, float)) for v in values)):
            got = len(values) if isinstance(values, list) else type(values).__name__
            raise ATRWFormatError(f"{path}: keypoints of '{name}' must be a list of {expected} "
                                  f"numbers (x, y, v for 15 points), got {got}")
        points = np.asarray(values, dtype=np.float32).reshape(ATRW15.num_keypoints, 3)
        points[:, 2] = (points[:, 2] > 0).astype(np.float32)
        out[name] = points
    return out


def read_plain_gt(path: str | os.PathLike) -> dict[int, PlainRecord]:
    """``gt_test_plain.json`` as ``{imgid: PlainRecord}``."""
    path = _require(Path(path), "a list of {imgid, entityid, frame, query} objects")
    try:
        data = json.loads(path.read_text())
    except ValueError as err:
        raise ATRWFormatError(f"{path} is not valid JSON: {err}") from err
    if not isinstance(data, list):
        raise ATRWFormatError(f"{path} must hold a list of records, got {type(data).__name__}")
    records = {}
    for i, item in enumerate(data):
        try:
            frame = tuple(int(v) for v in item["frame"])
            record = PlainRecord(int(item["imgid"]), int(item["entityid"]), frame,
                                 str(item["query"]))
        except (KeyError, TypeError, ValueError) as err:
            raise ATRWFormatError(f"{path}, record {i}: expected {{imgid: int, entityid: int, "
                                  f"frame: [3 ints], query: str}}, got {item!r} ({err})") from err
        if len(frame) != 3:
            raise ATRWFormatError(f"{path}, record {i}: 'frame' must have 3 numbers, got "
                                  f"{item['frame']!r}")
        records[record.imgid] = record
    return records


def image_id_of(filename: str, source: str) -> int:
    stem = Path(filename).stem
    if not stem.isdigit():
        raise ATRWFormatError(f"{source}: test image '{filename}' must be named by its numeric "
                              f"image id (e.g. 000123.jpg)")
    return int(stem)


def ensure_keypoint_cache(dataset_dir: Path, cache_dir: Path) -> Path:
    """Write the annotations' keypoints as a keypoint cache unless an up-to-date one exists."""
    entries: dict[str, np.ndarray] = {}
    for images, name in ((TRAIN_IMAGES, TRAIN_KEYPOINTS), (TEST_IMAGES, TEST_KEYPOINTS)):
        if (dataset_dir / name).is_file():
            for filename, points in read_keypoints_json(dataset_dir / name).items():
                entries[f"{images}/{filename}"] = points
    if not entries:
        raise FileNotFoundError(f"ATRW keypoint files '{dataset_dir / TRAIN_KEYPOINTS}' and "
                                f"'{dataset_dir / TEST_KEYPOINTS}' are both missing")
    try:
        cache = KeypointCache(cache_dir)
        if (len(cache) == len(entries) and cache.manifest.get("version") == CACHE_VERSION
                and all(rel in cache for rel in entries)):
            return cache_dir
    except CacheError:
        pass
    write_keypoints(cache_dir, entries, ATRW15.name)
    write_manifest(cache_dir, "keypoints", source="annotations", weights="",
                   version=CACHE_VERSION, count=len(entries), keypoint_format=ATRW15.name)
    return cache_dir


def _split_validation(train: list[tuple[str, int]], fraction: float, query_per_id: int,
                      seed: int) -> tuple[list, list, list]:
    """Seeded identity split of ``(path, entityid)`` rows into train / query / gallery."""
    ids = sorted({eid for _, eid in train})
    rng = np.random.default_rng(seed)
    held = set(rng.permutation(ids)[: max(1, round(fraction * len(ids)))].tolist())
    if len(held) >= len(ids):
        raise ValueError(f"val_fraction {fraction} leaves no training identity "
                         f"({len(ids)} identities)")
    kept = sorted(set(ids) - held)
    label = {eid: i for i, eid in enumerate(kept)}
    train_rows = [(path, label[eid], 0) for path, eid in train if eid in label]
    query, gallery = [], []
    for eid in sorted(held):
        paths = sorted(path for path, e in train if e == eid)
        chosen = set(rng.permutation(len(paths))[:query_per_id].tolist()) if len(paths) > 1 \
            else set()
        for i, path in enumerate(paths):
            (query if i in chosen else gallery).append((path, eid, 0 if i in chosen else 1))
    return train_rows, query, gallery


@DATASETS.register("atrw")
class ATRW(host.get_host().ImageDataset):
    """ATRW plain Re-ID (see the module doc for files, protocols and options)."""

    defaults: dict[str, Any] = {
        "data_dir": None, "protocol": "val", "val_fraction": 0.2, "query_per_id": 1,
        "seed": 0, "gt_file": None, "keypoints_dir": None,
    }

    def __init__(self, root: str = "", **kwargs: Any) -> None:
        options = self.options()
        root = os.path.abspath(os.path.expanduser(root or "."))
        self.dataset_dir = os.path.abspath(os.path.expanduser(
            options["data_dir"] or os.path.join(root, "atrw")))
        folder = Path(self.dataset_dir)
        if not folder.is_dir():
            raise FileNotFoundError(f"ATRW dataset not found: expected the folder '{folder}' "
                                    f"(pass root=, or set the dataset option data_dir)")
        if options["protocol"] not in PROTOCOLS:
            raise ValueError(f"atrw: protocol must be one of {PROTOCOLS}, got "
                             f"'{options['protocol']}'")
        self.protocol = options["protocol"]
        train = [(self._image(folder / TRAIN_IMAGES / name, TRAIN_LIST), eid)
                 for eid, name in read_train_list(folder / TRAIN_LIST)]
        self.plain_records: dict[int, PlainRecord] = {}
        if self.protocol == "val":
            train_rows, query, gallery = _split_validation(
                train, float(options["val_fraction"]), int(options["query_per_id"]),
                int(options["seed"]))
        else:
            train_rows, query, gallery = self._test_protocol(folder, train, options["gt_file"])
        cache_dir = Path(options["keypoints_dir"] or folder / "aux" / "keypoints")
        self.aux_dirs = {"keypoints": str(ensure_keypoint_cache(folder, cache_dir))}
        self.keypoint_format = ATRW15.name
        super().__init__(train_rows, query, gallery, **kwargs)

    @classmethod
    def options(cls) -> dict[str, Any]:
        given = get_dataset_options("atrw")
        unknown = sorted(set(given) - set(cls.defaults))
        if unknown:
            raise KeyError(f"unknown option(s) {unknown} for dataset 'atrw'; known: "
                           f"{sorted(cls.defaults)}")
        return {**cls.defaults, **given}

    @staticmethod
    def _image(path: Path, listed_in: str) -> str:
        if not path.is_file():
            raise FileNotFoundError(f"ATRW image '{path}' listed in {listed_in} is missing")
        return str(path)

    def _test_protocol(self, folder: Path, train: list[tuple[str, int]], gt_file: str | None
                       ) -> tuple[list, list, list]:
        candidates = [Path(gt_file)] if gt_file else [folder / c for c in GT_CANDIDATES]
        gt_path = next((p for p in candidates if p.is_file()), candidates[0])
        self.plain_records = read_plain_gt(_require(
            gt_path, "the plain-protocol ground truth gt_test_plain.json (protocol 'test')"))
        ids = sorted({eid for _, eid in train})
        label = {eid: i for i, eid in enumerate(ids)}
        train_rows = [(path, label[eid], 0) for path, eid in train]
        query, gallery = [], []
        self.query_ids, self.gallery_ids = [], []
        for row, name in enumerate(read_test_list(folder / TEST_LIST)):
            imgid = image_id_of(name, str(folder / TEST_LIST))
            if imgid not in self.plain_records:
                raise ATRWFormatError(f"test image '{name}' has no record in '{gt_path}'")
            record = self.plain_records[imgid]
            item = (self._image(folder / TEST_IMAGES / name, TEST_LIST), record.entityid, row)
            gallery.append(item)
            self.gallery_ids.append(imgid)
            if record.query in ("sing", "multi"):
                query.append(item)
                self.query_ids.append(imgid)
        if not query:
            raise ATRWFormatError(f"'{gt_path}' marks no test image as a 'sing' or 'multi' "
                                  f"query")
        return train_rows, query, gallery


# --- the official numbers of a trained model -----------------------------------------------
def plain_protocol_from_features(query_feats: Any, gallery_feats: Any, dataset: ATRW
                                 ) -> dict[str, float]:
    """Plain-protocol metrics (:func:`~reid_ext.evaluation.atrw.evaluate_plain`) of query and
    gallery embeddings in the order of ``dataset.query`` / ``dataset.gallery`` (euclidean)."""
    import torch

    if dataset.protocol != "test":
        raise ValueError("the plain protocol needs the ATRW dataset built with protocol 'test'")
    q, g = torch.as_tensor(query_feats).float(), torch.as_tensor(gallery_feats).float()
    distmat = torch.cdist(q, g).numpy()
    return evaluate_plain(distmat, dataset.query_ids, dataset.gallery_ids, dataset.plain_records)


def plain_protocol(engine: Any, dataset: ATRW, name: str = "atrw") -> dict[str, float]:
    """Embed ``engine``'s ``name`` test loaders (built from ``dataset``'s options, protocol
    ``test``) and return the official plain-protocol metrics."""
    loaders = engine.datamanager.test_loader[name]
    query, _, _ = engine.extract_loader(loaders["query"], f"{name} query")
    gallery, _, _ = engine.extract_loader(loaders["gallery"], f"{name} gallery")
    model = next(iter(query))
    return plain_protocol_from_features(query[model], gallery[model], dataset)


# --- synthetic_tiger in ATRW's file layout --------------------------------------------------
def _atrw_keypoint_list(points: np.ndarray, threshold: float = 0.1) -> list[float]:
    """``[15, 3]`` (x, y, score) -> ATRW's flat ``[x, y, v] * 15`` (v 2 visible, zeros if not)."""
    flat: list[float] = []
    for x, y, score in points.tolist():
        flat += [round(x, 2), round(y, 2), 2] if score > threshold else [0, 0, 0]
    return flat


def write_synthetic_atrw(out_dir: str | os.PathLike, progress: bool = False,
                         **options: Any) -> Path:
    """Write ``synthetic_tiger`` (generated with ``options``) in ATRW's plain Re-ID layout.

    Training identities become ``atrw_reid_train`` (``entityid`` = synthetic pid); test
    identities become ``atrw_reid_test`` with ``gt_test_plain.json``: odd-numbered test
    identities keep only their first camera and are single-camera (``sing``) queries, the others
    keep every camera (``multi``); the last test identity is written as unknown (entity -1,
    never a query). Frames of one camera are numbered 0, 1, 10, 11, 20, ... so each pair is
    within the junk window of 3 frames. Images are JPEG, named ``{n:06d}.jpg``.
    """
    from PIL import Image

    from reid_ext.data.synthetic import generate_synthetic, plan_images, resolve_options
    from reid_ext.data.synthetic import image_relpath as synthetic_relpath

    resolved = resolve_options("tiger", options)
    source = generate_synthetic("tiger", Path(out_dir) / "_synthetic", progress=progress,
                                **resolved)
    cache = KeypointCache(source / "aux" / "keypoints")
    out = Path(out_dir) / "atrw"
    for sub in (TRAIN_IMAGES, TEST_IMAGES, Path(TRAIN_LIST).parent, Path(TEST_LIST).parent):
        (out / sub).mkdir(parents=True, exist_ok=True)
    first_test = resolved["num_train_ids"] + 1
    last_test = resolved["num_train_ids"] + resolved["num_test_ids"]
    train_rows, train_kp, test_names, test_kp, records = [], {}, [], {}, []
    for split, pid, cam, index in plan_images(resolved):
        rel = synthetic_relpath(split, pid, cam, index)
        image = Image.open(source / rel).convert("RGB")
        points = _atrw_keypoint_list(cache.get(rel))
        if split == "train":
            name = f"{len(train_rows):06d}.jpg"
            image.save(out / TRAIN_IMAGES / name, quality=95)
            train_rows.append((pid, name))
            train_kp[name] = points
            continue
        single = (pid - first_test) % 2 == 0
        if single and cam != 1:
            continue
        imgid = len(test_names)
        name = f"{imgid:06d}.jpg"
        image.save(out / TEST_IMAGES / name, quality=95)
        test_names.append(name)
        test_kp[name] = points
        unknown = pid == last_test
        frame = 10 * ((index - 1) // 2) + (index - 1) % 2
        records.append({"query": "" if unknown else ("sing" if single else "multi"),
                        "entityid": -1 if unknown else pid, "frame": [0, cam - 1, frame],
                        "imgid": imgid})
    with open(out / TRAIN_LIST, "w", newline="") as handle:
        csv.writer(handle).writerows(train_rows)
    with open(out / TEST_LIST, "w", newline="") as handle:
        csv.writer(handle).writerows([name] for name in test_names)
    (out / TRAIN_KEYPOINTS).write_text(json.dumps(train_kp))
    (out / TEST_KEYPOINTS).write_text(json.dumps(test_kp))
    (out / GT_PLAIN).write_text(json.dumps(records))
    return out
