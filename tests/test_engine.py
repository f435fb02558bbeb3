"""The engine: named outputs, loss terms, stepping, checkpoints, resume, evaluation edge cases."""
from __future__ import annotations

import math

import pytest
import torch
from tiny_models import TinyNet
from torch import nn

import reid_ext  # noqa: F401
from reid_ext.config import load_config
from reid_ext.engine import named_outputs
from reid_ext.losses.terms import LossTerm
from reid_ext.registry import LOSSES
from reid_ext.runner import build_engine, engine_run_kwargs

TINY_SYNTH = ["data.options.synthetic_person.num_train_ids", "6",
              "data.options.synthetic_person.num_test_ids", "4",
              "data.options.synthetic_person.images_per_id_per_camera", "2",
              "data.options.synthetic_person.num_cameras", "2"]


def tiny_cfg(tmp_path, *opts):
    return load_config(None, [
        "data.root", str(tmp_path / "data"), "data.sources", "['synthetic_person']",
        "data.targets", "['synthetic_person']", "data.height", "64", "data.width", "32",
        "data.workers", "0", "data.save_dir", str(tmp_path / "log"),
        "train.batch_size", "8", "train.max_epoch", "1", "train.print_freq", "1000",
        "train.optim", "sgd", "train.lr", "0.05", "test.batch_size", "16",
        "model.pretrained", "False", "sampler.train_sampler", "RandomIdentitySampler",
        "sampler.num_instances", "2", *TINY_SYNTH, *opts,
    ])


def test_named_outputs_maps_every_host_form():
    logits, feats = torch.zeros(2, 3), torch.zeros(2, 4)
    assert named_outputs(logits)["logits"] is logits
    both = named_outputs((logits, feats))
    assert both["logits"] is logits and both["feats"] is feats
    parts = [logits, logits]
    assert named_outputs(parts)["logits"] is parts
    assert named_outputs({"feats": feats}) == {"feats": feats}
    with pytest.raises(TypeError, match="dict of named outputs"):
        named_outputs("nope")


class _ScaledCentre(nn.Module):
    """A loss with its own parameter: value = weight-independent sum(c * x)."""

    def __init__(self, num_classes: int = 0):
        super().__init__()
        self.c = nn.Parameter(torch.ones(4))

    def forward(self, inputs, targets):
        return (self.c * inputs).sum()

    def make_optimizer(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)


def test_step_rescales_own_parameters_by_inverse_weight(tmp_path):
    cfg = tiny_cfg(tmp_path)
    engine = build_engine(cfg, model=TinyNet(6))
    term = LossTerm(name="c", weight=0.25, output="x", module=_ScaledCentre(), key="c")
    x = torch.ones(4) * 2.0
    total = term.weight * term({"x": x}, torch.zeros(1))
    engine.step(total, engine.optimizer, [term])
    # d(total)/dc = weight * x; rescaled by 1/weight -> x; SGD: c = 1 - 0.1 * x
    assert torch.allclose(term.module.c.detach(), torch.full((4,), 1 - 0.1 * 2.0))


def test_stock_model_trains_and_logs_every_term(tmp_path, capsys):
    cfg = tiny_cfg(tmp_path, "model.name", "resnet18", "loss.name", "triplet",
                   "loss.triplet.weight_x", "1.0")
    engine = build_engine(cfg)
    data = next(iter(engine.train_loader))
    summary = engine.forward_backward(data)
    assert {"triplet", "softmax", "loss", "acc"} <= set(summary)
    assert math.isclose(summary["loss"], summary["triplet"] + summary["softmax"], rel_tol=1e-5)


def test_missing_output_is_a_clear_error(tmp_path):
    cfg = tiny_cfg(tmp_path, "model.name", "resnet18", "loss.name", "softmax")
    engine = build_engine(cfg)
    engine.loss_terms.append(LossTerm("triplet", 1.0, "feats", LOSSES.build("triplet"), "t"))
    with pytest.raises(KeyError, match="reads model output 'feats'"):
        engine.forward_backward(next(iter(engine.train_loader)))


def test_scheduler_none_and_tiny_gallery_ranks(tmp_path, capsys):
    cfg = tiny_cfg(tmp_path, "test.ranks", "[1, 5, 1000]")
    engine = build_engine(cfg, model=TinyNet(6))
    engine.scheduler = None
    engine._scheds["model"] = None
    engine.run(**engine_run_kwargs(cfg))
    out = capsys.readouterr().out
    assert "Rank-1000: n/a" in out and "Rank-1  :" in out
    assert (tmp_path / "log" / "model" / "model.pth.tar-1").is_file()


def fresh_model():
    torch.manual_seed(0)
    return TinyNet(6)


def _weights(model):
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def test_two_epochs_equal_one_plus_resume(tmp_path):
    base = ["train.max_epoch", "2", "sampler.train_sampler", "RandomSampler"]
    straight = build_engine(tiny_cfg(tmp_path / "a", *base), model=fresh_model())
    straight.run(**engine_run_kwargs(straight.config))

    first = build_engine(tiny_cfg(tmp_path / "b", "train.max_epoch", "1",
                                  "sampler.train_sampler", "RandomSampler"), model=fresh_model())
    first.run(**engine_run_kwargs(first.config))
    checkpoint = tmp_path / "b" / "log" / "model" / "model.pth.tar-1"

    torch.manual_seed(12345)  # a fresh process would start from another RNG state
    second = build_engine(tiny_cfg(tmp_path / "b", *base), model=fresh_model())
    kwargs = engine_run_kwargs(second.config)
    kwargs["start_epoch"] = second.resume(checkpoint)
    assert kwargs["start_epoch"] == 1
    second.run(**kwargs)

    a, b = _weights(straight.model), _weights(second.model)
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key
    # and the run really trained: weights differ from the 1-epoch checkpoint
    assert not all(torch.equal(a[k], v) for k, v in _weights(first.model).items())


def test_engine_ranking_equals_torchreids_evaluate_rank():
    from reid_ext import host
    from reid_ext.evaluation.report import rank_and_report

    gen = torch.Generator().manual_seed(3)
    qf, gf = torch.randn(30, 8, generator=gen), torch.randn(90, 8, generator=gen)
    q_pids, g_pids = torch.randint(0, 10, (30,), generator=gen), torch.randint(0, 10, (90,),
                                                                              generator=gen)
    q_cams, g_cams = torch.randint(0, 3, (30,), generator=gen), torch.randint(0, 3, (90,),
                                                                             generator=gen)
    ours = rank_and_report(qf, gf, q_pids.numpy(), g_pids.numpy(), q_cams.numpy(),
                           g_cams.numpy())
    distmat = host.metrics.compute_distance_matrix(qf, gf, "euclidean").numpy()
    cmc, mAP = host.metrics.evaluate_rank(distmat, q_pids.numpy(), g_pids.numpy(),
                                          q_cams.numpy(), g_cams.numpy(), use_cython=False)
    assert abs(ours["mAP"] - mAP) < 1e-6
    assert abs(ours["rank1"] - cmc[0]) < 1e-6


def test_mutual_learning_from_config(tmp_path):
    from reid_ext.mutual_engine import MutualEngine

    cfg = tiny_cfg(tmp_path, "mutual.models", "['resnet18_bnneck', 'resnet18_bnneck']",
                   "mutual.kl_weight", "0.5", "loss.name", "triplet", "loss.triplet.weight_x",
                   "1.0")
    engine = build_engine(cfg)
    assert isinstance(engine, MutualEngine) and engine.kl_weight == 0.5
    names = engine.get_model_names()
    assert names == ["model1_resnet18_bnneck", "model2_resnet18_bnneck"]
    summary = engine.forward_backward(next(iter(engine.train_loader)))
    for name in names:
        assert f"{name}/triplet" in summary and f"{name}/softmax" in summary
    engine.save_model(0, 0.0, str(tmp_path / "log"))
    from reid_ext.runner import resume

    with pytest.raises(ValueError, match="must contain"):
        resume(engine, str(tmp_path / "log" / "model1_resnet18_bnneck" / "model.pth.tar-1"))
    assert resume(engine, str(tmp_path / "log" / "{name}" / "model.pth.tar-1")) == 1


def test_amp_on_cpu_trains_in_bfloat16_and_evaluates_in_float32(tmp_path):
    cfg = tiny_cfg(tmp_path, "train.amp", "True", "loss.name", "triplet",
                   "loss.triplet.weight_x", "1.0")
    torch.manual_seed(0)
    engine = build_engine(cfg, model=TinyNet(6))
    assert engine.scaler is None  # GradScaler only for CUDA float16
    before = {k: v.clone() for k, v in engine.model.state_dict().items()}
    summary = engine.forward_backward(next(iter(engine.train_loader)))
    assert math.isfinite(summary["loss"])
    assert any(not torch.equal(before[k], v) for k, v in engine.model.state_dict().items())
    engine.model.eval()
    feats, _, _ = engine.extract_loader(engine.test_loader["synthetic_person"]["query"])
    assert feats["model"].dtype == torch.float32
