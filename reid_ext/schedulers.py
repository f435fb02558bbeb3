"""Learning-rate schedules torchreid lacks, behind one builder any config can name.

``poly``: ``lr = base_lr * (1 - iter / max_iter) ** power``, stepped once per **iteration**
(DeepLab's schedule; the pose-guided segmentation report trains with it). A scheduler that
sets ``per_iteration = True`` is stepped by :class:`reid_ext.engine.ReidEngine` after every
optimizer step and skipped by the host's per-epoch ``update_lr``. Every other name goes to
torchreid's ``build_lr_scheduler``.
"""
from __future__ import annotations

from typing import Any

import torch

from reid_ext import host

SCHEDULERS = ("poly",)


class PolyLR(torch.optim.lr_scheduler.LambdaLR):
    """Polynomial decay to 0 over ``max_iter`` iterations; stays 0 afterwards."""

    per_iteration = True

    def __init__(self, optimizer: torch.optim.Optimizer, max_iter: int, power: float = 0.9,
                 last_epoch: int = -1) -> None:
        if max_iter < 1:
            raise ValueError(f"poly: max_iter must be >= 1, got {max_iter}")
        if power <= 0:
            raise ValueError(f"poly: power must be > 0, got {power}")
        self.max_iter = int(max_iter)
        self.power = float(power)
        super().__init__(optimizer, self.factor, last_epoch=last_epoch)

    def factor(self, step: int) -> float:
        return max(0.0, 1.0 - step / self.max_iter) ** self.power


def build_lr_scheduler(optimizer: torch.optim.Optimizer, lr_scheduler: str = "single_step",
                       *, iters_per_epoch: int = 1, max_epoch: int = 1, power: float = 0.9,
                       **host_kwargs: Any) -> Any:
    """``poly`` here (``max_iter = iters_per_epoch * max_epoch``), anything else by the host."""
    if lr_scheduler == "poly":
        return PolyLR(optimizer, max_iter=max(1, iters_per_epoch * max_epoch), power=power)
    return host.optim.build_lr_scheduler(optimizer, lr_scheduler=lr_scheduler,
                                         max_epoch=max_epoch, **host_kwargs)


def is_per_iteration(scheduler: Any) -> bool:
    return bool(getattr(scheduler, "per_iteration", False))
