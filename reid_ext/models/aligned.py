"""AlignedReID (Zhang et al., 2017): a global branch and a local branch of horizontal stripes.

One ResNet trunk; its final map feeds

- the **global branch**: global average pooling -> ``feats`` (read by ``triplet_hard``) ->
  :class:`~reid_ext.layers.BNNeck` -> ``logits`` (ID loss); the post-BN feature is the
  embedding the evaluator ranks;
- the **local branch**: horizontal max pooling into ``num_stripes`` stripes, then a 1x1
  convolution to ``local_dim`` channels with BN and ReLU -> ``local_feats`` ``[B, m, c]``
  (read by ``triplet_local_dp``, :mod:`reid_ext.losses.aligned`, which aligns the stripes
  of two images by dynamic programming).

As in the paper, retrieval uses the global feature alone by default. With the config key
``test.local_distance true`` the engine also extracts :meth:`AlignedReID.local_features` and
ranks by ``d_global + test.local_distance_weight * d_local`` (euclidean global distance, not
squared, as :func:`reid_ext.evaluation.local_distance.global_local_distance` computes it;
weight 1.0 by default, the equal weighting of the AlignedReID paper's "global + local"
distance). Mutual learning: list two models in ``mutual.models`` (MutualEngine's KL and
metric mutual terms act on ``logits`` and the global ``feats``).
"""
from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from reid_ext.layers.backbone import ResNetTrunk, build_resnet
from reid_ext.layers.heads import BNNeck
from reid_ext.registry import MODELS


class AlignedReID(nn.Module):
    """Global + horizontal-stripe local branch on a shared ResNet trunk."""

    aux_inputs: tuple[str, ...] = ()

    def __init__(self, trunk: ResNetTrunk, num_classes: int, num_stripes: int = 8,
                 local_dim: int = 128) -> None:
        super().__init__()
        if num_stripes < 1 or local_dim < 1:
            raise ValueError(f"AlignedReID needs num_stripes >= 1 and local_dim >= 1; got "
                             f"num_stripes={num_stripes}, local_dim={local_dim}")
        self.trunk = trunk
        self.num_stripes = num_stripes
        self.feature_dim = trunk.out_channels
        self.head = BNNeck(self.feature_dim, num_classes)
        self.local_reduce = nn.Sequential(
            nn.Conv2d(trunk.out_channels, local_dim, 1, bias=False),
            nn.BatchNorm2d(local_dim), nn.ReLU(inplace=True),
        )

    def local_from_map(self, fmap: torch.Tensor) -> torch.Tensor:
        """Stripe features ``[B, num_stripes, local_dim]``, top to bottom."""
        stripes = F.adaptive_max_pool2d(fmap, (self.num_stripes, 1))
        return self.local_reduce(stripes).squeeze(-1).transpose(1, 2)

    def local_features(self, x: torch.Tensor) -> torch.Tensor:
        """The local branch alone (for ``test.local_distance``)."""
        return self.local_from_map(self.trunk(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor | dict[str, Any]:
        fmap = self.trunk(x)
        feats = fmap.mean(dim=(2, 3))
        neck, logits = self.head(feats)
        if not self.training:
            return neck
        return {"logits": logits, "feats": feats, "local_feats": self.local_from_map(fmap)}


@MODELS.register("aligned_r18")
def aligned_r18(num_classes: int, pretrained: bool | str = True, last_stride: int = 1,
                num_stripes: int = 8, local_dim: int = 128) -> AlignedReID:
    """AlignedReID on ResNet-18 (512-d global embedding)."""
    return AlignedReID(build_resnet("resnet18", pretrained, last_stride), num_classes,
                       num_stripes, local_dim)


@MODELS.register("aligned_r50")
def aligned_r50(num_classes: int, pretrained: bool | str = True, last_stride: int = 1,
                num_stripes: int = 8, local_dim: int = 128) -> AlignedReID:
    """AlignedReID on ResNet-50 (2048-d global embedding)."""
    return AlignedReID(build_resnet("resnet50", pretrained, last_stride), num_classes,
                       num_stripes, local_dim)
