"""AlignedReID: the differentiable DP local distance, the triplet_local_dp loss, the model and
the engine's test.local_distance ranking."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from test_engine import tiny_cfg

import reid_ext  # noqa: F401
from reid_ext.evaluation.local_distance import global_local_distance, local_distance
from reid_ext.evaluation.rank import evaluate
from reid_ext.losses.aligned import LocalDPTripletLoss, dp_shortest_path, local_distance_matrix
from reid_ext.losses.terms import build_loss_terms
from reid_ext.models.factory import build_model
from reid_ext.registry import LOSSES
from reid_ext.runner import build_engine, engine_run_kwargs


def reference_local_distance(x: torch.Tensor, y: torch.Tensor) -> float:
    """Per-pair shortest down/right path through tanh(d/2) stripe distances, plain Python."""
    m, n = len(x), len(y)
    d = [[math.tanh(math.dist(x[i].tolist(), y[j].tolist()) / 2) for j in range(n)]
         for i in range(m)]
    s = [[0.0] * n for _ in range(m)]
    for i in range(m):
        for j in range(n):
            options = ([s[i - 1][j]] if i else []) + ([s[i][j - 1]] if j else [])
            s[i][j] = d[i][j] + (min(options) if options else 0.0)
    return s[m - 1][n - 1]


def reference_loss(feats: torch.Tensor, pids: list[int], margin: float) -> float:
    """Batch-hard triplet on the reference local distance, anchor by anchor."""
    dist = [[reference_local_distance(a, b) for b in feats] for a in feats]
    losses = []
    for a, pid in enumerate(pids):
        pos = [dist[a][j] for j, p in enumerate(pids) if p == pid and j != a]
        neg = [dist[a][j] for j, p in enumerate(pids) if p != pid]
        if pos and neg:
            losses.append(max(0.0, max(pos) - min(neg) + margin))
    return sum(losses) / max(1, len(losses))


@pytest.mark.parametrize("m,n", [(6, 6), (4, 7), (1, 3)])
def test_dp_distance_equals_evaluation_and_python_reference(m, n):
    torch.manual_seed(0)
    x, y = torch.randn(4, m, 5) * 0.5, torch.randn(3, n, 5) * 0.5
    ours = local_distance_matrix(x, y)
    torch.testing.assert_close(ours, local_distance(x, y), atol=1e-5, rtol=0)
    expected = torch.tensor([[reference_local_distance(a, b) for b in y] for a in x])
    torch.testing.assert_close(ours, expected, atol=1e-5, rtol=0)


def test_dp_shortest_path_gradient_matches_finite_differences():
    torch.manual_seed(0)
    grid = torch.rand(2, 4, 5, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(dp_shortest_path, (grid,))


def test_local_loss_equals_per_pair_reference_and_has_finite_gradients():
    torch.manual_seed(0)
    feats = torch.randn(8, 4, 6) * 0.4
    feats[1] = feats[0]  # an exact duplicate: zero stripe distances must not give NaN gradients
    pids = [0, 0, 1, 1, 2, 2, 3, 3]
    feats.requires_grad_(True)
    loss = LocalDPTripletLoss(margin=0.3)(feats, torch.tensor(pids))
    assert loss.item() == pytest.approx(reference_loss(feats.detach(), pids, 0.3), abs=1e-5)
    loss.backward()
    assert torch.isfinite(feats.grad).all() and feats.grad.abs().sum() > 0


def test_loss_registered_reading_local_feats():
    assert LOSSES.meta("triplet_local_dp")["reads"] == "local_feats"
    term = build_loss_terms([{"name": "triplet_local_dp", "kwargs": {"margin": 0.5}}], 4)[0]
    assert term.output == "local_feats" and term.module.margin == 0.5


def test_model_outputs_and_local_features():
    model = build_model("aligned_r18", num_classes=5, pretrained=False)
    x = torch.rand(3, 3, 64, 32)
    out = model(x)
    assert out["logits"].shape == (3, 5) and out["feats"].shape == (3, 512)
    assert out["local_feats"].shape == (3, 8, 128)
    model.eval()
    with torch.no_grad():
        assert model(x).shape == (3, 512)
        fmap = model.trunk(x)
        stripes = model.local_features(x)
        # stripe 0 is the max over the top band of rows (64x32 input, last stride 1: 8 rows)
        top = fmap[:, :, 0:1, :].amax(dim=(2, 3))
        expected = model.local_reduce(top[:, :, None, None]).flatten(1)
    torch.testing.assert_close(stripes[:, 0], expected)


def test_engine_ranks_by_global_plus_local_distance(tmp_path):
    """A 1-step tiny run with test.local_distance: the engine's ranking = our own
    global (l2) + 0.5 x DP local distance, ranked by the fast evaluator."""
    terms = ("[{'name': 'softmax'}, {'name': 'triplet_hard'}, "
             "{'name': 'triplet_local_dp', 'weight': 1.0}]")
    cfg = tiny_cfg(tmp_path, "model.name", "aligned_r18", "loss.terms", terms,
                   "test.local_distance", "True", "test.local_distance_weight", "0.5")
    engine = build_engine(cfg)
    assert engine.local_distance_weight == 0.5
    summary = engine.forward_backward(next(iter(engine.train_loader)))
    assert math.isfinite(summary["triplet_local_dp"]) and summary["triplet_local_dp"] >= 0
    kwargs = engine_run_kwargs(cfg)
    kwargs["test_only"] = True
    engine.run(**kwargs)
    result = engine.last_results["synthetic_person"]

    engine.model.eval()
    loaders = engine.test_loader["synthetic_person"]
    qf, q_pids, q_camids = engine.extract_loader(loaders["query"])
    gf, g_pids, g_camids = engine.extract_loader(loaders["gallery"])
    lq = engine.extract_local(loaders["query"])["model"]
    lg = engine.extract_local(loaders["gallery"])["model"]
    distmat = global_local_distance(qf["model"], gf["model"], lq, lg, weight=0.5, metric="l2")
    expected = evaluate(distmat.numpy(), q_pids, g_pids, q_camids, g_camids, max_rank=50)
    assert result["mAP"] == pytest.approx(expected.mAP)
    assert result["rank1"] == pytest.approx(float(expected.cmc[0]))
    # the local term really entered the ranking distance
    assert not np.allclose(distmat.numpy(), torch.cdist(qf["model"], gf["model"]).numpy())
