"""Mutual-learning losses between peer models (Deep Mutual Learning; Zhang et al., 2018).

Each peer is pulled towards the other's *detached* prediction (``ZG``, zero gradient), so a
peer's term only trains that peer. The ``*_towards`` functions are one direction (the term of
one model, what :class:`reid_ext.mutual_engine.MutualEngine` logs per model); the
``*_mutual_loss`` functions are the symmetric pair sums.
"""
from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor


def _check_same_2d(first: Tensor, second: Tensor, what: str, where: str) -> None:
    if first.shape != second.shape or first.dim() != 2:
        raise ValueError(
            f"{where}: expected two {what} of the same shape, got {tuple(first.shape)} and "
            f"{tuple(second.shape)}"
        )


def metric_towards(dist: Tensor, target_dist: Tensor) -> Tensor:
    """``1/N^2 sum_ij (D_ij - ZG(T_ij))^2``: pulls ``dist`` towards a peer's distances."""
    _check_same_2d(dist, target_dist, "[N, N] distance matrices", "metric_towards")
    return (dist - target_dist.detach()).pow(2).sum() / dist.numel()


def metric_mutual_loss(dist1: Tensor, dist2: Tensor) -> Tensor:
    """``1/N^2 sum_ij ([ZG(M1_ij) - M2_ij]^2 + [M1_ij - ZG(M2_ij)]^2)`` for two ``[N, N]``
    distance matrices of the same batch (the metric mutual loss of AlignedReID).

    The first bracket trains model 2 towards model 1's distances, the second model 1 towards
    model 2's.
    """
    _check_same_2d(dist1, dist2, "[N, N] distance matrices", "metric_mutual_loss")
    return metric_towards(dist1, dist2) + metric_towards(dist2, dist1)


def kl_towards(logits: Tensor, target_logits: Tensor, temperature: float = 1.0) -> Tensor:
    """``T^2 KL(ZG(softmax(target / T)) || softmax(logits / T))``, batch mean of class sums.

    The ``T^2`` keeps the gradient scale independent of the temperature (Hinton et al., 2015).
    """
    _check_same_2d(logits, target_logits, "[B, C] logit matrices", "kl_towards")
    if temperature <= 0:
        raise ValueError(f"kl_towards: temperature must be > 0, got {temperature}")
    log_p = F.log_softmax(logits / temperature, dim=1)
    log_target = F.log_softmax(target_logits.detach() / temperature, dim=1)
    kl = F.kl_div(log_p, log_target, reduction="batchmean", log_target=True)
    return temperature**2 * kl


def kl_mutual_loss(logits1: Tensor, logits2: Tensor, temperature: float = 1.0) -> Tensor:
    """``T^2 [KL(ZG(p2) || p1) + KL(ZG(p1) || p2)]`` with ``p = softmax(logits / T)``: each
    model's softened prediction pulled towards the other's detached one."""
    _check_same_2d(logits1, logits2, "[B, C] logit matrices", "kl_mutual_loss")
    return (kl_towards(logits1, logits2, temperature)
            + kl_towards(logits2, logits1, temperature))
