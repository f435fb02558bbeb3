"""Losses that compare a predicted map with a map from the batch (term ``target: mask`` ...).

The target arrives at the input image's resolution; each loss resizes it to the prediction's
size itself, so a model may predict its maps at feature-map resolution.
"""
from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from reid_ext.data.tiger_maps import get_structure
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


class SegmentationCELoss(nn.Module):
    """Per-pixel cross entropy between class-map logits ``[B,C,h,w]`` and a class map
    ``[B,H,W]`` (long, ``ignore_index`` where unsupervised), plus a leg penalty.

    The logits are upsampled (bilinear) to the target's size, so class maps keep their hard
    labels. ``class_weights`` weight the per-pixel CE by the pixel's true class (normalised by
    the weights' sum over pixels, as ``F.cross_entropy`` does). The pose-guided segmentation
    report adds a penalty where a **leg** pixel (true class in ``leg_classes``) is predicted
    (argmax) as another class: those pixels' CE is added again, times ``leg_penalty`` and
    divided by the number of supervised pixels. It is zero when every leg pixel is right.
    ``structure`` (a tiger structure I-IV) sets ``leg_classes`` to that structure's legs.
    """

    def __init__(self, class_weights: list[float] | None = None,
                 leg_classes: list[int] | tuple[int, ...] = (), leg_penalty: float = 1.0,
                 ignore_index: int = -1, structure: str | None = None) -> None:
        super().__init__()
        if structure is not None:
            if leg_classes:
                raise ValueError("segmentation_ce: give leg_classes or structure, not both")
            leg_classes = get_structure(structure).leg_classes
        if leg_penalty < 0:
            raise ValueError(f"segmentation_ce: leg_penalty must be >= 0, got {leg_penalty}")
        weights = None if class_weights is None else torch.tensor(class_weights, dtype=torch.float)
        self.register_buffer("class_weights", weights, persistent=False)
        self.leg_classes = tuple(int(c) for c in leg_classes)
        self.leg_penalty = float(leg_penalty)
        self.ignore_index = ignore_index

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        if logits.dim() != 4:
            raise ValueError(f"segmentation_ce expects logits [B, C, h, w], got "
                             f"{list(logits.shape)}")
        if target.dim() == 4 and target.shape[1] == 1:
            target = target[:, 0]
        if target.dim() != 3 or target.shape[0] != logits.shape[0]:
            raise ValueError(f"segmentation_ce expects a class map [B, H, W] for logits "
                             f"{list(logits.shape)}, got {list(target.shape)}")
        num_classes = logits.shape[1]
        if self.class_weights is not None and len(self.class_weights) != num_classes:
            raise ValueError(f"segmentation_ce: {len(self.class_weights)} class_weights for "
                             f"{num_classes} classes")
        bad = [c for c in self.leg_classes if not 0 <= c < num_classes]
        if bad:
            raise ValueError(f"segmentation_ce: leg_classes {bad} outside 0..{num_classes - 1}")
        target = target.long().to(logits.device)
        if tuple(logits.shape[-2:]) != tuple(target.shape[-2:]):
            logits = F.interpolate(logits.float(), size=tuple(target.shape[-2:]),
                                   mode="bilinear", align_corners=False)
        logits = logits.float()
        loss = F.cross_entropy(logits, target, weight=self.class_weights,
                               ignore_index=self.ignore_index)
        if not self.leg_classes or self.leg_penalty == 0:
            return loss
        valid = target != self.ignore_index
        pixel_ce = F.cross_entropy(logits, target.clamp_min(0), reduction="none")
        legs = torch.zeros_like(valid)
        for c in self.leg_classes:
            legs |= target == c
        wrong = legs & valid & (logits.argmax(1) != target)
        penalty = (pixel_ce * wrong).sum() / valid.sum().clamp_min(1)
        return loss + self.leg_penalty * penalty


LOSSES.register("segmentation_ce", SegmentationCELoss, reads="seg_logits")
