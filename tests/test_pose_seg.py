"""pose_seg_attention (soft / hard / none attention, structures I-IV) and segmentation_ce."""
from __future__ import annotations

import pytest
import torch
from torch.nn import functional as F

from reid_ext.data.tiger_maps import STRUCTURES, get_structure
from reid_ext.losses.segmentation import SegmentationCELoss
from reid_ext.models.factory import build_model

H, W = 32, 64


def _model(structure="III", attention="soft", num_classes=5):
    torch.manual_seed(0)
    return build_model("pose_seg_attention", num_classes=num_classes, pretrained=False,
                       structure=structure, attention=attention)


@pytest.mark.parametrize("structure", list(STRUCTURES))
def test_outputs_per_structure(structure):
    spec = get_structure(structure)
    model = _model(structure)
    x = torch.randn(2, 3, H, W)
    out = model.train()(x)
    assert len(out["logits"]) == len(out["feats"]) == len(spec.pathways)
    assert all(t.shape == (2, 5) for t in out["logits"])
    assert out["seg_logits"].shape == (2, spec.num_classes, H // 4, W // 4)
    emb = model.eval()(x)
    assert emb.shape == (2, 512 * len(spec.pathways)) and torch.isfinite(emb).all()


def test_no_attention_is_the_global_pathway_only():
    model = _model(attention="none")
    out = model.train()(torch.randn(2, 3, H, W))
    assert "seg_logits" not in out and len(out["logits"]) == 1
    assert model.eval()(torch.randn(2, 3, H, W)).shape == (2, 512)
    with pytest.raises(ValueError, match="attention must be one of"):
        _model(attention="medium")


def _part_inputs(model, x):
    """Capture what the trunk sees in the part pathways (the second full trunk call)."""
    seen = []
    original = model.trunk.forward

    def spy(inp, until="layer4"):
        seen.append(inp.detach().clone())
        return original(inp, until)

    model.trunk.forward = spy
    model(x)
    model.trunk.forward = original
    return seen[0]


def test_soft_attention_multiplies_the_image_by_class_probabilities():
    model = _model("III", "soft").eval()
    x = torch.randn(2, 3, H, W)
    parts = _part_inputs(model, x).view(2, 3, 3, H, W)
    with torch.no_grad():
        l1 = model.trunk.forward_from(model.trunk.stem(x), "stem", "layer1")
        seg = model.seg_head(l1, model.trunk.forward_from(l1, "layer1", "layer3"))
    probs = F.interpolate(seg, size=(H, W), mode="bilinear", align_corners=False).softmax(1)
    for p in range(3):  # foreground classes 1..3
        torch.testing.assert_close(parts[:, p], x * probs[:, p + 1, None])
    # soft maps are fractional; the part images sum with the background share to the image
    total = parts.sum(1) + x * probs[:, :1]
    torch.testing.assert_close(total, x)


def test_hard_attention_masks_are_one_hot_of_the_argmax():
    model = _model("IV", "hard").eval()
    x = torch.randn(2, 3, H, W) + 3.0  # no pixel exactly zero
    parts = _part_inputs(model, x).view(2, 4, 3, H, W)
    masks = parts / x[:, None]
    assert set(masks.round(decimals=5).unique().tolist()) <= {0.0, 1.0}
    # every pixel lies in at most one part (exactly one unless it is background)
    assert (masks[:, :, 0].sum(1) <= 1).all()


def test_soft_gradients_reach_the_seg_head_through_the_reid_loss_hard_do_not():
    for attention, expect in (("soft", True), ("hard", False)):
        model = _model("III", attention).train()
        out = model(torch.randn(4, 3, H, W))
        sum(z.sum() for z in out["logits"][1:]).backward()  # part ID logits only
        grad = model.seg_head.fuse[-1].weight.grad
        assert (grad is not None and grad.abs().sum() > 0) == expect, attention


def test_backward_from_all_three_loss_kinds_reaches_every_parameter():
    model = _model("III", "soft").train()
    out = model(torch.randn(4, 3, H, W))
    seg_target = torch.randint(0, 4, (4, H, W))
    loss = (SegmentationCELoss(leg_classes=[2, 3])(out["seg_logits"], seg_target)
            + sum(F.cross_entropy(z, torch.tensor([0, 1, 2, 3])) for z in out["logits"])
            + sum(f.pow(2).mean() for f in out["feats"]))
    loss.backward()
    missing = [n for n, p in model.named_parameters() if p.requires_grad and p.grad is None]
    assert not missing


# --- segmentation_ce ------------------------------------------------------------------------
def _logits_for(target: torch.Tensor, num_classes: int, margin: float = 4.0) -> torch.Tensor:
    return F.one_hot(target, num_classes).permute(0, 3, 1, 2).float() * margin


def test_segmentation_ce_equals_cross_entropy_without_penalty():
    target = torch.randint(0, 4, (2, 8, 8))
    logits = torch.randn(2, 4, 8, 8)
    loss = SegmentationCELoss()(logits, target)
    torch.testing.assert_close(loss, F.cross_entropy(logits, target))
    weights = [0.5, 1.0, 2.0, 3.0]
    loss = SegmentationCELoss(class_weights=weights)(logits, target)
    torch.testing.assert_close(loss, F.cross_entropy(logits, target, weight=torch.tensor(weights)))


def test_leg_penalty_raises_the_loss_exactly_when_a_leg_pixel_is_mispredicted():
    spec = get_structure("III")  # legs: 2 (front), 3 (hind)
    target = torch.zeros(1, 6, 6, dtype=torch.long)
    target[0, :2] = 1
    target[0, 3, :3] = 2
    target[0, 4, :3] = 3
    plain = SegmentationCELoss()
    penal = SegmentationCELoss(leg_classes=spec.leg_classes, leg_penalty=2.0)

    right = _logits_for(target, 4)
    assert penal(right, target) == plain(right, target)  # all legs right: no extra loss

    wrong_trunk = right.clone()  # a trunk pixel predicted as background: not a leg error
    wrong_trunk[0, :, 0, 0] = torch.tensor([4.0, 0, 0, 0])
    assert penal(wrong_trunk, target) == plain(wrong_trunk, target)

    wrong_leg = right.clone()  # a hind-leg pixel predicted as front leg
    wrong_leg[0, :, 4, 1] = torch.tensor([0, 0, 4.0, 0])
    extra = penal(wrong_leg, target) - plain(wrong_leg, target)
    pixel_ce = F.cross_entropy(wrong_leg[0, :, 4, 1][None], torch.tensor([3]))
    torch.testing.assert_close(extra, 2.0 * pixel_ce / 36)
    assert extra > 0


def test_segmentation_ce_upsamples_logits_and_ignores_unsupervised_pixels():
    target = torch.full((1, 8, 8), -1, dtype=torch.long)
    target[0, :4] = 1
    logits = torch.randn(1, 3, 4, 4, requires_grad=True)
    loss = SegmentationCELoss(leg_classes=[2])(logits, target)
    up = F.interpolate(logits, size=(8, 8), mode="bilinear", align_corners=False)
    torch.testing.assert_close(loss, F.cross_entropy(up[:, :, :4], target[:, :4]))
    loss.backward()
    with pytest.raises(ValueError, match="class_weights"):
        SegmentationCELoss(class_weights=[1.0, 1.0])(logits, target)
    with pytest.raises(ValueError, match="leg_classes"):
        SegmentationCELoss(leg_classes=[7])(logits, target)


def test_structure_kwarg_sets_the_leg_classes():
    assert SegmentationCELoss(structure="IV").leg_classes == (2, 3, 4)
    with pytest.raises(ValueError, match="not both"):
        SegmentationCELoss(structure="IV", leg_classes=[2])


TINY_TIGER = ["data.options.synthetic_tiger.num_train_ids", "4",
              "data.options.synthetic_tiger.num_test_ids", "3",
              "data.options.synthetic_tiger.images_per_id_per_camera", "2",
              "data.options.synthetic_tiger.num_cameras", "2",
              "data.options.synthetic_tiger.height", "32",
              "data.options.synthetic_tiger.width", "64"]


@pytest.mark.slow
def test_pgs_config_trains_end_to_end_with_seg_maps_and_poly(tmp_path):
    """configs/pgs_synthetic_tiger.yaml on a tiny set: 'seg' batches, three loss terms, poly."""
    from pathlib import Path

    from reid_ext.config import load_config
    from reid_ext.runner import build_engine
    from reid_ext.schedulers import PolyLR

    repo = Path(__file__).resolve().parents[1]
    cfg = load_config(repo / "configs" / "pgs_synthetic_tiger.yaml", [
        "data.root", str(tmp_path / "data"), "data.save_dir", str(tmp_path / "log"),
        "data.height", "32", "data.width", "64", "train.max_epoch", "1",
        "train.batch_size", "8", "sampler.num_instances", "2", *TINY_TIGER])
    engine = build_engine(cfg)
    batch = next(iter(engine.datamanager.train_loader))
    assert batch["seg"].shape == (8, 32, 64) and batch["seg"].dtype == torch.long
    assert set(batch["seg"].unique().tolist()) <= {-1, 0, 1, 2, 3}
    assert (batch["seg"] > 0).any()
    assert isinstance(engine.scheduler, PolyLR)
    lr0 = engine.optimizer.param_groups[0]["lr"]
    summary = engine.forward_backward(batch)
    assert {"segmentation_ce", "triplet", "softmax", "loss"} <= set(summary)
    assert engine.optimizer.param_groups[0]["lr"] < lr0  # stepped after the iteration
    engine.run(save_dir=str(tmp_path / "log"), max_epoch=1, eval_freq=-1, ranks=[1])
    assert engine.last_results["synthetic_tiger"]["mAP"] >= 0


@pytest.mark.parametrize("name", ["pgs_atrw.yaml", "pgs_synthetic_tiger.yaml"])
def test_configs_express_the_report_loss_as_three_terms(name):
    from pathlib import Path

    from reid_ext.config import load_config, loss_terms_from_config
    from reid_ext.losses.terms import build_loss_terms

    cfg = load_config(Path(__file__).resolve().parents[1] / "configs" / name)
    terms = loss_terms_from_config(cfg)
    assert [(t["name"], t["weight"], t["output"], t["target"]) for t in terms] == [
        ("segmentation_ce", 1.0, "seg_logits", "seg"), ("triplet", 0.1, "feats", "pid"),
        ("softmax", 0.05, "logits", "pid")]
    built = build_loss_terms(terms, num_classes=10)
    assert built[0].module.leg_classes == get_structure(cfg.aux.seg).leg_classes
    assert cfg.train.lr_scheduler == "poly" and cfg.model.name == "pose_seg_attention"


@pytest.mark.parametrize("backbone, dim", [("resnet34", 512), ("resnet50", 2048),
                                           ("resnext50", 2048)])
def test_backbones(backbone, dim):
    model = build_model("pose_seg_attention", num_classes=3, pretrained=False,
                        backbone=backbone, structure="II", attention="soft").eval()
    with torch.no_grad():
        emb = model(torch.randn(1, 3, 32, 64))
    assert emb.shape == (1, dim * 3) and torch.isfinite(emb).all()
    with pytest.raises(ValueError, match="unknown backbone"):
        build_model("pose_seg_attention", num_classes=3, pretrained=False, backbone="vgg16")
