"""Keypoints -> body-region masks (SpindleNet / GLAD style parts, and tiger parts for ATRW).

A region is the axis-aligned bounding box of its confident keypoints (score > ``threshold``),
grown by ``margin * min(H, W)`` pixels on every side and clipped to the image. Boxes are
binary and computed with one broadcast over regions and pixels (no Python loop per region or
per image), so a whole batch ``[..., K, 3]`` converts at once. Boxes were chosen over blurred
polygons because they need no per-limb widths, are exact to test and work for any skeleton.

A region none of whose keypoints is confident is empty (all zeros): the model sees "no
evidence" rather than a guessed box. A region with a single confident keypoint is a square of
side ``2 * margin * min(H, W)`` around it.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from reid_ext.skeletons import get_keypoint_format


@dataclass(frozen=True)
class PartScheme:
    """Named regions, each the set of keypoints (of one format) whose box it is."""

    name: str
    keypoint_format: str
    regions: tuple[tuple[str, tuple[str, ...]], ...]

    @property
    def region_names(self) -> tuple[str, ...]:
        return tuple(region for region, _ in self.regions)

    @property
    def num_parts(self) -> int:
        return len(self.regions)

    def membership(self) -> torch.Tensor:
        """``[P, K]`` bool: keypoint ``k`` belongs to region ``p``."""
        layout = get_keypoint_format(self.keypoint_format)
        table = torch.zeros(self.num_parts, layout.num_keypoints, dtype=torch.bool)
        for row, (_, names) in enumerate(self.regions):
            table[row, [layout.index(n) for n in names]] = True
        return table


_COCO_HEAD = ("nose", "left_eye", "right_eye", "left_ear", "right_ear")
_COCO_TORSO = ("left_shoulder", "right_shoulder", "left_hip", "right_hip")
_COCO_LEGS = ("left_hip", "right_hip", "left_knee", "right_knee", "left_ankle", "right_ankle")

PART_SCHEMES: dict[str, PartScheme] = {
    scheme.name: scheme
    for scheme in (
        PartScheme(
            "coco_spindle",
            "coco17",
            (
                ("head", _COCO_HEAD),
                ("upper_body", _COCO_TORSO),
                ("lower_body", _COCO_LEGS),
                ("left_arm", ("left_shoulder", "left_elbow", "left_wrist")),
                ("right_arm", ("right_shoulder", "right_elbow", "right_wrist")),
                ("left_leg", ("left_hip", "left_knee", "left_ankle")),
                ("right_leg", ("right_hip", "right_knee", "right_ankle")),
            ),
        ),
        PartScheme(
            "glad",
            "coco17",
            (("head", _COCO_HEAD), ("upper_body", _COCO_TORSO), ("lower_body", _COCO_LEGS)),
        ),
        PartScheme(  # MGRAN's keypoint regions (Zhou & Yu, PAKDD 2020)
            "mgran",
            "coco17",
            (
                ("head_shoulder", (*_COCO_HEAD, "left_shoulder", "right_shoulder")),
                ("upper_body", ("left_shoulder", "right_shoulder", "left_elbow", "right_elbow",
                                "left_wrist", "right_wrist", "left_hip", "right_hip")),
                ("lower_body", _COCO_LEGS),
            ),
        ),
        PartScheme(
            "atrw",
            "atrw15",
            (
                ("head", ("left_ear", "right_ear", "nose")),
                ("body", ("left_shoulder", "right_shoulder", "left_hip", "right_hip", "center")),
                ("front_legs", ("left_shoulder", "right_shoulder", "left_front_paw",
                                "right_front_paw")),
                ("back_legs", ("left_hip", "right_hip", "left_knee", "right_knee",
                               "left_back_paw", "right_back_paw")),
                ("tail", ("left_hip", "right_hip", "tail")),
            ),
        ),
    )
}


def get_part_scheme(name: str) -> PartScheme:
    try:
        return PART_SCHEMES[name]
    except KeyError:
        raise KeyError(f"unknown part scheme '{name}'; known: {sorted(PART_SCHEMES)}") from None


def region_extents(
    keypoints: Any,
    height: int,
    width: int,
    keypoint_format: str,
    scheme: str,
    *,
    threshold: float = 0.1,
    margin: float = 0.1,
    shift: float = 0.0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per region of ``scheme``, the extent ``[..., P, 4]`` (x0, y0, x1, y1) of its confident
    keypoints (score > ``threshold``, coordinates + ``shift``) grown by ``margin * min(H, W)``,
    and ``present [..., P]``; an empty region's extent is (+inf, +inf, -inf, -inf).

    The one place :func:`keypoints_to_parts` and :func:`keypoints_to_boxes` check their input
    and measure regions."""
    parts = get_part_scheme(scheme)
    if parts.keypoint_format != keypoint_format:
        raise ValueError(
            f"part scheme '{scheme}' is defined on '{parts.keypoint_format}' keypoints, "
            f"got '{keypoint_format}'"
        )
    points = torch.as_tensor(np.asarray(keypoints) if not torch.is_tensor(keypoints) else keypoints)
    points = points.float()
    num_keypoints = get_keypoint_format(keypoint_format).num_keypoints
    if points.ndim < 2 or points.shape[-2:] != (num_keypoints, 3):
        raise ValueError(
            f"keypoints must be [..., {num_keypoints}, 3] for '{keypoint_format}', "
            f"got {tuple(points.shape)}"
        )
    use = parts.membership().to(points.device) & (points[..., None, :, 2] > threshold)
    x = points[..., None, :, 0].expand(use.shape) + shift
    y = points[..., None, :, 1].expand(use.shape) + shift
    inf = torch.tensor(float("inf"), device=points.device)
    pad = margin * min(height, width)
    extent = torch.stack([
        torch.where(use, x, inf).amin(-1) - pad,
        torch.where(use, y, inf).amin(-1) - pad,
        torch.where(use, x, -inf).amax(-1) + pad,
        torch.where(use, y, -inf).amax(-1) + pad,
    ], dim=-1)
    return extent, use.any(-1)


def keypoints_to_parts(
    keypoints: Any,
    height: int,
    width: int,
    keypoint_format: str,
    scheme: str,
    *,
    threshold: float = 0.1,
    margin: float = 0.1,
) -> torch.Tensor:
    """Region masks ``[..., P, H, W]`` (float 0/1) from keypoints ``[..., K, 3]`` in pixels.

    ``keypoint_format`` must be the scheme's format (``coco_spindle`` / ``glad``: coco17,
    ``atrw``: atrw15); keypoints with score <= ``threshold`` are ignored.
    """
    extent, _ = region_extents(keypoints, height, width, keypoint_format, scheme,
                               threshold=threshold, margin=margin)
    x0, y0, x1, y1 = extent.unbind(-1)  # [..., P]; +inf/-inf for an empty region
    cols = torch.arange(width, device=extent.device, dtype=extent.dtype)
    rows = torch.arange(height, device=extent.device, dtype=extent.dtype)
    in_x = (cols >= x0[..., None]) & (cols <= x1[..., None])  # [..., P, W]
    in_y = (rows >= y0[..., None]) & (rows <= y1[..., None])  # [..., P, H]
    return (in_y[..., :, None] & in_x[..., None, :]).float()


def keypoints_to_boxes(
    keypoints: torch.Tensor,
    height: int,
    width: int,
    keypoint_format: str,
    scheme: str,
    *,
    threshold: float = 0.1,
    margin: float = 0.1,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Region boxes ``[..., P, 4]`` (x1, y1, x2, y2) and ``present [..., P]``, for RoI pooling.

    The regions :func:`keypoints_to_parts` rasterises (confident keypoints' extent grown by
    ``margin * min(H, W)``), in the continuous pixel coordinates ``roi_align(aligned=True)``
    uses (pixel ``c`` spans ``[c, c + 1]``; keypoints give pixel centres, hence ``+ 0.5``),
    clipped to ``[0, W] x [0, H]``. A horizontal flip of image and keypoints (``x' = W-1-x``,
    left/right swapped) mirrors every box (``x1' = W - x2``) and swaps left/right regions. A region
    without a confident keypoint is absent: its box is all zeros and ``present`` is False (the
    caller picks the fallback). One broadcast over the batch, no loop.
    """
    extent, present = region_extents(keypoints, height, width, keypoint_format, scheme,
                                     threshold=threshold, margin=margin, shift=0.5)
    x0, y0, x1, y1 = extent.unbind(-1)
    boxes = torch.stack([x0.clamp(0, width), y0.clamp(0, height),
                         x1.clamp(0, width), y1.clamp(0, height)], dim=-1)
    return torch.where(present[..., None], boxes, torch.zeros_like(boxes)), present
