"""``mediapipe`` masks: MediaPipe's person segmentation, from the legacy ``solutions``.

Two models (``model``):

- ``"pose"`` (default): BlazePose with ``enable_segmentation``; trained on whole bodies, so it
  suits pedestrian crops; a crop where no pose is found gets an all-zero mask;
- ``"selfie"``: the selfie segmenter (``model_selection`` 0, general); made for close-up
  selfies and weaker on full bodies (see docs/benchmarks.md).

The soft mask is returned at the crop's size. Install: see
:mod:`reid_ext.preprocess.mediapipe_backend`.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from reid_ext.preprocess import mediapipe_backend as backend
from reid_ext.preprocess.base import MaskSource, SourceError
from reid_ext.registry import MASK_SOURCES

MODELS = ("pose", "selfie")


@MASK_SOURCES.register("mediapipe")
class MediaPipeMaskSource(MaskSource):
    """Person masks from MediaPipe (weights ship inside the mediapipe wheel)."""

    name = "mediapipe"

    def __init__(self, model: str = "pose", model_complexity: int = 1, min_height: int = 256,
                 pad: float = 0.4, min_detection_confidence: float = 0.5,
                 threshold: float = 0.5, binary: bool = False) -> None:
        super().__init__(threshold=threshold, binary=binary)
        if model not in MODELS:
            raise SourceError(f"mediapipe mask model must be one of {MODELS}, got '{model}'")
        solutions = backend.solutions()
        self.model = model
        self.model_complexity = int(model_complexity)
        self.min_height = int(min_height)
        self.pad = float(pad)
        self.min_detection_confidence = float(min_detection_confidence)
        if model == "pose":
            self.runner = solutions.pose.Pose(
                static_image_mode=True, model_complexity=self.model_complexity,
                enable_segmentation=True,
                min_detection_confidence=self.min_detection_confidence)
        else:
            self.runner = solutions.selfie_segmentation.SelfieSegmentation(model_selection=0)
        self.weights = f"mediapipe:{model}" + (f"-complexity{self.model_complexity}"
                                               if model == "pose" else "-general")

    def predict(self, images: list[np.ndarray], relpaths: list[str] | None) -> list[np.ndarray]:
        masks = []
        for image in images:
            height, width = image.shape[:2]
            canvas = backend.Canvas(image, self.min_height, self.pad)
            result = self.runner.process(canvas.pixels)
            soft = getattr(result, "segmentation_mask", None)
            if soft is None:
                masks.append(np.zeros((height, width), np.float32))
                continue
            inner = canvas.crop_mask(soft)
            masks.append(np.clip(backend.downscale_mask(inner, height, width), 0.0, 1.0))
        return masks

    def library_version(self) -> str:
        return backend.version()

    def options(self) -> dict[str, Any]:
        return {**super().options(), "model": self.model, "min_height": self.min_height,
                "pad": self.pad, "model_complexity": self.model_complexity,
                "min_detection_confidence": self.min_detection_confidence}
