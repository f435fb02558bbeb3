"""Losses that compare a predicted map with a map from the batch (term ``target: mask`` ...).

The target arrives at the input image's resolution; each loss resizes it to the prediction's
size itself, so a model may predict its maps at feature-map resolution.
"""
from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from reid_ext.registry import LOSSES


def resize_target_map(target: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """A soft ``[B,C,H,W]`` (or ``[B,H,W]``) target map resized to ``size`` (area averaging)."""
    if target.dim() == 3:
        target = target.unsqueeze(1)
    if target.dim() != 4:
        raise ValueError(f"a target map must be [B, C, H, W] or [B, H, W], got "
                         f"{list(target.shape)}")
    if tuple(target.shape[-2:]) == tuple(size):
        return target.float()
    return F.adaptive_avg_pool2d(target.float(), size)


class MaskBCELoss(nn.Module):
    """Binary cross entropy between predicted map logits ``[B,1,h,w]`` and a soft mask.

    Supervises an attention or foreground map with the pedestrian mask (MGRAN-style); the
    mask is resized to the prediction by area averaging, so it stays a soft target in [0, 1].
    """

    def __init__(self, pos_weight: float = 1.0) -> None:
        super().__init__()
        if pos_weight <= 0:
            raise ValueError(f"mask_bce: pos_weight must be > 0, got {pos_weight}")
        self.pos_weight = pos_weight

    def forward(self, logits: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        if logits.dim() != 4 or logits.shape[1] != 1:
            raise ValueError(f"mask_bce expects map logits [B, 1, h, w], got {list(logits.shape)}")
        target = resize_target_map(mask, tuple(logits.shape[-2:])).to(logits.device)
        weight = torch.tensor(self.pos_weight, device=logits.device)
        return F.binary_cross_entropy_with_logits(logits.float(), target, pos_weight=weight)


LOSSES.register("mask_bce", MaskBCELoss, reads="mask_logits")
