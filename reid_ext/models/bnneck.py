"""Strong-baseline ResNet with BNNeck (Luo et al., "Bag of Tricks and a Strong Baseline").

Last stride 1, global average pooling, a BatchNorm "neck" between the feature and a bias-free
classifier: metric losses see the pre-BN feature, the ID loss sees logits of the post-BN
feature, and the post-BN feature is the embedding at inference.
"""
from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torchvision import models as tv_models

from reid_ext.models.pretrained import load_backbone_weights
from reid_ext.registry import MODELS


def _set_last_stride_one(resnet: tv_models.ResNet) -> None:
    block = resnet.layer4[0]
    strided = block.conv2 if isinstance(block, tv_models.resnet.Bottleneck) else block.conv1
    strided.stride = (1, 1)
    if block.downsample is not None:
        block.downsample[0].stride = (1, 1)


class BNNeckNet(nn.Module):
    """A torchvision ResNet trunk + BNNeck head."""

    aux_inputs: tuple[str, ...] = ()

    def __init__(self, trunk: tv_models.ResNet, num_classes: int, last_stride: int = 1) -> None:
        super().__init__()
        if last_stride == 1:
            _set_last_stride_one(trunk)
        elif last_stride != 2:
            raise ValueError(f"last_stride must be 1 or 2, got {last_stride}")
        self.feature_dim = trunk.fc.in_features
        trunk.fc = nn.Identity()
        trunk.avgpool = nn.AdaptiveAvgPool2d(1)
        self.trunk = trunk
        self.neck = nn.BatchNorm1d(self.feature_dim)
        self.neck.bias.requires_grad_(False)  # the bag-of-tricks neck has no shift
        self.classifier = nn.Linear(self.feature_dim, num_classes, bias=False)
        nn.init.ones_(self.neck.weight)
        nn.init.normal_(self.classifier.weight, std=0.001)

    def forward(self, x: torch.Tensor) -> torch.Tensor | dict[str, torch.Tensor]:
        feats = self.trunk(x)
        neck_feats = self.neck(feats)
        if not self.training:
            return neck_feats
        return {"logits": self.classifier(neck_feats), "feats": feats}


def _make(arch: str, weights: Any, num_classes: int, pretrained: bool | str,
          last_stride: int) -> BNNeckNet:
    trunk = getattr(tv_models, arch)(weights=None)
    load_backbone_weights(trunk, pretrained, weights)
    return BNNeckNet(trunk, num_classes, last_stride=last_stride)


@MODELS.register("resnet18_bnneck")
def resnet18_bnneck(num_classes: int, loss: str = "softmax", pretrained: bool | str = True,
                    last_stride: int = 1, use_gpu: bool = True) -> BNNeckNet:
    """ResNet-18 strong baseline (512-d embedding)."""
    return _make("resnet18", tv_models.ResNet18_Weights.IMAGENET1K_V1, num_classes,
                 pretrained, last_stride)


@MODELS.register("resnet50_bnneck")
def resnet50_bnneck(num_classes: int, loss: str = "softmax", pretrained: bool | str = True,
                    last_stride: int = 1, use_gpu: bool = True) -> BNNeckNet:
    """ResNet-50 strong baseline (2048-d embedding)."""
    return _make("resnet50", tv_models.ResNet50_Weights.IMAGENET1K_V1, num_classes,
                 pretrained, last_stride)
