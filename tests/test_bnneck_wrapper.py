"""The BNNeck wrapper around torchreid backbones, and the recipe configs' evidence comments."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

import reid_ext  # noqa: F401
from reid_ext.config import load_config, loss_terms_from_config
from reid_ext.models import build_model

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("backbone", ["osnet_x0_25", "resnet18"])
def test_triplet_reads_pre_bn_and_ce_post_bn(backbone):
    model = build_model("bnneck", num_classes=5, pretrained=False, backbone=backbone)
    x = torch.randn(6, 3, 64, 32)
    out = model(x)
    assert out["logits"].shape == (6, 5) and out["feats"].shape == (6, model.feature_dim)
    # the logits are the classifier of the batch-normalised feature
    neck = torch.nn.functional.batch_norm(out["feats"], None, None, model.head.neck.weight,
                                          model.head.neck.bias, training=True)
    assert torch.allclose(out["logits"], model.head.classifier(neck), atol=1e-5)
    out["logits"].sum().backward()  # the CE side reaches the backbone through the neck
    assert any(p.grad is not None and p.grad.abs().sum() > 0
               for p in model.backbone.parameters())
    model.eval()
    with torch.no_grad():
        embedding = model(x)
        assert torch.allclose(embedding, model.head.neck(model.backbone(x)))


def test_a_backbone_without_linear_classifier_is_refused():
    with pytest.raises(ValueError, match="bnneck"):
        build_model("bnneck", num_classes=5, pretrained=False, backbone="bnneck")


def test_every_config_with_metric_terms_names_the_run_that_shows_it_trains():
    for path in sorted((REPO / "configs").glob("*.yaml")):
        cfg = load_config(path)
        metric = [t["name"] for t in loss_terms_from_config(cfg) if t["output"] != "logits"]
        if metric:
            text = path.read_text().lower()
            assert "the run that shows" in text and "->" in text, (path.name, metric)
