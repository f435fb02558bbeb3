"""``grabcut`` masks: OpenCV GrabCut seeded with a centred rectangle; no weights.

The rectangle leaves ``margin_x`` of the width on each side and ``margin_y`` of the height
above and below as sure background; GrabCut's colour models then split the inside. A fallback
for when no learned model is at hand: it knows nothing of people, so it fails where the
subject's colours match the background (see docs/benchmarks.md for its measured IoU). The
mask is binary (definite or probable foreground = 1).
"""
from __future__ import annotations

from typing import Any

import numpy as np

from reid_ext.preprocess.base import MaskSource, SourceError
from reid_ext.registry import MASK_SOURCES


@MASK_SOURCES.register("grabcut")
class GrabCutMaskSource(MaskSource):
    """GrabCut from a centred rectangle, ``iterations`` rounds, per crop (OpenCV is serial)."""

    name = "grabcut"

    def __init__(self, margin_x: float = 0.1, margin_y: float = 0.05, iterations: int = 5,
                 threshold: float = 0.5, binary: bool = False, seed: int = 0) -> None:
        super().__init__(threshold=threshold, binary=binary)
        for label, value in (("margin_x", margin_x), ("margin_y", margin_y)):
            if not 0.0 <= float(value) < 0.5:
                raise SourceError(f"grabcut {label} must lie in [0, 0.5), got {value}")
        if int(iterations) < 1:
            raise SourceError(f"grabcut iterations must be >= 1, got {iterations}")
        self.margin_x, self.margin_y = float(margin_x), float(margin_y)
        self.iterations = int(iterations)
        self.seed = int(seed)

    def rectangle(self, height: int, width: int) -> tuple[int, int, int, int]:
        """``(x, y, w, h)`` of the seed rectangle; at least one background pixel each side."""
        x = max(1, int(round(self.margin_x * width)))
        y = max(1, int(round(self.margin_y * height)))
        return x, y, max(1, width - 2 * x), max(1, height - 2 * y)

    def predict(self, images: list[np.ndarray], relpaths: list[str] | None) -> list[np.ndarray]:
        import cv2

        cv2.setRNGSeed(self.seed)  # GrabCut's GMM initialisation draws from OpenCV's RNG
        masks = []
        for image in images:
            height, width = image.shape[:2]
            if height < 3 or width < 3:
                masks.append(np.zeros((height, width), np.float32))
                continue
            labels = np.zeros((height, width), np.uint8)
            background = np.zeros((1, 65), np.float64)
            foreground = np.zeros((1, 65), np.float64)
            bgr = np.ascontiguousarray(image[:, :, ::-1])
            try:
                cv2.grabCut(bgr, labels, self.rectangle(height, width), background, foreground,
                            self.iterations, cv2.GC_INIT_WITH_RECT)
            except cv2.error:  # a uniform crop: no colour model can be fitted
                masks.append(np.zeros((height, width), np.float32))
                continue
            person = (labels == cv2.GC_FGD) | (labels == cv2.GC_PR_FGD)
            masks.append(person.astype(np.float32))
        return masks

    def library_version(self) -> str:
        import cv2

        return f"opencv {cv2.__version__}"

    def options(self) -> dict[str, Any]:
        return {**super().options(), "margin_x": self.margin_x, "margin_y": self.margin_y,
                "iterations": self.iterations, "seed": self.seed}
