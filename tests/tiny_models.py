"""Small test-only models: fast on CPU, one of them takes the aux maps (mask, keypoints)."""
from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F


class TinyNet(nn.Module):
    """Two conv layers, global pooling, an ID classifier; the reid_ext model contract."""

    aux_inputs: tuple[str, ...] = ()

    def __init__(self, num_classes: int, dim: int = 16) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(3, dim, 3, stride=2, padding=1), nn.BatchNorm2d(dim), nn.ReLU(),
            nn.Conv2d(dim, dim, 3, padding=1), nn.BatchNorm2d(dim), nn.ReLU(),
        )
        self.classifier = nn.Linear(dim, num_classes)

    def forward(self, x: torch.Tensor):
        feats = self.body(x).mean(dim=(2, 3))
        if not self.training:
            return feats
        return {"logits": self.classifier(feats), "feats": feats}


class MaskKeypointPoolNet(nn.Module):
    """Pools a feature map under the foreground mask and around each keypoint.

    The embedding is [mask-pooled feature, mean of keypoint-centred features], so it depends
    on both aux maps: the test checks that changing the mask changes the embedding.
    """

    aux_inputs = ("mask", "keypoints")

    def __init__(self, num_classes: int, dim: int = 16) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(3, dim, 3, padding=1), nn.BatchNorm2d(dim), nn.ReLU(),
            nn.Conv2d(dim, dim, 3, padding=1), nn.BatchNorm2d(dim), nn.ReLU(),
        )
        self.classifier = nn.Linear(2 * dim, num_classes)

    def forward(self, x: torch.Tensor, mask: torch.Tensor, keypoints: torch.Tensor):
        fmap = self.body(x)  # [B, D, H, W], same resolution as the input
        b, _, h, w = fmap.shape
        m = F.interpolate(mask, size=(h, w), mode="bilinear", align_corners=False)
        masked = (fmap * m).sum(dim=(2, 3)) / m.sum(dim=(2, 3)).clamp_min(1e-6)
        grid = torch.stack([keypoints[..., 0] / max(w - 1, 1) * 2 - 1,
                            keypoints[..., 1] / max(h - 1, 1) * 2 - 1], dim=-1)  # [B, K, 2]
        sampled = F.grid_sample(fmap, grid.unsqueeze(2), align_corners=True)  # [B, D, K, 1]
        score = keypoints[..., 2].unsqueeze(1).unsqueeze(-1)  # [B, 1, K, 1]
        kp = (sampled * score).sum(dim=(2, 3)) / score.sum(dim=(2, 3)).clamp_min(1e-6)
        feats = torch.cat([masked, kp], dim=1)
        if not self.training:
            return feats
        return {"logits": self.classifier(feats), "feats": feats}


class MaskAttentionNet(nn.Module):
    """Predicts a foreground map (``mask_logits``) and pools features under it.

    It takes no aux input: the mask only supervises ``mask_logits`` through a loss term with
    ``target: mask`` (tests/test_loss_targets.py).
    """

    aux_inputs: tuple[str, ...] = ()

    def __init__(self, num_classes: int, dim: int = 16) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(3, dim, 3, stride=2, padding=1), nn.BatchNorm2d(dim), nn.ReLU(),
            nn.Conv2d(dim, dim, 3, padding=1), nn.BatchNorm2d(dim), nn.ReLU(),
        )
        self.attention = nn.Conv2d(dim, 1, 1)
        self.classifier = nn.Linear(dim, num_classes)

    def forward(self, x: torch.Tensor):
        fmap = self.body(x)
        mask_logits = self.attention(fmap)
        weights = torch.sigmoid(mask_logits)
        feats = (fmap * weights).sum(dim=(2, 3)) / weights.sum(dim=(2, 3)).clamp_min(1e-6)
        if not self.training:
            return feats
        return {"logits": self.classifier(feats), "feats": feats, "mask_logits": mask_logits}
