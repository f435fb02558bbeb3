"""MGRAN: mask-guided region attention network (Zhou & Yu, "Mask-Guided Region Attention
Network for Person Re-Identification", PAKDD 2020).

**MRA** (mask-guided region attention) turns each image's auxiliary maps into binary attention
maps, one per branch (:data:`REGIONS`):

- ``global``: the whole image;
- ``foreground``: the pedestrian mask binarised at ``mask_threshold`` (0.5, as the paper);
- ``head_shoulder``, ``upper_body``, ``lower_body``: with ``alignment="region"`` (the paper's
  RL) the keypoint boxes of :func:`reid_ext.data.parts.keypoints_to_parts` (scheme ``mgran``);
  with ``alignment="part"`` (the paper's PL ablation) three fixed horizontal stripes of equal
  height. Either way they are intersected with the foreground, so only the two ablations differ.

**MA** (multi-feature alignment) embeds every branch with one ResNet (shared weights):

- ``mode="paper"``: as published, the backbone runs over the attended images ``x * map``
  (one batched pass of ``B * R`` images); each branch is the global average of its own map.
  Pixels outside a branch's map are zeroed *before* the backbone, so the foreground branch
  cannot see the background at all (in eval mode; in train mode BatchNorm's batch statistics
  still mix the images of a batch). With ImageNet-normalised inputs zero is the mean colour;
  the Market/Duke/CUHK03 configs use the paper's input scaling (``x / 255``, no mean
  subtraction: the paper writes 1/256), where zero is black.
- ``mode="fast"``: one backbone pass over ``x``; the maps, resized to the feature map, drive
  :func:`reid_ext.layers.masked_pool` (weighted average). About the cost of one ResNet, but
  the receptive fields of foreground cells do reach background pixels.

Each branch has its own :class:`~reid_ext.layers.BNNeck` ID head. Training returns
``{"logits": [R x [B, num_classes]], "feats": [B, R*C] (concatenated pre-BN branch features),
"present": [B, R] bool}``; eval returns the concatenated post-BN branch embeddings ``[B, R*C]``
(``C`` = 2048 for ``mgran``, 512 for ``mgran_r18``).

**Missing or empty regions** (a person seen from behind has no face keypoints, a leg cut off
by the crop, an empty mask): a region is *present* when its map, area-averaged onto the
feature grid (:func:`maps_on_grid`), covers at least ``min_area`` cells (the rule of
``masked_pool``). Both modes use that one rule on the same grid, so fast and paper agree on
which regions exist. An absent region's branch feature and embedding slice are
zeros, never NaN, and ``present`` flags it. Its ID head still sees the (zero) feature in
training, a constant input that carries no identity signal.

Aux inputs: ``mask`` ``[B, 1, H, W]`` in [0, 1] and ``keypoints`` ``[B, 17, 3]`` (COCO-17, x, y,
score in pixels of the input). The keypoint regions are built inside the model (so the data
pipeline only carries raw keypoints, and flips swap left/right labels there); ``keypoints``
may be omitted with ``alignment="part"``.
"""
from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from reid_ext.data.parts import get_part_scheme, keypoints_to_parts
from reid_ext.layers.backbone import build_resnet
from reid_ext.layers.heads import BNNeck
from reid_ext.layers.pooling import masked_pool
from reid_ext.registry import MODELS

PART_SCHEME = "mgran"
REGIONS = ("global", "foreground", *get_part_scheme(PART_SCHEME).region_names)
MODES = ("fast", "paper")
ALIGNMENTS = ("region", "part")


def horizontal_stripes(num: int, height: int, width: int, device: torch.device | None = None
                       ) -> torch.Tensor:
    """``[num, H, W]`` 0/1 maps: ``num`` stripes of (nearly) equal height, top to bottom."""
    edges = torch.linspace(0, height, num + 1, device=device).round()
    rows = torch.arange(height, device=device, dtype=edges.dtype)
    inside = (rows >= edges[:-1, None]) & (rows < edges[1:, None])  # [num, H]
    return inside[:, :, None].expand(num, height, width).float()


def mgran_region_maps(mask: torch.Tensor, keypoints: torch.Tensor | None,
                      size: tuple[int, int], alignment: str = "region",
                      mask_threshold: float = 0.5, keypoint_threshold: float = 0.1,
                      margin: float = 0.1) -> torch.Tensor:
    """MRA: ``[B, R, H, W]`` binary attention maps in the order of :data:`REGIONS`.

    ``mask`` ``[B, 1, h, w]`` is resized to ``size`` (bilinear) and binarised at
    ``mask_threshold``; ``keypoints`` ``[B, 17, 3]`` are in pixels of an image of ``size``.
    """
    if alignment not in ALIGNMENTS:
        raise ValueError(f"MGRAN alignment must be one of {ALIGNMENTS}, got {alignment!r}")
    if mask is None or mask.dim() != 4 or mask.shape[1] != 1:
        got = None if mask is None else list(mask.shape)
        raise ValueError(f"MGRAN needs mask [B, 1, H, W] (config aux.mask), got {got}")
    height, width = size
    batch = mask.shape[0]
    if tuple(mask.shape[-2:]) != (height, width):
        mask = F.interpolate(mask.float(), size=size, mode="bilinear", align_corners=False)
    foreground = (mask >= mask_threshold).float()  # [B, 1, H, W]
    if alignment == "region":
        if keypoints is None:
            raise ValueError("MGRAN with alignment='region' needs keypoints [B, 17, 3] "
                             "(config aux.keypoints); alignment='part' does not")
        local = keypoints_to_parts(keypoints, height, width, "coco17", PART_SCHEME,
                                   threshold=keypoint_threshold, margin=margin)
        local = local.to(mask.device)
    else:
        local = horizontal_stripes(3, height, width, mask.device).expand(batch, -1, -1, -1)
    whole = torch.ones_like(foreground)
    return torch.cat([whole, foreground, local * foreground], dim=1)


def maps_on_grid(maps: torch.Tensor, feature_size: tuple[int, int]) -> torch.Tensor:
    """``[B, R, h, w]``: the fraction of each feature cell's pixels a map covers.

    Area averaging, not the bilinear resize of ``masked_pool``: a bilinear downscale by the
    backbone's stride 16-32 samples a few pixel rows only, so a stripe or box lying between
    them would vanish from the grid.
    """
    return F.adaptive_avg_pool2d(maps.float(), feature_size)


def region_presence(grid_maps: torch.Tensor, min_area: float = 1e-3) -> torch.Tensor:
    """``[B, R]`` bool: a map covers >= ``min_area`` cells of the feature grid (as masked_pool)."""
    return grid_maps.sum(dim=(2, 3)) >= min_area


class MGRAN(nn.Module):
    """Global, foreground and three body-region branches over one shared ResNet; see the module."""

    aux_inputs = ("mask", "keypoints")
    keypoint_format = "coco17"
    contract_input_size = (128, 64)  # a 4x2 feature grid: at 64x32 it is 2x1
    region_names = REGIONS

    def __init__(self, num_classes: int, arch: str = "resnet50", pretrained: bool | str = False,
                 mode: str = "fast", alignment: str = "region", last_stride: int = 2,
                 mask_threshold: float = 0.5, keypoint_threshold: float = 0.1,
                 region_margin: float = 0.1, min_area: float = 1e-3) -> None:
        super().__init__()
        if mode not in MODES:
            raise ValueError(f"MGRAN mode must be one of {MODES}, got {mode!r}")
        if alignment not in ALIGNMENTS:
            raise ValueError(f"MGRAN alignment must be one of {ALIGNMENTS}, got {alignment!r}")
        if not 0.0 < mask_threshold <= 1.0:
            raise ValueError(f"MGRAN mask_threshold must be in (0, 1], got {mask_threshold}")
        self.mode, self.alignment = mode, alignment
        self.mask_threshold, self.keypoint_threshold = mask_threshold, keypoint_threshold
        self.region_margin, self.min_area = region_margin, min_area
        self.trunk = build_resnet(arch, pretrained, last_stride)
        self.branch_dim = self.trunk.out_channels
        self.feature_dim = self.branch_dim * len(REGIONS)
        self.heads = nn.ModuleList(BNNeck(self.branch_dim, num_classes) for _ in REGIONS)

    def region_maps(self, x: torch.Tensor, mask: torch.Tensor,
                    keypoints: torch.Tensor | None) -> torch.Tensor:
        """MRA maps ``[B, R, H, W]`` at the input's size."""
        return mgran_region_maps(mask, keypoints, tuple(x.shape[-2:]), self.alignment,
                                 self.mask_threshold, self.keypoint_threshold,
                                 self.region_margin)

    def branch_features(self, x: torch.Tensor, maps: torch.Tensor
                        ) -> tuple[torch.Tensor, torch.Tensor]:
        """``([B, R, C] pre-BN branch features, [B, R] present)``; absent branches are zero."""
        if self.mode == "fast":
            fmap = self.trunk(x)
            grid = maps_on_grid(maps, tuple(fmap.shape[-2:])).to(fmap.dtype)
            return masked_pool(fmap, grid, "avg", self.min_area)
        batch, regions = maps.shape[:2]
        attended = (x.unsqueeze(1) * maps.unsqueeze(2).to(x.dtype)).flatten(0, 1)
        fmap = self.trunk(attended)  # one pass of B * R images, one set of weights
        feats = fmap.mean(dim=(2, 3)).view(batch, regions, -1)
        present = region_presence(maps_on_grid(maps, tuple(fmap.shape[-2:])), self.min_area)
        return feats * present.unsqueeze(-1).to(feats.dtype), present

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None,
                keypoints: torch.Tensor | None = None
                ) -> torch.Tensor | dict[str, torch.Tensor | list[torch.Tensor]]:
        maps = self.region_maps(x, mask, keypoints)
        feats, present = self.branch_features(x, maps)
        necks, logits = zip(*(head(feats[:, r]) for r, head in enumerate(self.heads)))
        if not self.training:
            embedding = torch.stack(necks, dim=1) * present.unsqueeze(-1).to(feats.dtype)
            return embedding.flatten(1)
        return {"logits": list(logits), "feats": feats.flatten(1), "present": present}


# Factories list their keyword arguments: torchreid's build_model passes loss/use_gpu, and the
# host adapter drops what a signature does not name (a **kwargs would swallow them).
@MODELS.register("mgran")
def mgran(num_classes: int, pretrained: bool | str = True, mode: str = "fast",
          alignment: str = "region", last_stride: int = 2, mask_threshold: float = 0.5,
          keypoint_threshold: float = 0.1, region_margin: float = 0.1,
          min_area: float = 1e-3) -> MGRAN:
    """MGRAN on ResNet-50 (embedding 5 x 2048); ``mode="paper"`` is the published network."""
    return MGRAN(num_classes, "resnet50", pretrained, mode, alignment, last_stride,
                 mask_threshold, keypoint_threshold, region_margin, min_area)


@MODELS.register("mgran_r18")
def mgran_r18(num_classes: int, pretrained: bool | str = True, mode: str = "fast",
              alignment: str = "region", last_stride: int = 2, mask_threshold: float = 0.5,
              keypoint_threshold: float = 0.1, region_margin: float = 0.1,
              min_area: float = 1e-3) -> MGRAN:
    """MGRAN on ResNet-18 (embedding 5 x 512), for CPU budgets."""
    return MGRAN(num_classes, "resnet18", pretrained, mode, alignment, last_stride,
                 mask_threshold, keypoint_threshold, region_margin, min_area)
