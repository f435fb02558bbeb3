"""A BNNeck head on any torchreid backbone: ``model.name bnneck model.kwargs.backbone <name>``.

The wrapped host model is built with its classifier replaced by the identity, so its
training-mode output is its feature vector. Above it sits the bag-of-tricks neck (Luo et al.,
2019): a BatchNorm1d without shift and a bias-free classifier. Metric terms read the pre-BN
``feats``, the cross entropy reads logits of the post-BN feature, and the post-BN feature is the
embedding at inference (``embed='pre'`` returns the pre-BN one instead). The BN decouples the
two losses: CE can shape the normalised feature while the triplet shapes the raw one, which is
what keeps from-scratch runs from collapsing (docs/recipes.md).
"""
from __future__ import annotations

from typing import Any

import torch
from torch import nn

from reid_ext.layers.heads import BNNeck
from reid_ext.models.factory import build_model
from reid_ext.registry import MODELS


class BNNeckWrapper(nn.Module):
    """``backbone`` (a torchreid model whose ``classifier`` is now the identity) + BNNeck."""

    aux_inputs: tuple[str, ...] = ()

    def __init__(self, backbone: nn.Module, feature_dim: int, num_classes: int,
                 embed: str = "post") -> None:
        super().__init__()
        if embed not in ("post", "pre"):
            raise ValueError(f"bnneck: embed must be 'post' or 'pre', got {embed!r}")
        self.backbone = backbone
        self.feature_dim = feature_dim
        self.embed = embed
        self.head = BNNeck(feature_dim, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor | dict[str, torch.Tensor]:
        feats = self.backbone(x)
        if isinstance(feats, (tuple, list)):  # a host model that still returned (y, v)
            feats = feats[-1]
        neck_feats, logits = self.head(feats)
        if not self.training:
            return neck_feats if self.embed == "post" else feats
        return {"logits": logits, "feats": feats}


@MODELS.register("bnneck")
def bnneck(num_classes: int, pretrained: bool | str = True, backbone: str = "osnet_x0_25",
           embed: str = "post", **backbone_kwargs: Any) -> BNNeckWrapper:
    """BNNeck over the torchreid (or reid_ext) model ``backbone``; other kwargs go to it."""
    if backbone == "bnneck":
        raise ValueError("bnneck: the backbone cannot itself be 'bnneck'")
    # loss='softmax': the host model's training output is then classifier(v), i.e. v below
    net = build_model(backbone, num_classes=num_classes, loss="softmax", pretrained=pretrained,
                      **backbone_kwargs)
    classifier = getattr(net, "classifier", None)
    if not isinstance(classifier, nn.Linear):
        raise ValueError(
            f"bnneck: backbone '{backbone}' has no nn.Linear 'classifier' to replace (found "
            f"{type(classifier).__name__}); wrap a torchreid model such as osnet_x0_25 or "
            f"resnet18")
    net.classifier = nn.Identity()
    return BNNeckWrapper(net, classifier.in_features, num_classes, embed=embed)
