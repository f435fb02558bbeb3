"""Pose-guided segmentation attention for Amur tiger Re-ID (an ATRW plain Re-ID team report).

A segmentation branch predicts the semantic classes of a tiger structure (I-IV, see
:mod:`reid_ext.data.tiger_maps`; trained on class maps drawn from keypoints). Its per-class
probability maps are the attention: the input of each part pathway is the original image times
that class's map (``attention="soft"``), or times the one-hot of the argmax class
(``attention="hard"``, no gradient through the mask). The global pathway sees the whole image.
Every pathway runs the same ResNet trunk (weights shared, one batched pass over the part
images), is average-pooled and has its own BNNeck ID head; the embedding is the concatenation
of the pathways' post-BN features. ``attention="none"`` is the same backbone without the
segmentation branch and the part pathways (the baseline of the ablation).

Training outputs: ``logits`` and ``feats`` (one per pathway; a loss term averages over them)
and ``seg_logits`` ``[B, C, H/4, W/4]`` (read by the ``segmentation_ce`` loss with
``target: seg``). At evaluation the segmentation is predicted, so only the image is needed.

Blocks, the model, its factory.
"""
from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from reid_ext.data.tiger_maps import get_structure
from reid_ext.layers.backbone import ResNetTrunk, build_resnet
from reid_ext.layers.heads import BNNeck
from reid_ext.registry import MODELS

ATTENTION_MODES = ("soft", "hard", "none")
BACKBONE_ALIASES = {"resnext50": "resnext50_32x4d"}


class SegHead(nn.Module):
    """Class logits at stride 4: layer1 features plus upsampled layer3 context (FPN-lite)."""

    def __init__(self, fine_channels: int, coarse_channels: int, num_classes: int,
                 width: int = 64) -> None:
        super().__init__()
        self.fine = nn.Conv2d(fine_channels, width, 1, bias=False)
        self.coarse = nn.Conv2d(coarse_channels, width, 1, bias=False)
        self.fuse = nn.Sequential(
            nn.BatchNorm2d(width), nn.ReLU(inplace=True),
            nn.Conv2d(width, width, 3, padding=1, bias=False), nn.BatchNorm2d(width),
            nn.ReLU(inplace=True), nn.Conv2d(width, num_classes, 1),
        )

    def forward(self, fine: torch.Tensor, coarse: torch.Tensor) -> torch.Tensor:
        up = F.interpolate(self.coarse(coarse), size=fine.shape[-2:], mode="bilinear",
                           align_corners=False)
        return self.fuse(self.fine(fine) + up)


class PoseSegAttentionNet(nn.Module):
    """Segmentation-attention pathways of one tiger structure on a shared ResNet trunk."""

    aux_inputs: tuple[str, ...] = ()
    keypoint_format = "atrw15"
    contract_input_size = (64, 128)

    def __init__(self, trunk: ResNetTrunk, num_classes: int, structure: str = "III",
                 attention: str = "soft") -> None:
        super().__init__()
        if attention not in ATTENTION_MODES:
            raise ValueError(f"attention must be one of {ATTENTION_MODES}, got '{attention}'")
        self.structure = get_structure(structure)
        self.attention = attention
        self.trunk = trunk
        self.pathways = ("global",) if attention == "none" else self.structure.pathways
        self.seg_head = None
        if attention != "none":
            self.seg_head = SegHead(trunk.stage_channels["layer1"],
                                    trunk.stage_channels["layer3"], self.structure.num_classes)
        self.heads = nn.ModuleList(BNNeck(trunk.out_channels, num_classes)
                                   for _ in self.pathways)
        self.feature_dim = trunk.out_channels * len(self.pathways)

    def attention_maps(self, seg_logits: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        """Per-foreground-class maps ``[B, P, H, W]`` at the input size (soft or one-hot)."""
        logits = F.interpolate(seg_logits, size=size, mode="bilinear", align_corners=False)
        if self.attention == "soft":
            return logits.softmax(1)[:, 1:]
        hard = F.one_hot(logits.argmax(1), self.structure.num_classes)  # [B, H, W, C]
        return hard.permute(0, 3, 1, 2)[:, 1:].to(logits.dtype)

    def segment(self, x: torch.Tensor) -> torch.Tensor:
        """Segmentation logits ``[B, C, H/4, W/4]`` of ``x`` (for mIoU and visualisation)."""
        if self.seg_head is None:
            raise RuntimeError("attention='none' has no segmentation branch")
        l1 = self.trunk.forward_from(self.trunk.stem(x), "stem", "layer1")
        return self.seg_head(l1, self.trunk.forward_from(l1, "layer1", "layer3"))

    def forward(self, x: torch.Tensor) -> torch.Tensor | dict[str, object]:
        l1 = self.trunk.forward_from(self.trunk.stem(x), "stem", "layer1")
        l3 = self.trunk.forward_from(l1, "layer1", "layer3")
        pooled = [self.trunk.forward_from(l3, "layer3", "layer4").mean(dim=(2, 3))]
        seg_logits = None
        if self.seg_head is not None:
            seg_logits = self.seg_head(l1, l3)
            maps = self.attention_maps(seg_logits, tuple(x.shape[-2:]))  # [B, P, H, W]
            b, p = maps.shape[:2]
            parts = (x[:, None] * maps[:, :, None]).flatten(0, 1)  # [B*P, 3, H, W]
            part_feats = self.trunk(parts).mean(dim=(2, 3)).view(b, p, -1)
            pooled.extend(part_feats.unbind(1))
        necks, logits = zip(*(head(f) for head, f in zip(self.heads, pooled)))
        if not self.training:
            return torch.cat(necks, dim=1)
        out: dict[str, object] = {"logits": list(logits), "feats": pooled}
        if seg_logits is not None:
            out["seg_logits"] = seg_logits
        return out


@MODELS.register("pose_seg_attention")
def pose_seg_attention(num_classes: int, pretrained: bool | str = False,
                       backbone: str = "resnet18", structure: str = "III",
                       attention: str = "soft", last_stride: int = 1) -> PoseSegAttentionNet:
    """Pose-guided segmentation attention; ``backbone`` resnet18/34/50, resnext50(_32x4d)."""
    arch = BACKBONE_ALIASES.get(backbone, backbone)
    return PoseSegAttentionNet(build_resnet(arch, pretrained, last_stride), num_classes,
                               structure=structure, attention=attention)
