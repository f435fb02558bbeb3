"""``mmpose`` keypoints: top-down inference through mmpose's own API (a config + checkpoint).

Each crop is one person/animal box (the whole crop), so ``inference_topdown`` runs with
``bboxes=None`` (the full image). The skeleton follows the model's dataset metadata: COCO
human configs give ``coco17``, ATRW configs (``configs/pose/`` has a top-down heatmap one)
give ``atrw15``; their keypoint orders are the same as reid_ext's. mmpose's coordinates are
continuous (pixel ``j`` spans ``[j, j+1)``), so 0.5 is subtracted to get the cache's pixel
indices; scores are the heatmap maxima, clipped to [0, 1], and 0 for a point outside the crop
(mmpose pads the box by 1.25 and widens it to the model's aspect, so points can land there).

Install: see README ("mmpose"): mmpose 1.3.x needs a recipe on numpy 2 machines.
"""
from __future__ import annotations

import os
from typing import Any

import numpy as np

from reid_ext.preprocess.base import (
    BackendMissingError,
    KeypointSource,
    SourceError,
    WeightsError,
    weights_file,
)
from reid_ext.registry import KEYPOINT_SOURCES

SKELETON_OF_DATASET = {"coco": "coco17", "atrw": "atrw15"}


def _mmpose_apis() -> Any:
    try:
        from reid_ext.preprocess.mmpose_compat import ensure_mmcv_ops

        ensure_mmcv_ops()
        from mmpose import apis
    except ImportError as err:
        raise BackendMissingError(
            f"the mmpose keypoint source needs mmpose 1.x: see README, 'mmpose' ({err})"
        ) from err
    return apis


@KEYPOINT_SOURCES.register("mmpose")
class MMPoseKeypointSource(KeypointSource):
    """Top-down keypoints from an mmpose config and checkpoint."""

    name = "mmpose"

    def __init__(self, config: str, weights: str | None = None, random_weights: bool = False,
                 device: str = "cpu") -> None:
        apis = _mmpose_apis()
        if not os.path.isfile(config):
            raise SourceError(f"mmpose config '{config}' does not exist")
        if weights and random_weights:
            raise SourceError("pass either weights or random_weights=True, not both")
        if not weights and not random_weights:
            raise WeightsError("source 'mmpose' needs weights: pass --weights CHECKPOINT (a .pth "
                               "for the config); --random-weights only for tests")
        checkpoint = None if random_weights else str(weights_file(weights))
        self.model = apis.init_model(config, checkpoint, device=device)
        dataset = str(self.model.dataset_meta.get("dataset_name", "")).lower()
        if dataset not in SKELETON_OF_DATASET:
            raise SourceError(f"mmpose config '{config}' is for dataset '{dataset}'; reid_ext "
                              f"knows {sorted(SKELETON_OF_DATASET)}")
        super().__init__(SKELETON_OF_DATASET[dataset])
        self.config = os.path.abspath(config)
        self.inference = apis.inference_topdown
        if random_weights:
            self.set_weights("random", random_weights=True)
        else:
            self.set_weights(os.path.abspath(checkpoint), path=checkpoint)

    def predict(self, images: list[np.ndarray], relpaths: list[str] | None) -> list[np.ndarray]:
        results = []
        for image in images:
            # mmpose reads numpy images as BGR (its LoadImage keeps cv2's order)
            samples = self.inference(self.model, np.ascontiguousarray(image[:, :, ::-1]))
            instances = samples[0].pred_instances
            points = np.zeros((self.num_keypoints, 3), np.float32)
            points[:, :2] = np.asarray(instances.keypoints[0], np.float32) - 0.5
            points[:, 2] = np.clip(np.asarray(instances.keypoint_scores[0], np.float32), 0, 1)
            height, width = image.shape[:2]
            inside = ((points[:, 0] >= -0.5) & (points[:, 0] <= width - 0.5)
                      & (points[:, 1] >= -0.5) & (points[:, 1] <= height - 0.5))
            points[~inside, 2] = 0.0
            results.append(points)
        return results

    def library_version(self) -> str:
        import mmpose

        return f"mmpose {mmpose.__version__}"

    def options(self) -> dict[str, Any]:
        return {"config": self.config}
