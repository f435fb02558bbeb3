"""Mask and keypoint sources: speed (crops/s on CPU) and agreement with synthetic ground truth.

On ``synthetic_person`` (default options; drawn people with exact masks and COCO-17 keypoints)
it measures, per source that is installed here:

- masks: mean IoU of ``mask >= 0.5`` with the ground-truth mask, and the share of crops with
  nothing found;
- keypoints: PCK@0.1 and PCK@0.2 (a ground-truth keypoint with score >= 0.5 is found when the
  prediction has score >= 0.5 and lies within alpha x the larger side of the ground-truth
  keypoints' box), and the share of crops with no pose;
- speed: crops/s of the source call alone (images already decoded), batch 16, after one
  warm-up batch.

torchvision, detectron2 and mmpose models run with random weights (none can be downloaded
here), so only their speed is measured; torchvision's with ``detections_per_img=5`` (a trained
model finds a handful of instances in a Re-ID crop; random weights would otherwise feed 100
instances to the heads). Each runs where its back-end is installed and is skipped elsewhere.

    PYTHONPATH=. python benchmarks/aux_sources.py --root reid-data --num 200 \
        [--sources grabcut,mediapipe_pose,...] [--json out.json]
"""
from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

SOURCES: dict[str, tuple[str, str, dict[str, Any]]] = {
    # name: (kind, registered source, kwargs)
    "grabcut": ("mask", "grabcut", {}),
    "mediapipe_pose_mask": ("mask", "mediapipe", {"model": "pose"}),
    "mediapipe_selfie_mask": ("mask", "mediapipe", {"model": "selfie"}),
    "mediapipe_keypoints": ("keypoints", "mediapipe", {}),
    "torchvision_maskrcnn_800": ("mask", "torchvision",
                                 {"random_weights": True, "detections_per_img": 5}),
    "torchvision_keypointrcnn_800": ("keypoints", "torchvision",
                                     {"random_weights": True, "detections_per_img": 5}),
    "detectron2_maskrcnn_800": ("mask", "detectron2", {"random_weights": True}),
    "mmpose_res50_coco_256x192": ("keypoints", "mmpose", {"random_weights": True,
                                                          "config": "mmpose-coco-res50"}),
}


def _resolve(kwargs: dict[str, Any]) -> dict[str, Any]:
    """Fill in the packaged mmpose config path (it lives inside the installed package)."""
    if kwargs.get("config") == "mmpose-coco-res50":
        from reid_ext.preprocess.keypoints.mmpose import _mmpose_apis

        _mmpose_apis()
        import mmpose

        kwargs = {**kwargs, "config": str(
            Path(mmpose.__file__).parent / ".mim" / "configs" / "body_2d_keypoint"
            / "topdown_heatmap" / "coco" / "td-hm_res50_8xb64-210e_coco-256x192.py")}
    return kwargs


def load_synthetic(root: str, num: int, seed: int = 0):
    """``num`` random crops of the default synthetic_person with their ground truth."""
    from reid_ext.data.synthetic import generate_synthetic, read_split
    from reid_ext.preprocess.cache import KeypointCache, MaskCache, image_relpath
    from reid_ext.preprocess.extract import read_image

    folder = generate_synthetic("person", root)
    items = [i for split in ("train", "query", "gallery") for i in read_split(folder, split)]
    rng = np.random.default_rng(seed)
    chosen = sorted(rng.choice(len(items), size=min(num, len(items)), replace=False))
    paths = [items[i][0] for i in chosen]
    rels = [image_relpath(p, folder) for p in paths]
    masks, points = MaskCache(folder / "aux" / "masks"), KeypointCache(folder / "aux" / "keypoints")
    return ([read_image(p) for p in paths], [masks.get(r) for r in rels],
            [points.get(r) for r in rels])


def timed(source: Callable, images: list[np.ndarray], batch: int = 16) -> tuple[list, float]:
    source(images[:2])  # warm-up (model load, first-call set-up)
    outputs, start = [], time.perf_counter()
    for first in range(0, len(images), batch):
        outputs += source(images[first:first + batch])
    return outputs, len(images) / (time.perf_counter() - start)


def mask_scores(predicted: list[np.ndarray], truth: list[np.ndarray]) -> dict[str, float]:
    ious, empty = [], 0
    for mask, gt in zip(predicted, truth):
        p, g = mask >= 0.5, gt >= 0.5
        empty += int(not p.any())
        ious.append((p & g).sum() / max((p | g).sum(), 1))
    return {"mean_iou": float(np.mean(ious)), "median_iou": float(np.median(ious)),
            "nothing_found": empty / len(predicted)}


def pck(predicted: list[np.ndarray], truth: list[np.ndarray]) -> dict[str, float]:
    hits = {0.1: 0, 0.2: 0}
    total, no_pose = 0, 0
    for pred, gt in zip(predicted, truth):
        no_pose += int(not np.any(pred[:, 2] > 0))
        labelled = gt[:, 2] >= 0.5
        box = gt[labelled, :2]
        scale = float(np.max(box.max(axis=0) - box.min(axis=0)))
        distance = np.linalg.norm(pred[:, :2] - gt[:, :2], axis=1)
        found = pred[:, 2] >= 0.5
        for alpha in hits:
            hits[alpha] += int(np.sum(labelled & found & (distance <= alpha * scale)))
        total += int(labelled.sum())
    return {"pck@0.1": hits[0.1] / total, "pck@0.2": hits[0.2] / total,
            "no_pose": no_pose / len(predicted)}


def main() -> None:
    import reid_ext  # noqa: F401
    from reid_ext.preprocess import keypoints, masks  # noqa: F401
    from reid_ext.preprocess.base import BackendMissingError
    from reid_ext.registry import KEYPOINT_SOURCES, MASK_SOURCES

    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", default="reid-data", help="data root for synthetic_person")
    parser.add_argument("--num", type=int, default=200)
    parser.add_argument("--speed-num", type=int, default=32,
                        help="crops timed for the random-weight (speed only) models")
    parser.add_argument("--sources", default=",".join(SOURCES))
    parser.add_argument("--json", help="write the results here too")
    args = parser.parse_args()
    images, gt_masks, gt_points = load_synthetic(args.root, args.num)
    results: dict[str, dict[str, Any]] = {}
    for name in args.sources.split(","):
        kind, registered, kwargs = SOURCES[name]
        registry = MASK_SOURCES if kind == "mask" else KEYPOINT_SOURCES
        try:
            source = registry.build(registered, **_resolve(kwargs))
        except BackendMissingError as err:
            print(f"{name}: skipped ({err})")
            continue
        speed_only = bool(kwargs.get("random_weights"))
        crops = images[:args.speed_num] if speed_only else images
        outputs, rate = timed(source, crops)
        row: dict[str, Any] = {"crops": len(crops), "crops_per_s": round(rate, 2)}
        if not speed_only:
            row.update(mask_scores(outputs, gt_masks) if kind == "mask"
                       else pck(outputs, gt_points))
        results[name] = row
        print(name, json.dumps(row), flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
