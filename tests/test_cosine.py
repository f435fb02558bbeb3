"""Cosine-softmax classifier and loss against hand computations of Wojke & Bewley's formula."""
from __future__ import annotations

import math

import pytest
import torch

from reid_ext.layers.heads import inverse_softplus
from reid_ext.losses.cosine import CosineSoftmaxHead, CosineSoftmaxLoss, cosine_softmax_loss
from reid_ext.registry import LOSSES


def _hand_probabilities(head: CosineSoftmaxHead, feats: torch.Tensor) -> torch.Tensor:
    """p(y=k|r) = exp(kappa w~_k.r) / sum_n exp(kappa w~_n.r), loops and explicit norms."""
    kappa = math.log1p(math.exp(head.raw_scale.item()))  # softplus by hand
    weights = head.weight.detach().double()
    probs = torch.zeros(feats.shape[0], head.num_classes, dtype=torch.float64)
    for i, f in enumerate(feats.double()):
        r = f / math.sqrt(float((f * f).sum()))
        scores = []
        for w in weights:
            w_unit = w / math.sqrt(float((w * w).sum()))
            scores.append(math.exp(kappa * float((w_unit * r).sum())))
        total = sum(scores)
        probs[i] = torch.tensor([s / total for s in scores], dtype=torch.float64)
    return probs


def test_head_matches_the_formula():
    head = CosineSoftmaxHead(6, 4, init_scale=3.5)
    with torch.no_grad():
        head.weight.normal_()  # non-unit rows, so the weight normalisation matters
    feats = torch.randn(5, 6) * 3
    probs = head(feats).softmax(dim=1).double()
    torch.testing.assert_close(probs, _hand_probabilities(head, feats))
    assert head.scale.item() == pytest.approx(3.5)


def test_logits_are_scale_times_cosine_and_scale_stays_positive():
    head = CosineSoftmaxHead(3, 2, init_scale=2.0)
    with torch.no_grad():
        head.weight.copy_(torch.tensor([[2.0, 0.0, 0.0], [0.0, -5.0, 0.0]]))
    logits = head(torch.tensor([[1.0, 1.0, 0.0]]))
    torch.testing.assert_close(logits, torch.tensor([[2.0 / math.sqrt(2), -2.0 / math.sqrt(2)]]))
    with torch.no_grad():
        head.raw_scale.fill_(-30.0)
    assert head.scale.item() > 0


@pytest.mark.parametrize("value", [1e-4, 0.5, math.log(2), 10.0, 60.0])
def test_inverse_softplus(value):
    assert torch.nn.functional.softplus(torch.tensor(inverse_softplus(value))).item() == (
        pytest.approx(value, rel=1e-6)
    )


def test_bad_shapes_and_scales_are_rejected():
    with pytest.raises(ValueError, match=r"\[B, 6\]"):
        CosineSoftmaxHead(6, 3)(torch.randn(2, 5))
    with pytest.raises(ValueError, match="positive"):
        CosineSoftmaxHead(6, 3, init_scale=0.0)
    with pytest.raises(ValueError, match="unknown optimizer 'rmsprop'"):
        CosineSoftmaxLoss(3, optimizer="rmsprop")


def test_loss_is_cross_entropy_of_the_hand_probabilities():
    loss = LOSSES.build("cosine_softmax", num_classes=4, in_features=6, init_scale=5.0)
    with torch.no_grad():
        loss.head.weight.normal_()
    feats, targets = torch.randn(5, 6), torch.tensor([0, 3, 1, 1, 2])
    probs = _hand_probabilities(loss.head, feats)
    expected = -probs[torch.arange(5), targets].log().mean()
    assert loss(feats, targets).item() == pytest.approx(expected.item(), rel=1e-5)


def test_lazy_head_is_built_at_first_forward_and_its_optimizer_learns():
    loss = cosine_softmax_loss(num_classes=3, lr=0.05)
    with pytest.raises(RuntimeError, match="after"):
        loss.make_optimizer()
    feats = torch.randn(12, 8)
    targets = torch.arange(12) % 3
    first = loss(feats, targets)
    assert loss.head.in_features == 8
    optimizer = loss.make_optimizer()
    owned = {id(p) for group in optimizer.param_groups for p in group["params"]}
    assert owned == {id(p) for p in loss.parameters()}
    for _ in range(50):
        optimizer.zero_grad()
        loss(feats, targets).backward()
        optimizer.step()
    assert loss(feats, targets).item() < first.item() * 0.5


def test_loss_gradient_reaches_the_features():
    loss = CosineSoftmaxLoss(3, in_features=4)
    feats = torch.randn(6, 4, requires_grad=True)
    loss(feats, torch.tensor([0, 1, 2, 0, 1, 2])).backward()
    assert feats.grad is not None and feats.grad.abs().sum() > 0


def test_logits_loss_is_cross_entropy_of_the_model_head():
    head = CosineSoftmaxHead(6, 4, init_scale=4.0)
    with torch.no_grad():
        head.weight.normal_()
    feats, targets = torch.randn(5, 6), torch.tensor([0, 3, 1, 1, 2])
    loss = LOSSES.build("cosine_softmax_ce", context={"num_classes": 4})
    expected = -_hand_probabilities(head, feats)[torch.arange(5), targets].log().mean()
    assert loss(head(feats), targets).item() == pytest.approx(expected.item(), rel=1e-5)


def test_lazy_head_state_round_trips_into_a_fresh_loss():
    trained = CosineSoftmaxLoss(3, init_scale=2.0)
    feats, targets = torch.randn(6, 5), torch.tensor([0, 1, 2, 0, 1, 2])
    trained(feats, targets)
    with torch.no_grad():
        trained.head.raw_scale.add_(1.0)
    fresh = CosineSoftmaxLoss(3, init_scale=2.0)
    fresh.load_state_dict(trained.state_dict())  # head not built yet: built from the state
    assert fresh(feats, targets).item() == pytest.approx(trained(feats, targets).item())


def test_loss_side_head_trains_through_an_engine_loss_term():
    from reid_ext.losses.terms import build_loss_terms

    (term,) = build_loss_terms(
        [{"name": "cosine_softmax", "output": "feats", "kwargs": {"lr": 0.05}}], num_classes=3
    )
    feats, targets = torch.randn(12, 8), torch.arange(12) % 3
    first = term({"feats": feats}, targets)
    term.ensure_optimizer()  # as the engine does after the first forward
    assert term.optimizer is not None
    for _ in range(30):
        term.optimizer.zero_grad()
        term({"feats": feats}, targets).backward()
        term.optimizer.step()
    assert term({"feats": feats}, targets).item() < first.item()
