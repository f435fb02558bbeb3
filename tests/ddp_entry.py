"""tools/train.py with a BatchNorm-free test model registered (for the torchrun tests).

BatchNorm normalises over each rank's share of the batch (SyncBatchNorm needs CUDA), so only a
model without it can show that 2 processes compute exactly what 1 process computes.
"""
from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import torch
from torch import nn

from reid_ext.registry import MODELS

NAME = "ddp_test_groupnorm"


class GroupNormNet(nn.Module):
    """Two conv + GroupNorm layers, global pooling, an ID classifier."""

    aux_inputs: tuple[str, ...] = ()

    def __init__(self, num_classes: int, dim: int = 16) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(3, dim, 3, stride=2, padding=1), nn.GroupNorm(4, dim), nn.ReLU(),
            nn.Conv2d(dim, dim, 3, padding=1), nn.GroupNorm(4, dim), nn.ReLU(),
        )
        self.classifier = nn.Linear(dim, num_classes)

    def forward(self, x: torch.Tensor):
        feats = self.body(x).mean(dim=(2, 3))
        if not self.training:
            return feats
        return {"logits": self.classifier(feats), "feats": feats}


if NAME not in MODELS:
    MODELS.register(NAME)(lambda num_classes, **kwargs: GroupNormNet(num_classes))

if __name__ == "__main__":
    train = Path(__file__).resolve().parents[1] / "tools" / "train.py"
    spec = importlib.util.spec_from_file_location("train_tool", train)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    sys.exit(module.main(sys.argv[1:]))
