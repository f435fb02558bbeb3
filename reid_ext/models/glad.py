"""GLAD: Global-Local-Alignment Descriptor (Wei et al., ACM MM 2017).

GLAD cuts a pedestrian into three parts from four body points (top of head, neck, right hip,
left hip): the **head** (top of head to neck), the **upper body** (neck to hips) and the
**lower body** (hips to the bottom of the image), each a full-width band, neighbouring bands
overlapping. One CNN with shared weights describes the whole image and each part crop (a
"four-stream" network with shared convolutions); each stream has its own ID classifier, and
the descriptor is the four pooled features concatenated.

Here the part crops are cut from the input image by one batched RoIAlign call
(:func:`reid_ext.layers.roi_crop`), resized to the input size and stacked with the whole
images, so the shared backbone runs once on ``4 * B`` images. Each stream ends in global
average pooling and a :class:`~reid_ext.layers.BNNeck`: metric losses read the pre-BN
``feats`` (a list of four), the ID loss reads ``logits`` (a list of four; a loss term
averages over them), and the embedding is the four post-BN features concatenated.

**COCO-17 -> GLAD points** (:func:`coco_to_glad_points`), with score > ``threshold`` meaning
"confident":

- neck = mean of the confident shoulders;
- right hip, left hip = COCO's hips; "hip level" = mean of the confident hips;
- top of head: COCO has no such point. The face points (nose, eyes, ears) sit around the
  middle of the head, so the top is the neck reflected through their mean:
  ``y_top = 2 * mean_y(face) - y_neck`` (x = the face's mean x). Without a confident face
  point (a person seen from behind often has only ears or nothing), the head is given half
  the torso length above the neck: ``y_top = y_neck - 0.5 * (y_hip - y_neck)``.

**Bands** (continuous pixel rows, pixel ``r`` spans ``[r, r + 1]``, so a keypoint row ``y``
is ``y + 0.5``), with ``o = overlap * H`` (default 0.05 H: the paper's parts overlap; the
amount is our choice):

    head        [y_top - o, y_neck + o]
    upper body  [y_neck - o, y_hip + o]
    lower body  [y_hip - o, H]

clipped to ``[0, H]`` and at least ``min_height * H`` tall. If the neck comes out below the
hips (a bad detection) the two levels are sorted, and the top of the head is kept above the
neck.

**Missing keypoints**: an image without a confident shoulder or without a confident hip gets
fixed proportional bands, from the levels top 0, neck 0.2 H, hips 0.55 H (a centred, upright
pedestrian crop). Such images are counted in the model's ``fallback_count`` buffer (out of
``images_seen``), so a run with a bad keypoint cache shows it.
"""
from __future__ import annotations

from typing import Any

import torch
from torch import nn

from reid_ext.layers.backbone import ResNetTrunk, build_resnet
from reid_ext.layers.heads import BNNeck
from reid_ext.layers.roi import roi_crop
from reid_ext.registry import MODELS
from reid_ext.skeletons import COCO17

GLAD_POINTS = ("head_top", "neck", "right_hip", "left_hip")
GLAD_PARTS = ("head", "upper_body", "lower_body")
FALLBACK_LEVELS = (0.0, 0.2, 0.55)  # top of head, neck, hips, as fractions of the height
_FACE = [COCO17.index(n) for n in ("nose", "left_eye", "right_eye", "left_ear", "right_ear")]
_SHOULDERS = [COCO17.index("left_shoulder"), COCO17.index("right_shoulder")]
_HIPS = [COCO17.index("right_hip"), COCO17.index("left_hip")]


def _confident_mean(points: torch.Tensor, threshold: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean (x, y) of the confident points of ``[..., n, 3]`` -> (``[..., 2]``, any ``[...]``)."""
    use = (points[..., 2] > threshold).to(points.dtype)
    count = use.sum(-1)
    mean = (points[..., :2] * use[..., None]).sum(-2) / count.clamp(min=1)[..., None]
    return mean, count > 0


def coco_to_glad_points(keypoints: torch.Tensor, threshold: float = 0.1) -> torch.Tensor:
    """GLAD's four points ``[..., 4, 3]`` (head top, neck, right hip, left hip) from COCO-17.

    Scores: 1 where the point could be derived (head top: needs face points and a neck), else
    0. See the module doc for the construction.
    """
    kp = torch.as_tensor(keypoints).float()
    if kp.shape[-2:] != (COCO17.num_keypoints, 3):
        raise ValueError(f"GLAD needs COCO-17 keypoints [..., 17, 3], got {tuple(kp.shape)}")
    neck, has_neck = _confident_mean(kp[..., _SHOULDERS, :], threshold)
    face, has_face = _confident_mean(kp[..., _FACE, :], threshold)
    top = torch.stack([face[..., 0], 2 * face[..., 1] - neck[..., 1]], dim=-1)
    has_top = has_face & has_neck
    rows = [
        torch.cat([top, has_top[..., None].to(kp.dtype)], -1),
        torch.cat([neck, has_neck[..., None].to(kp.dtype)], -1),
    ]
    for index in _HIPS:
        hip = kp[..., index, :]
        rows.append(torch.cat([hip[..., :2], (hip[..., 2:] > threshold).to(kp.dtype)], -1))
    return torch.stack(rows, dim=-2)


def glad_levels(points: torch.Tensor, height: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Row levels ``[..., 3]`` (top of head, neck, hips; continuous rows) and ``fallback [...]``.

    ``points`` are GLAD points ``[..., 4, 3]`` (scores 0/1) in pixel-centre coordinates.
    """
    hips, has_hip = _confident_mean(points[..., 2:, :], 0.5)
    has_neck = points[..., 1, 2] > 0.5
    neck_y, hip_y = points[..., 1, 1] + 0.5, hips[..., 1] + 0.5
    neck_y, hip_y = torch.minimum(neck_y, hip_y), torch.maximum(neck_y, hip_y)
    estimated_top = neck_y - 0.5 * (hip_y - neck_y)
    top_y = torch.where(points[..., 0, 2] > 0.5, points[..., 0, 1] + 0.5, estimated_top)
    levels = torch.stack([torch.minimum(top_y, neck_y), neck_y, hip_y], dim=-1)
    fallback = ~(has_neck & has_hip)
    fixed = torch.tensor(FALLBACK_LEVELS, dtype=levels.dtype, device=levels.device) * height
    return torch.where(fallback[..., None], fixed.expand_as(levels), levels), fallback


def glad_boxes(keypoints: torch.Tensor, height: int, width: int, overlap: float = 0.05,
               min_height: float = 0.1, threshold: float = 0.1
               ) -> tuple[torch.Tensor, torch.Tensor]:
    """Head / upper-body / lower-body boxes ``[B, 3, 4]`` from COCO-17 keypoints ``[B, 17, 3]``.

    Returns ``(boxes, fallback [B] bool)``; boxes are ``(x1, y1, x2, y2)`` in the continuous
    pixel coordinates ``roi_align(aligned=True)`` uses, full width. See the module doc.
    """
    levels, fallback = glad_levels(coco_to_glad_points(keypoints, threshold), height)
    top, neck, hip = levels.unbind(-1)
    o = overlap * height
    y1 = torch.stack([top - o, neck - o, hip - o], dim=-1)
    y2 = torch.stack([neck + o, hip + o, torch.full_like(hip, float(height))], dim=-1)
    y1, y2 = y1.clamp(0, height), y2.clamp(0, height)
    tallest = min_height * height  # keep every band at least this tall, inside the image
    y2 = torch.maximum(y2, (y1 + tallest).clamp(max=height))
    y1 = torch.minimum(y1, (y2 - tallest).clamp(min=0))
    x1, x2 = torch.zeros_like(y1), torch.full_like(y1, float(width))
    return torch.stack([x1, y1, x2, y2], dim=-1), fallback


class GLAD(nn.Module):
    """Four streams (whole image, head, upper body, lower body) through one shared trunk."""

    aux_inputs: tuple[str, ...] = ("keypoints",)
    keypoint_format = "coco17"
    contract_input_size = (64, 32)

    def __init__(self, trunk: ResNetTrunk, num_classes: int, overlap: float = 0.05,
                 min_height: float = 0.1, threshold: float = 0.1) -> None:
        super().__init__()
        if not 0 <= overlap < 0.5 or not 0 < min_height <= 1:
            raise ValueError(f"GLAD: overlap must be in [0, 0.5) and min_height in (0, 1]; got "
                             f"overlap={overlap}, min_height={min_height}")
        self.trunk = trunk
        self.overlap, self.min_height, self.threshold = overlap, min_height, threshold
        self.branch_dim = trunk.out_channels
        self.feature_dim = 4 * self.branch_dim
        self.heads = nn.ModuleList(BNNeck(self.branch_dim, num_classes) for _ in range(4))
        self.register_buffer("fallback_count", torch.zeros((), dtype=torch.long),
                             persistent=False)
        self.register_buffer("images_seen", torch.zeros((), dtype=torch.long), persistent=False)

    def regions(self, keypoints: torch.Tensor, height: int, width: int
                ) -> tuple[torch.Tensor, torch.Tensor]:
        """``(boxes [B, 3, 4], fallback [B])`` for images of ``height`` x ``width``."""
        return glad_boxes(keypoints, height, width, self.overlap, self.min_height,
                          self.threshold)

    def branch_inputs(self, x: torch.Tensor, keypoints: torch.Tensor) -> torch.Tensor:
        """The ``[4, B, 3, h, w]`` images the trunk sees: whole image, head, upper, lower."""
        b, _, height, width = x.shape
        boxes, fallback = self.regions(keypoints.to(x.device), height, width)
        self.fallback_count += fallback.sum()
        self.images_seen += b
        crops = roi_crop(x, boxes, (height, width)).transpose(0, 1)  # [3, B, 3, H, W]
        return torch.cat([x.unsqueeze(0), crops], dim=0)

    def branch_features(self, x: torch.Tensor, keypoints: torch.Tensor) -> list[torch.Tensor]:
        """Four pooled ``[B, C]`` features: one trunk pass over the ``4 * B`` images."""
        inputs = self.branch_inputs(x, keypoints)
        pooled = self.trunk(inputs.flatten(0, 1)).mean(dim=(2, 3))
        return list(pooled.view(4, x.shape[0], -1).unbind(0))

    def forward(self, x: torch.Tensor, keypoints: torch.Tensor
                ) -> torch.Tensor | dict[str, Any]:
        feats = self.branch_features(x, keypoints)
        necks, logits = zip(*(head(f) for head, f in zip(self.heads, feats)))
        if not self.training:
            return torch.cat(necks, dim=1)
        return {"logits": list(logits), "feats": feats}

    def fallback_rate(self) -> float:
        """Share of images seen so far that got the fixed proportional bands."""
        return float(self.fallback_count) / max(1, int(self.images_seen))


def _glad(arch: str, num_classes: int, pretrained: bool | str, last_stride: int,
          overlap: float, min_height: float, threshold: float) -> GLAD:
    return GLAD(build_resnet(arch, pretrained, last_stride), num_classes, overlap=overlap,
                min_height=min_height, threshold=threshold)


@MODELS.register("glad")
def glad(num_classes: int, pretrained: bool | str = True, last_stride: int = 1,
         overlap: float = 0.05, min_height: float = 0.1, threshold: float = 0.1) -> GLAD:
    """GLAD on ResNet-50 (8192-d embedding)."""
    return _glad("resnet50", num_classes, pretrained, last_stride, overlap, min_height, threshold)


@MODELS.register("glad_r18")
def glad_r18(num_classes: int, pretrained: bool | str = True, last_stride: int = 1,
             overlap: float = 0.05, min_height: float = 0.1, threshold: float = 0.1) -> GLAD:
    """GLAD on ResNet-18 (2048-d embedding)."""
    return _glad("resnet18", num_classes, pretrained, last_stride, overlap, min_height, threshold)
