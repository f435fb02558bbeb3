"""MediaPipe's legacy ``solutions`` (0.10.x up to 0.10.21), shared by the mediapipe sources.

The solutions' models (selfie segmentation, BlazePose lite/full) ship inside the 0.10.x
wheels, so they run offline on CPU; 0.10.30 and later (and 1.x) no longer carry them. Those
wheels pin protobuf<5 and numpy<2, which conflicts with this project's default set
(tensorboard 2.21), so MediaPipe lives in its own environment:

    python3 -m venv /work/venvs/mp && /work/venvs/mp/bin/pip install -e ".[mediapipe]" \\
        -c constraints-mediapipe.txt

Re-ID crops are small (COL780: 48x128) and tight: BlazePose's person detector finds about half
of COL780's people in the bare crops. Each crop is therefore scaled up so that its height is at
least ``min_height`` pixels (bilinear) and centred on a black canvas with a margin of ``pad``
times its height above and below and as much room at the sides as makes the canvas about
square; measured on 40 COL780 crops: 21/40 poses found bare (height 512), 35/40 with
``pad=0.25``, 37/40 with ``pad=0.4``. Results are mapped back to the crop.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from reid_ext.preprocess.base import BackendMissingError

INSTALL = ('pip install -e ".[mediapipe]" -c constraints-mediapipe.txt (in its own venv: '
           'MediaPipe 0.10.x pins protobuf<5 and numpy<2; see README)')


def solutions() -> Any:
    """``mediapipe.solutions``, or :class:`BackendMissingError` saying what to install."""
    try:
        import mediapipe
    except ImportError as err:
        raise BackendMissingError(f"the mediapipe sources need MediaPipe 0.10.x: {INSTALL} "
                                  f"({err})") from err
    found = getattr(mediapipe, "solutions", None)
    if found is None:
        raise BackendMissingError(
            f"mediapipe {getattr(mediapipe, '__version__', '?')} has no legacy 'solutions' "
            f"(removed in 0.10.30): {INSTALL}")
    return found


def version() -> str:
    import mediapipe

    return f"mediapipe {getattr(mediapipe, '__version__', '?')}"


class Canvas:
    """A crop scaled by ``scale`` and pasted at ``(top, left)`` of a padded canvas."""

    def __init__(self, image: np.ndarray, min_height: int, pad: float) -> None:
        import cv2

        height, width = image.shape[:2]
        self.scale = max(1.0, min_height / height)
        size = (max(1, round(width * self.scale)), max(1, round(height * self.scale)))
        scaled = (np.ascontiguousarray(image) if self.scale == 1.0
                  else cv2.resize(image, size, interpolation=cv2.INTER_LINEAR))
        self.inner_h, self.inner_w = scaled.shape[:2]
        self.top = int(round(pad * self.inner_h))
        self.left = max(self.top, self.top + (self.inner_h - self.inner_w) // 2)
        self.pixels = cv2.copyMakeBorder(scaled, self.top, self.top, self.left, self.left,
                                         cv2.BORDER_CONSTANT, value=(0, 0, 0))

    def to_crop(self, x_norm: np.ndarray, y_norm: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Canvas-normalised coordinates -> continuous crop coordinates (pixel j: [j, j+1))."""
        height, width = self.pixels.shape[:2]
        return ((x_norm * width - self.left) / self.scale,
                (y_norm * height - self.top) / self.scale)

    def crop_mask(self, mask: np.ndarray) -> np.ndarray:
        """The part of a canvas-sized mask that covers the scaled crop."""
        return np.asarray(mask)[self.top:self.top + self.inner_h,
                                self.left:self.left + self.inner_w]


def downscale_mask(mask: np.ndarray, height: int, width: int) -> np.ndarray:
    """A float mask back at the crop's size (area averaging keeps it soft and in [0, 1])."""
    import cv2

    mask = np.asarray(mask, dtype=np.float32)
    if mask.shape == (height, width):
        return mask
    return cv2.resize(mask, (width, height), interpolation=cv2.INTER_AREA)
