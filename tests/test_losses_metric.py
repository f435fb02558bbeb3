"""Metric losses against plain-loop references, torchreid's TripletLoss and gradcheck."""
from __future__ import annotations

import math

import pytest
import torch

from reid_ext import host
from reid_ext.losses.distance import pairwise_distance_l2
from reid_ext.losses.metric import BatchHardTripletLoss as triplet_hard  # noqa: N813
from reid_ext.losses.metric import ContrastiveLoss as contrastive  # noqa: N813
from reid_ext.losses.metric import ImprovedTripletLoss as triplet_improved  # noqa: N813
from reid_ext.losses.metric import MarginSampleMiningLoss as msml  # noqa: N813
from reid_ext.losses.metric import QuadrupletLoss as quadruplet  # noqa: N813
from reid_ext.losses.metric import SoftHardTripletLoss as triplet_soft_hard  # noqa: N813
from reid_ext.registry import LOSSES

METRICS = ("euclidean", "cosine")

# label vectors covering the edge cases: PK, a singleton identity, one identity only, K = 2,
# two identities (no quadruplet pair), unstructured labels
BATCHES = {
    "pk_4x4": [0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3],
    "singleton": [0, 0, 0, 1, 1, 2, 3, 3, 3, 4],
    "all_same": [5, 5, 5, 5, 5, 5],
    "k2": [0, 0, 1, 1, 2, 2, 3, 3, 4, 4],
    "two_ids": [7, 7, 7, 9, 9, 9],
    "shuffled": [3, 1, 0, 3, 2, 1, 0, 0, 2, 4, 1, 3],
}


# ---- plain references: explicit loops over pairs and triplets ---------------------------
def ref_distance(x: torch.Tensor, i: int, j: int, metric: str) -> float:
    a, b = x[i].tolist(), x[j].tolist()
    if metric == "euclidean":
        return math.sqrt(max(sum((u - v) ** 2 for u, v in zip(a, b)), 1e-12))
    dot = sum(u * v for u, v in zip(a, b))
    return 1.0 - dot / (math.sqrt(sum(u * u for u in a)) * math.sqrt(sum(v * v for v in b)))


def ref_hinge(d_pos: float, d_neg: float, margin: float, soft: bool) -> float:
    if soft:
        return math.log1p(math.exp(d_pos - d_neg))
    return max(0.0, d_pos - d_neg + margin)


def mean_or_zero(values: list[float]) -> float:
    return sum(values) / len(values) if values else 0.0


def positives_negatives(labels, a):
    pos = [j for j in range(len(labels)) if j != a and labels[j] == labels[a]]
    neg = [j for j in range(len(labels)) if labels[j] != labels[a]]
    return pos, neg


def ref_triplet_hard(x, labels, metric, margin, soft):
    terms = []
    for a in range(len(labels)):
        pos, neg = positives_negatives(labels, a)
        if pos and neg:
            d_ap = max(ref_distance(x, a, p, metric) for p in pos)
            d_an = min(ref_distance(x, a, n, metric) for n in neg)
            terms.append(ref_hinge(d_ap, d_an, margin, soft))
    return mean_or_zero(terms)


def ref_triplet_soft_hard(x, labels, metric, margin, soft):
    terms = []
    for a in range(len(labels)):
        pos, neg = positives_negatives(labels, a)
        if pos and neg:
            dp = [ref_distance(x, a, p, metric) for p in pos]
            dn = [ref_distance(x, a, n, metric) for n in neg]
            wp = [math.exp(d) for d in dp]
            wn = [math.exp(-d) for d in dn]
            d_ap = sum(w * d for w, d in zip(wp, dp)) / sum(wp)
            d_an = sum(w * d for w, d in zip(wn, dn)) / sum(wn)
            terms.append(ref_hinge(d_ap, d_an, margin, soft))
    return mean_or_zero(terms)


def ref_msml(x, labels, metric, margin, soft):
    pos_pairs, neg_pairs = [], []
    for i in range(len(labels)):
        for j in range(i + 1, len(labels)):
            d = ref_distance(x, i, j, metric)
            (pos_pairs if labels[i] == labels[j] else neg_pairs).append(d)
    if not pos_pairs or not neg_pairs:
        return 0.0
    return ref_hinge(max(pos_pairs), min(neg_pairs), margin, soft)


def ref_contrastive(x, labels, metric, margin, squared):
    terms = []
    for i in range(len(labels)):
        for j in range(i + 1, len(labels)):
            d = ref_distance(x, i, j, metric)
            term = d if labels[i] == labels[j] else max(0.0, margin - d)
            terms.append(term**2 if squared else term)
    return mean_or_zero(terms)


def ref_triplet_improved(x, labels, metric, margin, soft, beta, beta_weight):
    triplets, absolutes = [], []
    for a in range(len(labels)):
        pos, neg = positives_negatives(labels, a)
        if not pos:
            continue
        d_ap = max(ref_distance(x, a, p, metric) for p in pos)
        absolutes.append(max(0.0, d_ap - beta))
        if neg:
            d_an = min(ref_distance(x, a, n, metric) for n in neg)
            triplets.append(ref_hinge(d_ap, d_an, margin, soft))
    return mean_or_zero(triplets) + beta_weight * mean_or_zero(absolutes)


def ref_quadruplet(x, labels, metric, margin, soft, margin2, relative=True):
    triplets, seconds = [], []
    for a in range(len(labels)):
        pos, neg = positives_negatives(labels, a)
        if not pos and relative:
            continue
        if pos and neg:
            d_ap = max(ref_distance(x, a, p, metric) for p in pos)
            d_an = min(ref_distance(x, a, n, metric) for n in neg)
            triplets.append(ref_hinge(d_ap, d_an, margin, soft))
        foreign_pairs = [
            ref_distance(x, k, l, metric)
            for k in range(len(labels))
            for l in range(len(labels))  # noqa: E741
            if k != l and labels[k] != labels[l] and labels[a] not in (labels[k], labels[l])
        ]
        if foreign_pairs:
            d_first = max(ref_distance(x, a, p, metric) for p in pos) if relative else 0.0
            seconds.append(ref_hinge(d_first, min(foreign_pairs), margin2, soft))
    return mean_or_zero(triplets) + mean_or_zero(seconds)


# ---- loss vs reference ----------------------------------------------------------------------
CASES = {
    "triplet_hard": (triplet_hard, ref_triplet_hard, {}),
    "triplet_soft_hard": (triplet_soft_hard, ref_triplet_soft_hard, {}),
    "msml": (msml, ref_msml, {}),
    "triplet_improved": (
        triplet_improved, ref_triplet_improved, {"beta": 0.5, "beta_weight": 0.7}
    ),
    "quadruplet": (quadruplet, ref_quadruplet, {"margin2": 0.2}),
}


def features(n: int, dim: int = 6, seed: int = 0) -> torch.Tensor:
    return torch.randn(n, dim, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


@pytest.mark.parametrize("batch", BATCHES)
@pytest.mark.parametrize("metric", METRICS)
@pytest.mark.parametrize("soft", [False, True])
@pytest.mark.parametrize("name", CASES)
def test_triplet_family_matches_loop_reference(name, soft, metric, batch):
    factory, reference, extra = CASES[name]
    labels = BATCHES[batch]
    x = features(len(labels), seed=len(name)).requires_grad_()
    # cosine distances live in [0, 2]: a smaller margin keeps some hinges inactive
    margin = 0.3 if metric == "euclidean" else 0.05
    loss = factory(margin=margin, soft_margin=soft, metric=metric, **extra)
    got = loss(x, torch.tensor(labels))
    want = reference(x, labels, metric, margin, soft, *extra.values())
    assert got.item() == pytest.approx(want, abs=1e-5, rel=1e-5)
    assert got.grad_fn is not None


@pytest.mark.parametrize("batch", BATCHES)
@pytest.mark.parametrize("metric", METRICS)
@pytest.mark.parametrize("soft", [False, True])
def test_absolute_quadruplet_matches_loop_reference(soft, metric, batch):
    """The issue's form: triplet + relu(margin2 - d(B, C)) over foreign negative pairs."""
    labels = BATCHES[batch]
    x = features(len(labels), seed=5).requires_grad_()
    margin, margin2 = (0.3, 2.0) if metric == "euclidean" else (0.05, 0.5)
    loss = quadruplet(margin=margin, margin2=margin2, soft_margin=soft, metric=metric,
                      relative=False)
    got = loss(x, torch.tensor(labels))
    want = ref_quadruplet(x, labels, metric, margin, soft, margin2, relative=False)
    assert got.item() == pytest.approx(want, abs=1e-5, rel=1e-5)
    labels3 = torch.tensor([0, 0, 0, 1, 1, 2, 2, 2, 3])
    x3 = features(len(labels3), dim=5, seed=11).requires_grad_()
    check = quadruplet(margin=10.0, margin2=50.0, soft_margin=soft, metric=metric,
                       relative=False)
    assert torch.autograd.gradcheck(lambda f: check(f, labels3), (x3,))


@pytest.mark.parametrize("batch", BATCHES)
@pytest.mark.parametrize("metric", METRICS)
@pytest.mark.parametrize("squared", [False, True])
def test_contrastive_matches_loop_reference(squared, metric, batch):
    labels = BATCHES[batch]
    x = features(len(labels), seed=3)
    margin = 3.0 if metric == "euclidean" else 0.9
    got = contrastive(margin=margin, squared=squared, metric=metric)(x, torch.tensor(labels))
    assert got.item() == pytest.approx(ref_contrastive(x, labels, metric, margin, squared),
                                       abs=1e-5, rel=1e-5)


# contrastive and the improved triplet's absolute term are defined on positive pairs alone
@pytest.mark.parametrize("name", ["triplet_hard", "triplet_soft_hard", "msml", "quadruplet"])
def test_batch_without_tuples_gives_zero_loss_with_zero_gradient(name):
    x = features(6).requires_grad_()
    loss = LOSSES.build(name, context={"num_classes": 3})(x, torch.full((6,), 2))
    assert loss.item() == 0.0
    loss.backward()
    assert torch.count_nonzero(x.grad) == 0


def test_single_instance_identity_is_only_a_negative():
    """An anchor without positive is skipped, but it can still be another anchor's negative."""
    labels = torch.tensor([0, 0, 1])
    x = torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.5, 0.0]], dtype=torch.float64)
    # anchors 0 and 1 each: d_ap = 1, d_an = 0.5 -> 1 - 0.5 + 0.3 = 0.8; anchor 2 skipped
    assert triplet_hard()(x, labels).item() == pytest.approx(0.8)


# ---- against torchreid ------------------------------------------------------------------
@pytest.mark.parametrize("p,k", [(8, 4), (16, 2), (6, 6)])
def test_triplet_hard_equals_torchreid_triplet_loss(p, k):
    x = torch.randn(p * k, 256)
    labels = torch.arange(p).repeat_interleave(k)[torch.randperm(p * k)]
    ours = triplet_hard(margin=0.3)(x, labels)
    theirs = host.losses.TripletLoss(margin=0.3)(x, labels)
    assert ours.item() == pytest.approx(theirs.item(), rel=1e-5, abs=1e-6)


def test_triplet_hard_gradient_equals_torchreid():
    x = torch.randn(32, 64, dtype=torch.float64)
    labels = torch.arange(8).repeat_interleave(4)
    grads = []
    for loss in (triplet_hard(margin=1.0), host.losses.TripletLoss(margin=1.0)):
        xi = x.clone().requires_grad_()
        loss(xi, labels).backward()
        grads.append(xi.grad)
    torch.testing.assert_close(grads[0], grads[1])


# ---- gradients --------------------------------------------------------------------------
@pytest.mark.parametrize("metric", METRICS)
@pytest.mark.parametrize("soft", [False, True])
@pytest.mark.parametrize("name", list(CASES) + ["contrastive"])
def test_gradcheck(name, soft, metric):
    labels = torch.tensor([0, 0, 0, 1, 1, 2, 2, 2, 3])
    x = features(len(labels), dim=5, seed=11).requires_grad_()
    if name == "contrastive":
        # euclidean pushes stay inactive-free with a margin above every distance
        loss = contrastive(margin=20.0, squared=soft, metric=metric)
    else:
        # a margin larger than any distance keeps every hinge active (away from its kink)
        extra = {"margin2": 10.0} if name == "quadruplet" else {}
        loss = LOSSES.build(name, context={"num_classes": 4}, margin=10.0, soft_margin=soft,
                            metric=metric, **extra)
    assert torch.autograd.gradcheck(lambda f: loss(f, labels), (x,))


# ---- contract ---------------------------------------------------------------------------
def test_registered_with_the_loss_contract():
    for name in ("triplet_hard", "triplet_soft_hard", "msml", "contrastive",
                 "triplet_improved", "quadruplet"):
        loss = LOSSES.build(name, context={"num_classes": 5}, metric="cosine")
        assert isinstance(loss, torch.nn.Module)
        assert loss(torch.randn(8, 4), torch.arange(4).repeat(2)).dim() == 0


def test_bad_arguments_raise_clear_errors():
    with pytest.raises(ValueError, match="metric must be one of"):
        triplet_hard(metric="manhattan")
    with pytest.raises(ValueError, match="margin must be >= 0"):
        msml(margin=-1.0)
    with pytest.raises(ValueError, match=r"inputs must be a \[B, D\]"):
        triplet_hard()(torch.randn(4, 2, 2), torch.arange(4))
    with pytest.raises(ValueError, match=r"targets must be a \[B\] label vector with B=4"):
        quadruplet()(torch.randn(4, 3), torch.arange(5))


def test_pairwise_distance_matches_torch_cdist():
    x, y = torch.randn(7, 9, dtype=torch.float64), torch.randn(5, 9, dtype=torch.float64)
    torch.testing.assert_close(pairwise_distance_l2(x, y), torch.cdist(x, y))
    cosine = torch.nn.functional.cosine_similarity(x[:, None], y[None], dim=2)
    torch.testing.assert_close(pairwise_distance_l2(x, y, metric="cosine"), 1 - cosine)


@pytest.mark.parametrize("name", list(CASES) + ["contrastive"])
def test_autocast_half_precision_features_give_float32_loss_and_finite_grads(name):
    x = torch.randn(16, 8)
    labels = torch.arange(4).repeat_interleave(4)
    loss = LOSSES.build(name, context={"num_classes": 4})
    low = x.to(torch.bfloat16).requires_grad_()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        value = loss(low, labels)
    value.backward()
    assert value.dtype == torch.float32 and torch.isfinite(low.grad.float()).all()
    assert value.item() == pytest.approx(loss(low.detach().float(), labels).item(), rel=1e-6)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("name", list(CASES) + ["contrastive"])
def test_cuda_matches_cpu(name):
    x = torch.randn(32, 16)
    labels = torch.arange(8).repeat_interleave(4)
    loss = LOSSES.build(name, context={"num_classes": 8})
    torch.testing.assert_close(loss(x.cuda(), labels.cuda()).cpu(), loss(x, labels),
                               rtol=1e-4, atol=1e-5)
