"""Strong-baseline ResNet with BNNeck (Luo et al., "Bag of Tricks and a Strong Baseline").

Last stride 1, global average pooling, a BatchNorm "neck" between the feature and a bias-free
classifier: metric losses see the pre-BN feature, the ID loss sees logits of the post-BN
feature, and the post-BN feature is the embedding at inference.
"""
from __future__ import annotations

import torch
from torch import nn

from reid_ext.layers.backbone import ResNetTrunk, build_resnet
from reid_ext.layers.heads import BNNeck
from reid_ext.registry import MODELS


class BNNeckNet(nn.Module):
    """A ResNet trunk, global average pooling and a :class:`~reid_ext.layers.BNNeck` head."""

    aux_inputs: tuple[str, ...] = ()

    def __init__(self, trunk: ResNetTrunk, num_classes: int) -> None:
        super().__init__()
        self.trunk = trunk
        self.feature_dim = trunk.out_channels
        self.head = BNNeck(self.feature_dim, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor | dict[str, torch.Tensor]:
        feats = self.trunk(x).mean(dim=(2, 3))
        neck_feats, logits = self.head(feats)
        if not self.training:
            return neck_feats
        return {"logits": logits, "feats": feats}


@MODELS.register("resnet18_bnneck")
def resnet18_bnneck(num_classes: int, pretrained: bool | str = True,
                    last_stride: int = 1) -> BNNeckNet:
    """ResNet-18 strong baseline (512-d embedding)."""
    return BNNeckNet(build_resnet("resnet18", pretrained, last_stride), num_classes)


@MODELS.register("resnet50_bnneck")
def resnet50_bnneck(num_classes: int, pretrained: bool | str = True,
                    last_stride: int = 1) -> BNNeckNet:
    """ResNet-50 strong baseline (2048-d embedding)."""
    return BNNeckNet(build_resnet("resnet50", pretrained, last_stride), num_classes)
