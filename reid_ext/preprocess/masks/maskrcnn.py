"""``torchvision`` masks: Mask R-CNN (``maskrcnn_resnet50_fpn`` or ``_v2``), person class only.

Always installable (torchvision is a core dependency). Each crop's person instances (COCO
label 1, detection score >= ``score_threshold``) go through the instance rule of
:mod:`reid_ext.preprocess.instances`; the chosen instance's soft mask is returned.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from reid_ext.preprocess.base import MaskSource
from reid_ext.preprocess.instances import choose_mask
from reid_ext.preprocess.torchvision_models import TorchvisionDetection
from reid_ext.registry import MASK_SOURCES

MODELS = ("maskrcnn_resnet50_fpn", "maskrcnn_resnet50_fpn_v2")


@MASK_SOURCES.register("torchvision")
class TorchvisionMaskSource(TorchvisionDetection, MaskSource):
    """Mask R-CNN from torchvision. ``min_size`` is the detector's resize target for the short
    side (800 as trained; smaller is faster and worse); ``detections_per_img`` caps the
    instances the heads process (fewer is faster; the subject is nearly always among the first)."""

    name = "torchvision"

    def __init__(
        self,
        model: str = "maskrcnn_resnet50_fpn",
        weights: str | None = None,
        random_weights: bool = False,
        threshold: float = 0.5,
        binary: bool = False,
        score_threshold: float = 0.5,
        min_size: int = 800,
        detections_per_img: int = 100,
        device: str = "cpu",
    ) -> None:
        super().__init__(threshold=threshold, binary=binary)
        self.init_detector(model, MODELS, weights, random_weights, score_threshold, min_size,
                           detections_per_img, device)

    def predict(self, images: list[np.ndarray], relpaths: list[str] | None) -> list[np.ndarray]:
        outputs = self.detect(images)
        masks = []
        for image, out in zip(images, outputs):
            instances = out["masks"][:, 0].cpu().numpy()
            best = choose_mask(instances, self.threshold)
            masks.append(np.zeros(image.shape[:2], np.float32) if best is None
                         else instances[best])
        return masks

    def options(self) -> dict[str, Any]:
        return {**super().options(), **self.detector_options()}
