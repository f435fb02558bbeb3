"""``torchvision`` keypoints: Keypoint R-CNN (``keypointrcnn_resnet50_fpn``), COCO-17.

torchvision lists the 17 keypoints in COCO order, the order of ``coco17``. Its coordinates
are continuous (pixel ``j`` spans ``[j, j+1)``); the cache wants pixel indices, so 0.5 is
subtracted. The score of a keypoint is the instance's detection score times the sigmoid of
the keypoint's heatmap logit (``keypoints_scores``), which puts it in [0, 1]. The person is
chosen among detections (label 1, score >= ``score_threshold``) by the box form of the rule
in :mod:`reid_ext.preprocess.instances`; none -> all scores 0.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from reid_ext.preprocess.base import KeypointSource
from reid_ext.preprocess.instances import choose_box
from reid_ext.preprocess.torchvision_models import TorchvisionDetection
from reid_ext.registry import KEYPOINT_SOURCES

MODELS = ("keypointrcnn_resnet50_fpn",)


@KEYPOINT_SOURCES.register("torchvision")
class TorchvisionKeypointSource(TorchvisionDetection, KeypointSource):
    """Keypoint R-CNN from torchvision (``min_size``: the short side it resizes to)."""

    name = "torchvision"

    def __init__(
        self,
        model: str = "keypointrcnn_resnet50_fpn",
        weights: str | None = None,
        random_weights: bool = False,
        score_threshold: float = 0.5,
        min_size: int = 800,
        detections_per_img: int = 100,
        device: str = "cpu",
    ) -> None:
        super().__init__("coco17")
        self.init_detector(model, MODELS, weights, random_weights, score_threshold, min_size,
                           detections_per_img, device)

    def predict(self, images: list[np.ndarray], relpaths: list[str] | None) -> list[np.ndarray]:
        outputs = self.detect(images)
        results = []
        for image, out in zip(images, outputs):
            boxes = out["boxes"].cpu().numpy()
            best = choose_box(boxes, *image.shape[:2])
            points = np.zeros((self.num_keypoints, 3), np.float32)
            if best is not None:
                xy = out["keypoints"][best, :, :2].cpu().numpy() - 0.5
                logits = out["keypoints_scores"][best].cpu().numpy()
                score = float(out["scores"][best])
                points[:, :2] = xy
                points[:, 2] = score / (1.0 + np.exp(-logits))
            results.append(points)
        return results

    def options(self) -> dict[str, Any]:
        return self.detector_options()
