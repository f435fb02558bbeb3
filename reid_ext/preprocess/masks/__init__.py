"""Mask sources; importing registers them in ``MASK_SOURCES`` (back-ends load lazily)."""
from reid_ext.preprocess import annotations  # noqa: F401
from reid_ext.preprocess.masks import detectron2, grabcut, maskrcnn, mediapipe  # noqa: F401
