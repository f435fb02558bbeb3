"""torchreid's own losses, registered as loss terms: label-smoothed CE and batch-hard triplet."""
from __future__ import annotations

import torch
from torch import nn

from reid_ext import host
from reid_ext.registry import LOSSES


@LOSSES.register("softmax", reads="logits")
def softmax_loss(num_classes: int, eps: float = 0.1, label_smooth: bool = True) -> nn.Module:
    """The host's cross entropy with label smoothing (``eps``), on logits."""
    return host.losses.CrossEntropyLoss(
        num_classes=num_classes, eps=eps, use_gpu=torch.cuda.is_available(),
        label_smooth=label_smooth,
    )


@LOSSES.register("triplet", reads="feats")
def triplet_loss(margin: float = 0.3) -> nn.Module:
    """The host's batch-hard triplet loss (euclidean, hard margin), on features."""
    return host.losses.TripletLoss(margin=margin)
