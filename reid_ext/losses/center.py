"""Center loss (Wen et al., 2016) with learnable class centres and their own optimizer.

``loss = 1/2 * mean_i ||f_i - c_{y_i}||^2`` (Wen et al.'s ``1/2 sum``, divided by the batch
size). The strong baseline (Luo et al., 2019; ``layers/center_loss.py``) computes
``mean_i ||f_i - c_{y_i}||^2`` without the 1/2; ``halve=False`` gives exactly that, so its
recipe (weight 0.0005, centre SGD lr 0.5) carries over unchanged.

The centres are trained by the optimizer from :meth:`CenterLoss.make_optimizer`; the engine
divides their gradients by the term's weight before stepping it (the strong-baseline recipe),
so this module does not.
"""
from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.nn.modules.lazy import LazyModuleMixin

from reid_ext.losses.distance import check_batch
from reid_ext.registry import LOSSES


class CenterLoss(LazyModuleMixin, nn.Module):
    """Distance of each feature to its class centre; centres ``[num_classes, feat_dim]``.

    With ``feat_dim=None`` the centres are created at the first forward from the input's
    width, device and dtype (initialised ``N(0, 1)`` like the strong baseline's);
    :meth:`make_optimizer` then has to wait for that forward (the engine calls it after the
    first one).
    """

    def __init__(self, num_classes: int, feat_dim: int | None = None, lr: float = 0.5,
                 halve: bool = True) -> None:
        super().__init__()
        if num_classes < 1:
            raise ValueError(f"center loss: num_classes must be >= 1, got {num_classes}")
        if feat_dim is not None and feat_dim < 1:
            raise ValueError(f"center loss: feat_dim must be >= 1 or None, got {feat_dim}")
        if lr <= 0:
            raise ValueError(f"center loss: lr must be > 0, got {lr}")
        self.num_classes = num_classes
        self.lr = lr
        self.halve = halve
        if feat_dim is None:
            self.centers = nn.UninitializedParameter()
        else:
            self.centers = nn.Parameter(torch.randn(num_classes, feat_dim))

    def initialize_parameters(self, inputs: Tensor, targets: Tensor) -> None:
        """Create lazily-shaped centres from the first batch (LazyModuleMixin hook)."""
        if self.has_uninitialized_params():
            check_batch(inputs, targets, "center loss")
            with torch.no_grad():
                self.centers.materialize(
                    (self.num_classes, inputs.size(1)), device=inputs.device, dtype=inputs.dtype
                )
                self.centers.normal_()

    def forward(self, inputs: Tensor, targets: Tensor) -> Tensor:
        check_batch(inputs, targets, "center loss")
        if inputs.size(1) != self.centers.size(1):
            raise ValueError(
                f"center loss: features have {inputs.size(1)} dims, centres have "
                f"{self.centers.size(1)} (feat_dim)"
            )
        if targets.numel() and (targets.min() < 0 or targets.max() >= self.num_classes):
            raise ValueError(
                f"center loss: labels must lie in [0, {self.num_classes}), got "
                f"[{int(targets.min())}, {int(targets.max())}]"
            )
        squared = (inputs - self.centers[targets]).pow(2).sum(dim=1)
        loss = squared.mean() if squared.numel() else squared.sum()
        return 0.5 * loss if self.halve else loss

    def make_optimizer(self) -> torch.optim.Optimizer:
        """Plain SGD over the centres at ``lr`` (strong baseline: 0.5)."""
        if self.has_uninitialized_params():
            raise RuntimeError(
                "center loss: the centres are created at the first forward (feat_dim=None); "
                "call make_optimizer() after it, or pass feat_dim"
            )
        return torch.optim.SGD([self.centers], lr=self.lr)

    def extra_repr(self) -> str:
        shape = "lazy" if self.has_uninitialized_params() else tuple(self.centers.shape)
        return f"centers={shape}, lr={self.lr}, halve={self.halve}"


@LOSSES.register("center", reads="feats")
def center(num_classes: int, feat_dim: int | None = None, lr: float = 0.5,
           halve: bool = True) -> nn.Module:
    """Center loss; see :class:`CenterLoss`."""
    return CenterLoss(num_classes=num_classes, feat_dim=feat_dim, lr=lr, halve=halve)
