"""``mediapipe`` keypoints: BlazePose's 33 landmarks (legacy ``solutions.pose``) as COCO-17.

Mapping (COCO-17 name <- BlazePose landmark index; both use the person's own left/right):

    nose <- 0, left_eye <- 2, right_eye <- 5, left_ear <- 7, right_ear <- 8,
    left_shoulder <- 11, right_shoulder <- 12, left_elbow <- 13, right_elbow <- 14,
    left_wrist <- 15, right_wrist <- 16, left_hip <- 23, right_hip <- 24,
    left_knee <- 25, right_knee <- 26, left_ankle <- 27, right_ankle <- 28

(BlazePose's eye inner/outer corners, mouth, hand and foot points have no COCO-17 match.)
Coordinates: MediaPipe gives ``x, y`` normalised to the image it saw (the crop scaled and
padded, see :mod:`reid_ext.preprocess.mediapipe_backend`), pixel ``j`` spanning ``[j, j+1)``;
they are mapped back to continuous crop coordinates, then to the cache's pixel indices
(``x - 0.5``).
Score: the landmark's ``visibility`` in [0, 1]; a landmark predicted outside the crop gets
score 0. No pose found -> all scores 0.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from reid_ext.preprocess import mediapipe_backend as backend
from reid_ext.preprocess.base import KeypointSource
from reid_ext.registry import KEYPOINT_SOURCES

BLAZEPOSE_TO_COCO17 = (0, 2, 5, 7, 8, 11, 12, 13, 14, 15, 16, 23, 24, 25, 26, 27, 28)


def landmarks_to_coco17(landmarks: np.ndarray, height: int, width: int) -> np.ndarray:
    """``[33, 3]`` BlazePose landmarks (x, y in continuous crop coordinates, visibility) ->
    ``[17, 3]`` COCO-17 in pixel indices of a ``height x width`` crop (off-crop: score 0)."""
    chosen = np.asarray(landmarks, dtype=np.float32)[list(BLAZEPOSE_TO_COCO17)]
    points = np.empty((17, 3), np.float32)
    points[:, 0] = chosen[:, 0] - 0.5
    points[:, 1] = chosen[:, 1] - 0.5
    inside = ((points[:, 0] >= -0.5) & (points[:, 0] <= width - 0.5)
              & (points[:, 1] >= -0.5) & (points[:, 1] <= height - 0.5))
    points[:, 2] = np.where(inside, np.clip(chosen[:, 2], 0.0, 1.0), 0.0)
    return points


@KEYPOINT_SOURCES.register("mediapipe")
class MediaPipeKeypointSource(KeypointSource):
    """COCO-17 keypoints from MediaPipe's BlazePose (weights ship inside the wheel)."""

    name = "mediapipe"

    def __init__(self, model_complexity: int = 1, min_height: int = 256, pad: float = 0.4,
                 min_detection_confidence: float = 0.5) -> None:
        super().__init__("coco17")
        solutions = backend.solutions()
        self.model_complexity = int(model_complexity)
        self.min_height = int(min_height)
        self.pad = float(pad)
        self.min_detection_confidence = float(min_detection_confidence)
        self.runner = solutions.pose.Pose(
            static_image_mode=True, model_complexity=self.model_complexity,
            enable_segmentation=False, min_detection_confidence=self.min_detection_confidence)
        self.weights = f"mediapipe:pose-complexity{self.model_complexity}"

    def predict(self, images: list[np.ndarray], relpaths: list[str] | None) -> list[np.ndarray]:
        results = []
        for image in images:
            height, width = image.shape[:2]
            canvas = backend.Canvas(image, self.min_height, self.pad)
            found = self.runner.process(canvas.pixels).pose_landmarks
            if found is None:
                results.append(np.zeros((17, 3), np.float32))
                continue
            landmarks = np.array([(p.x, p.y, p.visibility) for p in found.landmark], np.float32)
            landmarks[:, 0], landmarks[:, 1] = canvas.to_crop(landmarks[:, 0], landmarks[:, 1])
            results.append(landmarks_to_coco17(landmarks, height, width))
        return results

    def library_version(self) -> str:
        return backend.version()

    def options(self) -> dict[str, Any]:
        return {"model_complexity": self.model_complexity, "min_height": self.min_height,
                "pad": self.pad, "min_detection_confidence": self.min_detection_confidence}
