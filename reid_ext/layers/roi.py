"""Crop-and-resize of per-image boxes (keypoint regions) with ``torchvision.ops.roi_align``.

Boxes are ``[B,P,4]`` as ``(x1, y1, x2, y2)`` in pixels of the tensor they crop (or of the
input image, with ``spatial_scale`` = feature size / image size). All ``B * P`` crops come from
one batched ``roi_align`` call: no Python loop over images or parts.
"""
from __future__ import annotations

import torch
from torchvision.ops import roi_align


def boxes_to_rois(boxes: torch.Tensor) -> torch.Tensor:
    """``[B,P,4]`` boxes -> ``[B*P, 5]`` rois ``(batch index, x1, y1, x2, y2)``."""
    if boxes.dim() != 3 or boxes.shape[-1] != 4:
        raise ValueError(f"boxes must be [B, P, 4] (x1, y1, x2, y2), got {list(boxes.shape)}")
    b, p, _ = boxes.shape
    index = torch.arange(b, device=boxes.device, dtype=boxes.dtype).repeat_interleave(p)
    return torch.cat([index.unsqueeze(1), boxes.reshape(b * p, 4)], dim=1)


def roi_crop(inputs: torch.Tensor, boxes: torch.Tensor, output_size: tuple[int, int],
             spatial_scale: float = 1.0, sampling_ratio: int = 2) -> torch.Tensor:
    """Crop every box of every image and resize it: ``[B,C,H,W]`` x ``[B,P,4]`` -> ``[B,P,C,h,w]``.

    Gradients flow into ``inputs`` (not into the boxes, which come from keypoints).
    """
    b, p = boxes.shape[:2]
    rois = boxes_to_rois(boxes.detach().to(inputs.dtype))
    crops = roi_align(inputs, rois, output_size=output_size, spatial_scale=spatial_scale,
                      sampling_ratio=sampling_ratio, aligned=True)
    return crops.reshape(b, p, *crops.shape[1:])
