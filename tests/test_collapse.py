"""The collapse detector: batch statistics, loss signature, and end to end through the engine."""
from __future__ import annotations

import math

import pytest
import torch
from test_engine import tiny_cfg
from test_tools import REPO, load_tool, tiny_opts
from tiny_models import TinyNet
from torch import nn

import reid_ext  # noqa: F401
from reid_ext.collapse import CollapseDetector, CollapseWarning, batch_stats
from reid_ext.registry import MODELS
from reid_ext.runner import build_engine, engine_run_kwargs


def test_batch_stats_on_hand_made_batches():
    two_points = torch.tensor([[0.0, 0.0], [3.0, 4.0]])
    stats = batch_stats(two_points)
    assert math.isclose(stats["spread"], 5.0, rel_tol=1e-6)  # one pair, distance 5
    assert math.isclose(stats["norm"], 2.5, rel_tol=1e-6)  # norms 0 and 5
    assert math.isclose(stats["erank"], 1.0, rel_tol=1e-5)  # one direction
    assert stats["dead"] == 0.0
    same = torch.ones(8, 4)
    same[:, 2] = 0
    stats = batch_stats(same)
    assert stats["spread"] == 0 and stats["rel_spread"] == 0 and stats["dead"] == 0.25
    eye = batch_stats(torch.eye(4) * 7)  # centred: 3 equal directions
    assert math.isclose(eye["erank"], 3.0, rel_tol=1e-4)


def test_loss_signature_needs_margin_and_chance_together():
    det = CollapseDetector({"softmax": math.log(10), "triplet_hard": 0.3},
                           ce_terms=("softmax",), patience=2)
    scattered = torch.randn(8, 16)
    assert not det.update(scattered, {"softmax": math.log(10), "triplet_hard": 0.45})
    assert not det.update(scattered, {"softmax": 1.2, "triplet_hard": 0.3})
    assert det.update(scattered, {"softmax": math.log(10) + 1e-3, "triplet_hard": 0.3001})
    assert det.streak == 1
    with pytest.warns(CollapseWarning, match="triplet_hard = 0.3"):
        det.update(scattered, {"softmax": math.log(10), "triplet_hard": 0.3})
    assert det.fired


class CollapsingNet(TinyNet):
    """TinyNet whose ReLU'd features all die after ``healthy_steps`` training forwards:
    a deliberate stand-in for the dead-unit collapse of docs/recipes.md."""

    def __init__(self, num_classes: int, healthy_steps: int = 10**9) -> None:
        super().__init__(num_classes)
        self.healthy_steps = healthy_steps
        self.register_buffer("steps", torch.zeros((), dtype=torch.long))

    def forward(self, x: torch.Tensor):
        out = super().forward(x)
        if self.training:
            self.steps += 1
            if self.steps > self.healthy_steps:
                dead = torch.relu(out["feats"] - 1e6)  # every unit below zero: all dead
                out = {"logits": self.classifier(dead), "feats": dead}
        return out


@MODELS.register("test_collapsing_tiny")
def _collapsing(num_classes: int, loss: str = "softmax", pretrained: bool = True,
                healthy_steps: int = 10**9, use_gpu: bool = True) -> nn.Module:
    return CollapsingNet(num_classes, healthy_steps)


STRONG = ("loss.terms", "[{'name': 'softmax', 'kwargs': {'eps': 0.1}}, "
          "{'name': 'triplet_hard', 'kwargs': {'margin': 0.3}}]")


def test_silent_on_a_healthy_tiny_run(tmp_path, recwarn):
    cfg = tiny_cfg(tmp_path, *STRONG, "train.max_epoch", "3", "train.collapse_patience", "3",
                   "train.stop_on_collapse", "True")
    engine = build_engine(cfg, model=TinyNet(6))
    engine.run(**engine_run_kwargs(cfg))
    assert engine.collapse is not None and not engine.collapse.fired
    assert not [w for w in recwarn if issubclass(w.category, CollapseWarning)]


def test_fires_and_stops_on_a_collapsing_run_keeping_the_good_checkpoint(tmp_path, capsys):
    opts = [*tiny_opts(tmp_path), *STRONG, "model.name", "test_collapsing_tiny",
            "model.kwargs.healthy_steps", "4", "train.max_epoch", "4",
            "train.checkpoint_freq", "1", "train.collapse_patience", "5",
            "train.stop_on_collapse", "True", "sampler.train_sampler", "RandomIdentitySampler"]
    with pytest.warns(CollapseWarning):
        code = load_tool("train").main(
            ["--config-file", str(REPO / "configs/quickstart.yaml"), *opts])
    err = capsys.readouterr().err
    assert code == 3
    assert "embedding collapse" in err and "Remedies" in err and "last good checkpoint" in err
    saved = sorted(p.name for p in (tmp_path / "log" / "model").glob("model.pth.tar-*"))
    assert saved and "model.pth.tar-4" not in saved  # stopped before the end, kept the early one
    state = torch.load(tmp_path / "log" / "model" / saved[-1], weights_only=False)
    assert int(state["state_dict"]["steps"]) <= 4 + 5  # written before the collapse was known


def test_warn_only_by_default(tmp_path):
    cfg = tiny_cfg(tmp_path, *STRONG, "model.name", "test_collapsing_tiny",
                   "model.kwargs.healthy_steps", "0", "train.collapse_patience", "2")
    engine = build_engine(cfg)
    with pytest.warns(CollapseWarning, match="BN neck"):
        engine.run(**engine_run_kwargs(cfg))
    assert engine.collapse.fired
