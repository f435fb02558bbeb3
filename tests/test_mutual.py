"""Mutual-learning losses (values, gradcheck, zero-gradient peers) and the MutualEngine."""
from __future__ import annotations

import copy
import math

import pytest
import torch
from PIL import Image
from tiny_models import TinyNet
from torch import nn

from reid_ext import host
from reid_ext.data import options
from reid_ext.losses.distance import pairwise_distance_l2
from reid_ext.losses.mutual import (
    kl_mutual_loss,
    kl_towards,
    metric_mutual_loss,
    metric_towards,
)
from reid_ext.losses.terms import build_loss_terms


# ---- losses -----------------------------------------------------------------------------
def test_metric_mutual_loss_matches_loop_reference():
    m1, m2 = torch.rand(5, 5, dtype=torch.float64), torch.rand(5, 5, dtype=torch.float64)
    want = sum((m1[i, j] - m2[i, j]) ** 2 + (m1[i, j] - m2[i, j]) ** 2
               for i in range(5) for j in range(5)) / 25
    assert metric_mutual_loss(m1, m2).item() == pytest.approx(want.item(), rel=1e-12)


def test_kl_mutual_loss_matches_formula():
    l1, l2 = torch.randn(4, 6, dtype=torch.float64), torch.randn(4, 6, dtype=torch.float64)
    t = 3.0

    def kl(target, logits):  # KL(softmax(target/T) || softmax(logits/T)), batch mean
        total = 0.0
        for b in range(4):
            p = torch.softmax(target[b] / t, 0).tolist()
            q = torch.softmax(logits[b] / t, 0).tolist()
            total += sum(pi * math.log(pi / qi) for pi, qi in zip(p, q))
        return total / 4

    want = t**2 * (kl(l2, l1) + kl(l1, l2))
    assert kl_mutual_loss(l1, l2, temperature=t).item() == pytest.approx(want, rel=1e-10)


def test_gradcheck_metric_mutual_loss():
    """ZG makes the symmetric loss's gradient differ from its value's derivative on purpose;
    its gradient w.r.t. M1 is gradcheck-ed as that of model 1's term, M2 held constant."""
    m1 = torch.rand(6, 6, dtype=torch.float64, requires_grad=True)
    m2 = torch.rand(6, 6, dtype=torch.float64)
    assert torch.autograd.gradcheck(lambda a: metric_towards(a, m2), (m1,))
    pair_grad, = torch.autograd.grad(metric_mutual_loss(m1, m2.requires_grad_()), m1)
    own_grad, = torch.autograd.grad(metric_towards(m1, m2), m1)
    torch.testing.assert_close(pair_grad, own_grad)
    # and through euclidean distances of features (off-diagonal, away from the sqrt kink)
    f1 = torch.randn(6, 4, dtype=torch.float64, requires_grad=True)
    d2 = pairwise_distance_l2(torch.randn(6, 4, dtype=torch.float64))
    assert torch.autograd.gradcheck(lambda a: metric_towards(pairwise_distance_l2(a), d2),
                                    (f1,))


def test_gradcheck_kl_mutual_loss():
    l1 = torch.randn(4, 5, dtype=torch.float64, requires_grad=True)
    l2 = torch.randn(4, 5, dtype=torch.float64)
    assert torch.autograd.gradcheck(lambda a: kl_towards(a, l2, 2.0), (l1,))
    pair_grad, = torch.autograd.grad(kl_mutual_loss(l1, l2.requires_grad_(), 2.0), l1)
    own_grad, = torch.autograd.grad(kl_towards(l1, l2, 2.0), l1)
    torch.testing.assert_close(pair_grad, own_grad)


def two_models():
    torch.manual_seed(0)
    return nn.Linear(5, 3), nn.Linear(5, 3)


@pytest.mark.parametrize("kind", ["metric", "kl"])
def test_model1_term_reaches_only_model1(kind):
    """ZG: the model-1 term (M1 - ZG(M2))^2 gives model 2 no gradient at all."""
    model1, model2 = two_models()
    x = torch.randn(8, 5)
    out1, out2 = model1(x), model2(x)
    if kind == "metric":
        term = metric_towards(pairwise_distance_l2(out1), pairwise_distance_l2(out2))
    else:
        term = kl_towards(out1, out2, temperature=2.0)
    term.backward()
    assert all(p.grad is None for p in model2.parameters())
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model1.parameters())


@pytest.mark.parametrize("kind", ["metric", "kl"])
def test_symmetric_loss_gives_each_model_its_own_term_gradient(kind):
    model1, model2 = two_models()
    x = torch.randn(8, 5)

    def grads(loss_of_outputs):
        for p in (*model1.parameters(), *model2.parameters()):
            p.grad = None
        loss_of_outputs(model1(x), model2(x)).backward()
        return [torch.zeros_like(p) if p.grad is None else p.grad.clone()
                for p in (*model1.parameters(), *model2.parameters())]

    if kind == "metric":
        pair = grads(lambda a, b: metric_mutual_loss(pairwise_distance_l2(a),
                                                     pairwise_distance_l2(b)))
        own1 = grads(lambda a, b: metric_towards(pairwise_distance_l2(a), pairwise_distance_l2(b)))
        own2 = grads(lambda a, b: metric_towards(pairwise_distance_l2(b), pairwise_distance_l2(a)))
    else:
        pair = grads(lambda a, b: kl_mutual_loss(a, b))
        own1 = grads(lambda a, b: kl_towards(a, b))
        own2 = grads(lambda a, b: kl_towards(b, a))
    for g_pair, g1, g2 in zip(pair, own1, own2):
        torch.testing.assert_close(g_pair, g1 + g2)


def test_shape_mismatch_is_a_clear_error():
    with pytest.raises(ValueError, match=r"same shape, got \(3, 3\) and \(4, 4\)"):
        metric_mutual_loss(torch.zeros(3, 3), torch.zeros(4, 4))
    with pytest.raises(ValueError, match="temperature must be > 0"):
        kl_towards(torch.zeros(2, 3), torch.zeros(2, 3), temperature=0)


# ---- engine -----------------------------------------------------------------------------
TERMS = [{"name": "softmax", "weight": 1.0, "output": "logits"},
         {"name": "triplet_hard", "weight": 1.0, "output": "feats"}]


@pytest.fixture
def folder_datamanager(tmp_path):
    """A tiny image_folder set (6 train ids, 2 cams) behind torchreid's data manager."""
    for split, pids in (("train", range(6)), ("query", range(6, 9)), ("gallery", range(6, 9))):
        for pid in pids:
            folder = tmp_path / split / str(pid)
            folder.mkdir(parents=True)
            for cam in (1, 2):
                for shot in range(2 if split == "train" else 1):
                    colour = (pid * 37 % 256, cam * 70 + shot * 20, pid * 11 % 256)
                    Image.new("RGB", (16, 32), colour).save(folder / f"{cam}_{shot}.png")
    saved = options.get_dataset_options("image_folder")
    options.set_dataset_options("image_folder", data_dir=str(tmp_path))
    try:
        yield host.ImageDataManager(
            root=str(tmp_path), sources="image_folder", height=32, width=16,
            batch_size_train=8, batch_size_test=8, workers=0, num_instances=2,
            train_sampler="pk", transforms=None, use_gpu=False,
        )
    finally:
        options.set_dataset_options("image_folder", **saved)


def make_engine(datamanager, **kwargs):
    import reid_ext  # noqa: F401  (registers 'pk' and the losses)
    from reid_ext.mutual_engine import MutualEngine

    torch.manual_seed(0)
    models = [TinyNet(datamanager.num_train_pids, dim=8) for _ in range(2)]
    optimizers = [torch.optim.SGD(m.parameters(), lr=0.1) for m in models]
    return MutualEngine(datamanager, models, optimizers, loss_terms=TERMS, use_gpu=False,
                        **kwargs)


def test_step_gives_each_model_exactly_its_own_loss_gradient(folder_datamanager):
    """One engine step == SGD on each model's own loss (own terms + pulls to detached peer)."""
    engine = make_engine(folder_datamanager, kl_weight=0.7, temperature=2.0, metric_weight=0.3)
    data = next(iter(engine.train_loader))
    copies = [copy.deepcopy(m) for m in engine.peers]
    engine.set_model_mode("train")
    summary = engine.forward_backward(data)

    imgs, pids = data["img"], data["pid"]
    outs = [m.train()(imgs) for m in copies]
    for i, (model, name) in enumerate(zip(copies, ("model1", "model2"))):
        peer = outs[1 - i]
        terms = build_loss_terms(TERMS, folder_datamanager.num_train_pids)
        own = {t.key: t(outs[i], pids) for t in terms}
        kl = kl_towards(outs[i]["logits"], peer["logits"], 2.0)
        metric = metric_towards(pairwise_distance_l2(outs[i]["feats"]),
                                pairwise_distance_l2(peer["feats"]))
        total = sum(own.values()) + 0.7 * kl + 0.3 * metric
        # each model's values are logged under its own name
        for key, value in own.items():
            assert summary[f"{name}/{key}"] == pytest.approx(value.item(), rel=1e-5)
        assert summary[f"{name}/kl_mutual"] == pytest.approx(kl.item(), rel=1e-5)
        assert summary[f"{name}/metric_mutual"] == pytest.approx(metric.item(), rel=1e-5)
        assert summary[f"{name}/loss"] == pytest.approx(total.item(), rel=1e-5)
        grads = torch.autograd.grad(total, list(model.parameters()), allow_unused=True)
        for p_engine, p_start, g in zip(engine.peers[i].parameters(), model.parameters(),
                                        grads):
            want = p_start.detach() if g is None else p_start.detach() - 0.1 * g
            torch.testing.assert_close(p_engine.detach(), want, rtol=1e-4, atol=1e-6)
    assert summary["model1/loss"] != summary["model2/loss"]


def test_one_epoch_run_trains_and_reports_each_model_and_concat(folder_datamanager, tmp_path,
                                                                capsys):
    engine = make_engine(folder_datamanager)
    before = [copy.deepcopy(m.state_dict()) for m in engine.peers]
    engine.run(save_dir=str(tmp_path / "log"), max_epoch=1, print_freq=1)
    for model, start in zip(engine.peers, before):
        assert any(not torch.equal(model.state_dict()[k], start[k]) for k in start)
    assert {"image_folder/model1", "image_folder/model2", "image_folder/concat",
            "image_folder"} <= set(engine.last_results)
    assert engine.last_results["image_folder"] is engine.last_results["image_folder/concat"]
    printed = capsys.readouterr().out
    assert "concat (query (6, 16)" in printed and "model2 (query (6, 8)" in printed
    assert "model1/kl_mutual" in printed and "model2/metric_mutual" in printed
    for name in ("model1", "model2"):
        assert (tmp_path / "log" / name / "model.pth.tar-1").is_file()


def test_bad_setup_is_a_clear_error(folder_datamanager):
    from reid_ext.mutual_engine import MutualEngine

    model = TinyNet(6)
    with pytest.raises(ValueError, match="at least two models"):
        MutualEngine(folder_datamanager, [model], [torch.optim.SGD(model.parameters(), lr=1)],
                     loss_terms=TERMS, use_gpu=False)
    with pytest.raises(ValueError, match="kl_weight and metric_weight must be >= 0"):
        make_engine(folder_datamanager, kl_weight=-1.0)
