"""Spindle Net (Zhao et al., CVPR 2017): body-region features fused up a tree.

Seven regions come from body keypoints: three **macro** regions (head, upper body, lower body)
and four **micro** regions (left/right arm, left/right leg): ``reid_ext.data.parts``'s
``coco_spindle`` scheme, each the box of its confident keypoints grown by a margin.

**Feature extraction network.** As in the paper, the whole image goes through every stage;
macro regions are RoI-pooled from an early feature map and go through the later stages;
micro regions are RoI-pooled from a later map and go through the last stage only; all
stages are shared by all regions. On a ResNet trunk (defaults):

    image -> stem, layer1, layer2 ---------------------------> M2  [B, C2, H/8, W/8]
    M2 + 3 macro RoIs of M2  -> layer3 (one pass over 4B maps) -> M3
    M3 + 4 micro RoIs of the image's M3 -> layer4 (one pass over 8B maps) -> global avg pool

Each RoI is cut by one batched RoIAlign call (:func:`reid_ext.layers.roi_crop`,
``spatial_scale`` = map width / image width) at the size of the whole image's map, so the
regions stack with the image along the batch.

**Feature fusion network** (fusion unit = element-wise max of its inputs, then an inner
product layer with ReLU):

    upper'  = unit(upper body, left arm, right arm)
    lower'  = unit(lower body, left leg, right leg)
    body    = unit(head, upper', lower')
    fused   = linear(concat(global, body))         -> the embedding, through a BNNeck

The ID loss reads ``logits`` of the BNNeck, metric losses the pre-BN fused feature
(``feats``); the embedding is the post-BN fused feature.

**Missing regions** (no confident keypoint): fixed proportional boxes, full width: head rows
[0, 0.25 H], upper body and arms [0.15 H, 0.6 H], lower body and legs [0.45 H, H] (which
side an arm is on depends on whether the person faces the camera, so arms and legs get the
whole width). Counted per region in ``fallback_count`` (out of ``images_seen``).
"""
from __future__ import annotations

from typing import Any

import torch
from torch import nn

from reid_ext.data.parts import get_part_scheme, keypoints_to_boxes
from reid_ext.layers.backbone import STAGES, ResNetTrunk, build_resnet
from reid_ext.layers.heads import BNNeck
from reid_ext.layers.roi import roi_crop
from reid_ext.registry import MODELS

SCHEME = "coco_spindle"
REGIONS = get_part_scheme(SCHEME).region_names  # head, upper, lower, l/r arm, l/r leg
MACRO, MICRO = slice(0, 3), slice(3, 7)
# (x1, y1, x2, y2) as fractions of (W, H, W, H), one per region of REGIONS
FALLBACK_BOXES = (
    (0.0, 0.0, 1.0, 0.25), (0.0, 0.15, 1.0, 0.6), (0.0, 0.45, 1.0, 1.0),
    (0.0, 0.15, 1.0, 0.6), (0.0, 0.15, 1.0, 0.6), (0.0, 0.45, 1.0, 1.0), (0.0, 0.45, 1.0, 1.0),
)


def spindle_boxes(keypoints: torch.Tensor, height: int, width: int, margin: float = 0.1,
                  threshold: float = 0.1) -> tuple[torch.Tensor, torch.Tensor]:
    """The seven region boxes ``[B, 7, 4]`` and ``fallback [B, 7]`` (see the module doc)."""
    boxes, present = keypoints_to_boxes(keypoints, height, width, "coco17", SCHEME,
                                        threshold=threshold, margin=margin)
    scale = torch.tensor([width, height, width, height], dtype=boxes.dtype, device=boxes.device)
    fixed = torch.tensor(FALLBACK_BOXES, dtype=boxes.dtype, device=boxes.device) * scale
    return torch.where(present[..., None], boxes, fixed.expand_as(boxes)), ~present


class FusionUnit(nn.Module):
    """Element-wise max over the inputs, then an inner product layer and ReLU."""

    def __init__(self, in_features: int, out_features: int) -> None:
        super().__init__()
        self.linear = nn.Linear(in_features, out_features)
        self.act = nn.ReLU(inplace=True)

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        competed = torch.stack(inputs, dim=0).amax(dim=0)
        return self.act(self.linear(competed))


class FeatureFusion(nn.Module):
    """Spindle Net's fusion tree: arms -> upper body, legs -> lower body, parts -> body."""

    def __init__(self, dim: int, out_dim: int) -> None:
        super().__init__()
        self.upper = FusionUnit(dim, dim)
        self.lower = FusionUnit(dim, dim)
        self.body = FusionUnit(dim, dim)
        self.final = nn.Linear(2 * dim, out_dim)

    def regions(self, region_feats: torch.Tensor) -> torch.Tensor:
        """``[B, 7, C]`` region features (REGIONS order) -> the fused body feature ``[B, C]``."""
        head, upper, lower, l_arm, r_arm, l_leg, r_leg = region_feats.unbind(1)
        return self.body(head, self.upper(upper, l_arm, r_arm), self.lower(lower, l_leg, r_leg))

    def forward(self, global_feat: torch.Tensor, region_feats: torch.Tensor) -> torch.Tensor:
        return self.final(torch.cat([global_feat, self.regions(region_feats)], dim=1))


class SpindleNet(nn.Module):
    """Region features from a shared ResNet at two depths, fused by :class:`FeatureFusion`."""

    aux_inputs: tuple[str, ...] = ("keypoints",)
    keypoint_format = "coco17"

    def __init__(self, trunk: ResNetTrunk, num_classes: int, macro_stage: str = "layer2",
                 micro_stage: str = "layer3", embed_dim: int | None = None,
                 margin: float = 0.1, threshold: float = 0.1) -> None:
        super().__init__()
        if not (macro_stage in STAGES and micro_stage in STAGES
                and STAGES.index(macro_stage) < STAGES.index(micro_stage) < len(STAGES) - 1):
            raise ValueError(f"SpindleNet needs macro_stage before micro_stage before layer4, "
                             f"both among {STAGES}; got macro_stage={macro_stage!r}, "
                             f"micro_stage={micro_stage!r}")
        self.trunk = trunk
        self.macro_stage, self.micro_stage = macro_stage, micro_stage
        self.margin, self.threshold = margin, threshold
        dim = trunk.out_channels
        self.feature_dim = embed_dim or dim
        self.fusion = FeatureFusion(dim, self.feature_dim)
        self.head = BNNeck(self.feature_dim, num_classes)
        self.register_buffer("fallback_count", torch.zeros(len(REGIONS), dtype=torch.long),
                             persistent=False)
        self.register_buffer("images_seen", torch.zeros((), dtype=torch.long), persistent=False)

    def regions(self, keypoints: torch.Tensor, height: int, width: int
                ) -> tuple[torch.Tensor, torch.Tensor]:
        return spindle_boxes(keypoints, height, width, self.margin, self.threshold)

    @staticmethod
    def _pool_rois(fmap: torch.Tensor, boxes: torch.Tensor, width: int) -> torch.Tensor:
        """RoIs of image-pixel ``boxes`` [B, P, 4] cut from ``fmap`` at its size -> [P*B, ...]."""
        crops = roi_crop(fmap, boxes, tuple(fmap.shape[-2:]), spatial_scale=fmap.shape[-1] / width)
        return crops.transpose(0, 1).flatten(0, 1)

    def branch_features(self, x: torch.Tensor, keypoints: torch.Tensor) -> torch.Tensor:
        """Pooled features ``[B, 8, C]``: the whole image, then the seven REGIONS."""
        b, _, height, width = x.shape
        boxes, fallback = self.regions(keypoints.to(x.device), height, width)
        self.fallback_count += fallback.sum(0)
        self.images_seen += b
        early = self.trunk(x, until=self.macro_stage)
        macro = self._pool_rois(early, boxes[:, MACRO], width)
        middle = self.trunk.forward_from(torch.cat([early, macro]), self.macro_stage,
                                         self.micro_stage)  # [4B, ...]: image, 3 macro
        micro = self._pool_rois(middle[:b], boxes[:, MICRO], width)
        late = self.trunk.forward_from(torch.cat([middle, micro]), self.micro_stage, "layer4")
        pooled = late.mean(dim=(2, 3))  # [8B, C], branch-major
        return pooled.view(1 + len(REGIONS), b, -1).transpose(0, 1)

    def forward(self, x: torch.Tensor, keypoints: torch.Tensor
                ) -> torch.Tensor | dict[str, Any]:
        feats = self.branch_features(x, keypoints)
        fused = self.fusion(feats[:, 0], feats[:, 1:])
        neck, logits = self.head(fused)
        if not self.training:
            return neck
        return {"logits": logits, "feats": fused}


@MODELS.register("spindle")
def spindle(num_classes: int, pretrained: bool | str = True, last_stride: int = 1,
            macro_stage: str = "layer2", micro_stage: str = "layer3",
            embed_dim: int | None = None, margin: float = 0.1,
            threshold: float = 0.1) -> SpindleNet:
    """Spindle Net on ResNet-50 (2048-d embedding unless ``embed_dim``)."""
    return SpindleNet(build_resnet("resnet50", pretrained, last_stride), num_classes,
                      macro_stage, micro_stage, embed_dim, margin, threshold)


@MODELS.register("spindle_r18")
def spindle_r18(num_classes: int, pretrained: bool | str = True, last_stride: int = 1,
                macro_stage: str = "layer2", micro_stage: str = "layer3",
                embed_dim: int | None = None, margin: float = 0.1,
                threshold: float = 0.1) -> SpindleNet:
    """Spindle Net on ResNet-18 (512-d embedding unless ``embed_dim``)."""
    return SpindleNet(build_resnet("resnet18", pretrained, last_stride), num_classes,
                      macro_stage, micro_stage, embed_dim, margin, threshold)
