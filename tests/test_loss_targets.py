"""Loss terms with a target other than the identity labels (``target: mask``), end to end.

Also shows that a model registered after ``import reid_ext`` reaches torchreid's own
``build_model`` with no manual ``register_into_host()`` call.
"""
from __future__ import annotations

import re

import pytest
import torch
from test_engine import tiny_cfg
from test_tools import REPO, load_tool, tiny_opts
from tiny_models import MaskAttentionNet

from reid_ext import host
from reid_ext.losses.segmentation import MaskBCELoss, resize_target_map
from reid_ext.registry import MODELS
from reid_ext.runner import build_engine

TINY_NAME = "test_tiny_mask_attention"


def tiny_mask_attention(num_classes: int) -> MaskAttentionNet:
    return MaskAttentionNet(num_classes)


MODELS.register(TINY_NAME, tiny_mask_attention)



def mask_terms(weight: float) -> tuple[str, str]:
    return ("loss.terms", "[{'name': 'softmax', 'weight': 1.0}, "
            f"{{'name': 'mask_bce', 'weight': {weight}, 'target': 'mask'}}]")


def test_late_registration_reaches_torchreid():
    model = host.models.build_model(TINY_NAME, num_classes=3, loss="softmax", pretrained=False,
                                    use_gpu=False)
    assert isinstance(model, MaskAttentionNet)


def test_mask_bce_resizes_the_target_and_matches_torch():
    mask = torch.zeros(2, 1, 8, 4)
    mask[:, :, :4] = 1.0
    logits = torch.randn(2, 1, 4, 2)
    target = resize_target_map(mask, (4, 2))
    assert torch.equal(target[:, :, :2], torch.ones(2, 1, 2, 2))
    assert torch.equal(target[:, :, 2:], torch.zeros(2, 1, 2, 2))
    expected = torch.nn.functional.binary_cross_entropy_with_logits(logits, target)
    assert MaskBCELoss()(logits, mask).item() == pytest.approx(expected.item())


def train_and_read_mask_bce(tmp_path, capsys, weight: float) -> list[float]:
    opts = [*tiny_opts(tmp_path / str(weight)), "model.name", TINY_NAME, "train.max_epoch", "6",
            "train.print_freq", "1", "train.lr", "0.01", *mask_terms(weight)]
    assert load_tool("train").main(["--config-file", str(REPO / "configs/quickstart.yaml"),
                                    *opts]) == 0
    values = [float(v) for v in re.findall(r"mask_bce ([\d.]+) \(", capsys.readouterr().out)]
    assert len(values) >= 12, "the mask term was not logged every iteration"
    return values


def test_mask_target_trains_through_tools_train(tmp_path, capsys):
    """The mask, read from the batch as the term's target, teaches the attention map: with the
    term weighted, its value falls well below the same run with the term at weight 0."""
    supervised = train_and_read_mask_bce(tmp_path, capsys, 1.0)
    control = train_and_read_mask_bce(tmp_path, capsys, 0.0)
    assert supervised[0] == pytest.approx(control[0], abs=1e-6)  # same start, same seed
    last, control_last = sum(supervised[-3:]) / 3, sum(control[-3:]) / 3
    assert last < supervised[0] - 0.1 and last < control_last - 0.1, (supervised, control)


def test_a_target_the_batch_lacks_fails_before_the_first_step(tmp_path):
    cfg = tiny_cfg(tmp_path, "model.name", TINY_NAME, "loss.terms",
                   "[{'name': 'softmax'}, {'name': 'mask_bce', 'target': 'depth'}]")
    engine = build_engine(cfg)
    before = {k: v.clone() for k, v in engine.model.state_dict().items()}
    batch = next(iter(engine.train_loader))
    with pytest.raises(KeyError, match=r"loss term 'mask_bce' compares with target 'depth'.*"
                                       r"batch holds only \[.*'img'.*'pid'"):
        engine.forward_backward(batch)
    after = engine.model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before), "a step was taken"
