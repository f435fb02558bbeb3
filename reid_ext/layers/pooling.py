"""Masked pooling: one feature vector per soft region map.

``masked_pool(features [B,C,H,W], maps [B,P,h,w])`` -> ``([B,P,C], present [B,P])``. The maps
are resized to the feature map first (bilinear: a soft map stays soft). A region whose map is
(almost) empty on the feature grid pools to zeros and is flagged absent, never to NaN, so a
person seen from behind or a leg cut off by the crop gives a finite, recognisable output.
"""
from __future__ import annotations

import torch
from torch.nn import functional as F

POOL_MODES = ("avg", "max")


def resize_maps(maps: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """``[B,P,h,w]`` soft maps resized to ``size`` (bilinear, values kept in [0, 1])."""
    if maps.dim() != 4:
        raise ValueError(f"region maps must be [B, P, h, w], got {list(maps.shape)}")
    if tuple(maps.shape[-2:]) == tuple(size):
        return maps
    resized = F.interpolate(maps.float(), size=size, mode="bilinear", align_corners=False)
    return resized.clamp_(0.0, 1.0).to(maps.dtype)


def masked_pool(features: torch.Tensor, maps: torch.Tensor, mode: str = "avg",
                min_area: float = 1e-3) -> tuple[torch.Tensor, torch.Tensor]:
    """Pool ``features`` under each region map.

    ``avg``: ``sum(f * m) / sum(m)`` (a weighted mean); ``max``: ``max(f * m)`` over the
    positions where ``m > 0``. A region is present when ``sum(m)`` on the feature grid is at
    least ``min_area`` cells; absent regions give zero vectors.
    """
    if mode not in POOL_MODES:
        raise ValueError(f"masked_pool mode must be one of {POOL_MODES}, got {mode!r}")
    if features.dim() != 4:
        raise ValueError(f"features must be [B, C, H, W], got {list(features.shape)}")
    if maps.shape[0] != features.shape[0]:
        raise ValueError(f"batch sizes differ: features {features.shape[0]}, maps "
                         f"{maps.shape[0]}")
    weights = resize_maps(maps, tuple(features.shape[-2:])).to(features.dtype)  # [B,P,H,W]
    area = weights.sum(dim=(2, 3))  # [B, P]
    present = area >= min_area
    if mode == "avg":
        pooled = torch.einsum("bchw,bphw->bpc", features, weights)
        pooled = pooled / area.clamp_min(min_area).unsqueeze(-1)
    else:
        weighted = features.unsqueeze(1) * weights.unsqueeze(2)  # [B,P,C,H,W]
        outside = (weights <= 0).unsqueeze(2)
        pooled = weighted.masked_fill(outside, float("-inf")).flatten(3).amax(dim=3)
    pooled = torch.where(present.unsqueeze(-1), pooled, torch.zeros_like(pooled))
    return pooled, present
