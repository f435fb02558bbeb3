"""Which detected instance is *the* person of a Re-ID crop.

A Re-ID crop shows one subject, roughly centred and filling most of the frame; a detector run
on it may also return bystanders cut by the border, or fragments. The rule:

    score_i = area_i * (1 - d_i)

- ``area_i``: the instance's area as a fraction of the crop (mask pixels ``>= threshold``, or
  its box clipped to the crop);
- ``d_i``: the distance from the instance's centre (mask centroid, or box centre) to the crop
  centre, each axis divided by half the crop's extent in that axis and the whole divided by
  sqrt(2), so that ``d`` is 0 at the centre and 1 at a corner.

The instance with the largest score wins; ties go to the earlier instance (detectors list
instances by decreasing confidence). Instances of zero area never win; with none left the
crop has no subject (``None``).
"""
from __future__ import annotations

import math

import numpy as np


def _centre_closeness(cx: np.ndarray, cy: np.ndarray, height: int, width: int) -> np.ndarray:
    """``1 - d`` for centres ``(cx, cy)`` in pixel indices of a ``height x width`` crop."""
    dx = (cx - (width - 1) / 2.0) / (width / 2.0)
    dy = (cy - (height - 1) / 2.0) / (height / 2.0)
    distance = np.sqrt(dx**2 + dy**2) / math.sqrt(2.0)
    return np.clip(1.0 - distance, 0.0, 1.0)


def mask_scores(masks: np.ndarray, threshold: float = 0.5) -> np.ndarray:
    """``score_i`` of each soft mask of ``masks`` ``[N, H, W]`` (see the module rule)."""
    masks = np.asarray(masks, dtype=np.float32)
    if masks.ndim != 3:
        raise ValueError(f"instance masks must be [N, H, W], got shape {masks.shape}")
    count, height, width = masks.shape
    if count == 0:
        return np.zeros(0, dtype=np.float64)
    binary = masks >= threshold
    pixels = binary.reshape(count, -1).sum(axis=1).astype(np.float64)
    rows = np.arange(height, dtype=np.float64)
    cols = np.arange(width, dtype=np.float64)
    safe = np.maximum(pixels, 1.0)
    cy = (binary.sum(axis=2) * rows).sum(axis=1) / safe
    cx = (binary.sum(axis=1) * cols).sum(axis=1) / safe
    scores = pixels / (height * width) * _centre_closeness(cx, cy, height, width)
    return np.where(pixels > 0, scores, 0.0)


def box_scores(boxes: np.ndarray, height: int, width: int) -> np.ndarray:
    """``score_i`` of each box ``[N, 4]`` (x1, y1, x2, y2 in continuous pixel coordinates,
    pixel ``j`` spanning ``[j, j+1)``) in a ``height x width`` crop."""
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    x1 = np.clip(boxes[:, 0], 0, width)
    x2 = np.clip(boxes[:, 2], 0, width)
    y1 = np.clip(boxes[:, 1], 0, height)
    y2 = np.clip(boxes[:, 3], 0, height)
    area = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    # continuous centre -> pixel index (pixel j's centre is at j + 0.5)
    closeness = _centre_closeness((x1 + x2) / 2 - 0.5, (y1 + y2) / 2 - 0.5, height, width)
    return np.where(area > 0, area / (height * width) * closeness, 0.0)


def choose(scores: np.ndarray) -> int | None:
    """Index of the best positive score (first one on ties), or None when none is positive."""
    scores = np.asarray(scores, dtype=np.float64)
    if scores.size == 0 or not np.any(scores > 0):
        return None
    return int(np.argmax(scores))


def choose_mask(masks: np.ndarray, threshold: float = 0.5) -> int | None:
    """The index of the crop's subject among instance masks ``[N, H, W]``, or None."""
    return choose(mask_scores(masks, threshold))


def choose_box(boxes: np.ndarray, height: int, width: int) -> int | None:
    """The index of the crop's subject among instance boxes ``[N, 4]``, or None."""
    return choose(box_scores(boxes, height, width))
