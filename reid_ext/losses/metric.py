"""Metric-learning losses on a batch of embeddings: triplets, MSML, contrastive, quadruplet.

Every loss works on the whole ``B x B`` distance matrix with identity masks (no loop over
anchors) and on any device. ``metric="euclidean"`` is torchreid's clamped-sqrt distance,
``metric="cosine"`` is ``1 - cos``.

Anchors that cannot form the loss's tuple are left out of the mean, never filled in: an
identity with a single image in the batch has no positive, an all-same-identity batch has no
negative. A batch with no usable tuple gives a zero loss that still has a ``grad_fn`` (so the
engine's ``backward()`` works and every gradient is zero).

Registered in ``LOSSES`` as ``triplet_hard``, ``triplet_soft_hard``, ``msml``, ``contrastive``,
``triplet_improved`` and ``quadruplet``; each factory takes ``num_classes`` (ignored) and its
own keyword arguments.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from reid_ext.losses.distance import (
    check_batch,
    check_margin,
    check_metric,
    identity_masks,
    masked_max,
    masked_mean,
    masked_min,
    masked_softmax,
    pairwise_distance_l2,
)
from reid_ext.registry import LOSSES


def ranking_hinge(d_pos: Tensor, d_neg: Tensor, margin: float, soft_margin: bool) -> Tensor:
    """``relu(d_pos - d_neg + margin)``, or ``softplus(d_pos - d_neg)`` with ``soft_margin``."""
    if soft_margin:
        return F.softplus(d_pos - d_neg)
    return F.relu(d_pos - d_neg + margin)


class MetricLoss(nn.Module):
    """Shared plumbing: input checks, the distance matrix and the identity masks."""

    def __init__(self, metric: str = "euclidean") -> None:
        super().__init__()
        self.metric = check_metric(metric)

    def distances(self, inputs: Tensor, targets: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Return ``(dist [B, B], positive mask, negative mask)`` for a checked batch."""
        check_batch(inputs, targets, type(self).__name__)
        positive, negative = identity_masks(targets)
        return pairwise_distance_l2(inputs, metric=self.metric), positive, negative

    def extra_repr(self) -> str:
        return f"metric={self.metric!r}"


class BatchHardTripletLoss(MetricLoss):
    """Batch-hard triplet loss (Hermans et al., 2017).

    Per anchor ``a``: ``d_ap = max`` distance to its positives, ``d_an = min`` distance to its
    negatives, loss ``relu(d_ap - d_an + margin)`` (or ``softplus(d_ap - d_an)``), averaged
    over the anchors that have at least one positive and one negative. On batches where every
    anchor has both, it equals torchreid's ``TripletLoss``. torchreid instead counts an
    anchor without a positive with ``d_ap = 1e-6`` (its distance to itself) and fails on a
    batch without negatives.
    """

    def __init__(self, margin: float = 0.3, soft_margin: bool = False,
                 metric: str = "euclidean") -> None:
        super().__init__(metric)
        self.margin = check_margin("margin", margin)
        self.soft_margin = soft_margin

    def forward(self, inputs: Tensor, targets: Tensor) -> Tensor:
        dist, positive, negative = self.distances(inputs, targets)
        d_ap = masked_max(dist, positive)
        d_an = masked_min(dist, negative)
        valid = positive.any(dim=1) & negative.any(dim=1)
        return masked_mean(ranking_hinge(d_ap, d_an, self.margin, self.soft_margin), valid)


class SoftHardTripletLoss(BatchHardTripletLoss):
    """Triplet loss with softmax-weighted positives and negatives (AGW's weighted triplet).

    Per anchor: ``d_ap = sum_p softmax_p(d_ap') * d_ap'`` over its positives (far positives
    weigh more) and ``d_an = sum_n softmax_n(-d_an') * d_an'`` over its negatives (close
    negatives weigh more); then the same hinge and anchor mean as the batch-hard loss. The
    weights are not detached: the gradient also flows through them.
    """

    def forward(self, inputs: Tensor, targets: Tensor) -> Tensor:
        dist, positive, negative = self.distances(inputs, targets)
        d_ap = (masked_softmax(dist, positive) * dist).sum(dim=1)
        d_an = (masked_softmax(-dist, negative) * dist).sum(dim=1)
        valid = positive.any(dim=1) & negative.any(dim=1)
        return masked_mean(ranking_hinge(d_ap, d_an, self.margin, self.soft_margin), valid)


class MarginSampleMiningLoss(BatchHardTripletLoss):
    """Margin sample mining loss, MSML (Xiao et al., 2017): one triplet per batch.

    ``relu(max d over all positive pairs - min d over all negative pairs + margin)`` (or the
    soft-margin form). Zero (with a ``grad_fn``) when the batch has no positive pair or no
    negative pair.
    """

    def forward(self, inputs: Tensor, targets: Tensor) -> Tensor:
        dist, positive, negative = self.distances(inputs, targets)
        upper = torch.ones_like(positive).triu(diagonal=1)  # each unordered pair once
        positive, negative = positive & upper, negative & upper
        hardest_positive = masked_max(dist.flatten(), positive.flatten(), dim=0)
        hardest_negative = masked_min(dist.flatten(), negative.flatten(), dim=0)
        valid = positive.any() & negative.any()
        loss = ranking_hinge(hardest_positive, hardest_negative, self.margin, self.soft_margin)
        return masked_mean(loss.unsqueeze(0), valid.unsqueeze(0))


class ContrastiveLoss(MetricLoss):
    """Pairwise contrastive loss (Hadsell et al., 2006), mean over the unordered pairs.

    For each pair ``i < j``: ``d`` if same identity, ``relu(margin - d)`` otherwise; with
    ``squared=True``: ``d^2`` and ``relu(margin - d)^2``. The loss is the plain mean over all
    ``B(B-1)/2`` pairs (no 1/2 factor); zero with a ``grad_fn`` for ``B < 2``.
    """

    def __init__(self, margin: float = 1.0, squared: bool = False,
                 metric: str = "euclidean") -> None:
        super().__init__(metric)
        self.margin = check_margin("margin", margin)
        self.squared = squared

    def forward(self, inputs: Tensor, targets: Tensor) -> Tensor:
        dist, positive, _ = self.distances(inputs, targets)
        pull, push = dist, F.relu(self.margin - dist)
        if self.squared:
            pull, push = pull.pow(2), push.pow(2)
        per_pair = torch.where(positive, pull, push)
        upper = torch.ones_like(positive).triu(diagonal=1)
        return masked_mean(per_pair, upper)


class ImprovedTripletLoss(BatchHardTripletLoss):
    """Improved triplet loss (Cheng et al., 2016) with batch-hard mining.

    ``mean_a relu(d_ap - d_an + margin) + beta_weight * mean_a relu(d_ap - beta)``: the second,
    absolute term pulls every anchor's hardest positive within ``beta``. The triplet term is
    averaged over anchors with a positive and a negative, the absolute term over anchors with
    a positive.
    """

    def __init__(self, margin: float = 0.3, beta: float = 0.1, beta_weight: float = 1.0,
                 soft_margin: bool = False, metric: str = "euclidean") -> None:
        super().__init__(margin, soft_margin, metric)
        self.beta = check_margin("beta", beta)
        self.beta_weight = float(beta_weight)

    def forward(self, inputs: Tensor, targets: Tensor) -> Tensor:
        dist, positive, negative = self.distances(inputs, targets)
        d_ap = masked_max(dist, positive)
        d_an = masked_min(dist, negative)
        has_positive = positive.any(dim=1)
        triplet = masked_mean(ranking_hinge(d_ap, d_an, self.margin, self.soft_margin),
                              has_positive & negative.any(dim=1))
        absolute = masked_mean(F.relu(d_ap - self.beta), has_positive)
        return triplet + self.beta_weight * absolute


class QuadrupletLoss(BatchHardTripletLoss):
    """Quadruplet loss (Chen et al., 2017) with hardest-sample mining.

    Per anchor ``a`` with hardest positive ``d_ap`` and hardest negative ``d_an``:
    ``relu(d_ap - d_an + margin)`` plus ``relu(d_ap - d_kl + margin2)``, where ``d_kl`` is the
    smallest distance over pairs ``(k, l)`` of two different identities, both different from
    ``a``'s (the pair shares no image with the anchor's identity). Each term is averaged over
    the anchors that can form it (the second needs at least three identities in the batch).
    Chen et al. use ``margin2 < margin``.

    ``relative=False`` gives the absolute second term ``relu(margin2 - d_kl)`` (negative pairs
    pushed beyond ``margin2`` whatever the anchor's positives), averaged over every anchor
    with such a pair; the default is the paper's relative form above.
    """

    def __init__(self, margin: float = 0.3, margin2: float = 0.15, soft_margin: bool = False,
                 metric: str = "euclidean", relative: bool = True) -> None:
        super().__init__(margin, soft_margin, metric)
        self.margin2 = check_margin("margin2", margin2)
        self.relative = relative

    def forward(self, inputs: Tensor, targets: Tensor) -> Tensor:
        dist, positive, negative = self.distances(inputs, targets)
        d_ap = masked_max(dist, positive)
        d_an = masked_min(dist, negative)
        has_positive = positive.any(dim=1)
        triplet = masked_mean(ranking_hinge(d_ap, d_an, self.margin, self.soft_margin),
                              has_positive & negative.any(dim=1))
        d_kl = hardest_foreign_negative_pair(dist, targets, negative)
        has_pair = torch.isfinite(d_kl)
        if self.relative:
            second = ranking_hinge(d_ap, d_kl, self.margin2, self.soft_margin)
            return triplet + masked_mean(second, has_positive & has_pair)
        second = ranking_hinge(torch.zeros_like(d_kl), d_kl, self.margin2, self.soft_margin)
        return triplet + masked_mean(second, has_pair)


def hardest_foreign_negative_pair(dist: Tensor, targets: Tensor, negative: Tensor) -> Tensor:
    """For each anchor, the min distance over negative pairs avoiding the anchor's identity.

    The pair set only depends on the anchor's identity, so it is mined once per identity in
    the batch (a ``[U, B, B]`` mask, ``U`` identities) and gathered back per anchor. ``+inf``
    where no such pair exists.
    """
    identities, anchor_identity = torch.unique(targets, return_inverse=True)
    foreign = targets.unsqueeze(0) != identities.unsqueeze(1)  # [U, B]: image not of identity u
    upper = torch.ones_like(negative).triu(diagonal=1)
    pairs = (negative & upper).unsqueeze(0) & foreign.unsqueeze(2) & foreign.unsqueeze(1)
    per_identity = masked_min(dist.flatten().expand(len(identities), -1), pairs.flatten(1))
    return per_identity[anchor_identity]


# Registered classes: the engine passes only what a signature accepts (no num_classes here).
LOSSES.register("triplet_hard", BatchHardTripletLoss, reads="feats")
LOSSES.register("triplet_soft_hard", SoftHardTripletLoss, reads="feats")
LOSSES.register("msml", MarginSampleMiningLoss, reads="feats")
LOSSES.register("contrastive", ContrastiveLoss, reads="feats")
LOSSES.register("triplet_improved", ImprovedTripletLoss, reads="feats")
LOSSES.register("quadruplet", QuadrupletLoss, reads="feats")
