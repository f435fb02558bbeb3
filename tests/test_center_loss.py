"""Center loss: value, lazy centres, and its own optimizer moving centres to class means."""
from __future__ import annotations

import pytest
import torch

from reid_ext.losses.center import CenterLoss
from reid_ext.registry import LOSSES


def test_value_is_half_mean_squared_distance_to_own_centre():
    loss = CenterLoss(num_classes=3, feat_dim=4)
    x, labels = torch.randn(5, 4), torch.tensor([0, 2, 2, 1, 0])
    want = sum(0.5 * ((x[i] - loss.centers[labels[i]]) ** 2).sum() for i in range(5)) / 5
    torch.testing.assert_close(loss(x, labels), want)


def test_halve_false_is_the_strong_baseline_value():
    """reid-strong-baseline: mean over the batch of ||f - c_y||^2, no 1/2."""
    loss = CenterLoss(num_classes=2, feat_dim=2, halve=False)
    with torch.no_grad():
        loss.centers.copy_(torch.tensor([[0.0, 0.0], [1.0, 1.0]]))
    x = torch.tensor([[3.0, 4.0], [1.0, 2.0]])
    # ||(3,4)||^2 = 25, ||(0,1)||^2 = 1 -> mean 13
    assert loss(x, torch.tensor([0, 1])).item() == pytest.approx(13.0)


def test_lazy_centres_take_width_dtype_from_first_batch():
    loss = LOSSES.build("center", num_classes=6)
    with pytest.raises(RuntimeError, match="after it, or pass feat_dim"):
        loss.make_optimizer()
    loss(torch.randn(4, 7, dtype=torch.float64), torch.tensor([0, 1, 5, 5]))
    assert loss.centers.shape == (6, 7) and loss.centers.dtype == torch.float64
    assert isinstance(loss.make_optimizer(), torch.optim.SGD)


def test_own_optimizer_moves_centres_to_class_means():
    """One SGD step on 1/2 mean ||f - c_y||^2 gives c_k += lr * n_k / B * (mean_k - c_k)."""
    torch.manual_seed(1)
    lr = 0.5
    loss = CenterLoss(num_classes=3, feat_dim=5, lr=lr)
    optimizer = loss.make_optimizer()
    x, labels = torch.randn(8, 5), torch.tensor([0, 0, 0, 1, 1, 1, 1, 1])
    means = torch.stack([x[labels == k].mean(0) for k in (0, 1)])
    counts = torch.tensor([3.0, 5.0]).unsqueeze(1)
    start = loss.centers.detach().clone()

    optimizer.zero_grad()
    loss(x, labels).backward()
    optimizer.step()
    want = start[:2] + lr * counts / 8 * (means - start[:2])
    torch.testing.assert_close(loss.centers.detach()[:2], want)
    torch.testing.assert_close(loss.centers.detach()[2], start[2])  # absent class untouched

    distance_after_one = (loss.centers.detach()[:2] - means).norm(dim=1)
    for _ in range(50):
        optimizer.zero_grad()
        loss(x, labels).backward()
        optimizer.step()
    distance_after_many = (loss.centers.detach()[:2] - means).norm(dim=1)
    assert torch.all(distance_after_many < 1e-3 * distance_after_one)


def test_bad_input_raises_clear_errors():
    loss = CenterLoss(num_classes=3, feat_dim=4)
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 3\)"):
        loss(torch.randn(2, 4), torch.tensor([0, 3]))
    with pytest.raises(ValueError, match="features have 5 dims, centres have 4"):
        loss(torch.randn(2, 5), torch.tensor([0, 1]))
    with pytest.raises(ValueError, match="num_classes must be >= 1"):
        CenterLoss(num_classes=0)


def test_lazy_centres_load_from_a_checkpoint_before_any_forward():
    trained = CenterLoss(num_classes=4, feat_dim=3)
    fresh = CenterLoss(num_classes=4)  # lazy: shape unknown until loaded or first forward
    fresh.load_state_dict(trained.state_dict())
    torch.testing.assert_close(fresh.centers.detach(), trained.centers.detach())
    assert isinstance(fresh.make_optimizer(), torch.optim.SGD)
