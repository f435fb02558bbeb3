"""Keypoint sources; importing registers them in ``KEYPOINT_SOURCES`` (back-ends load lazily)."""
from reid_ext.preprocess import annotations  # noqa: F401
from reid_ext.preprocess.keypoints import keypointrcnn, mediapipe, mmpose  # noqa: F401
