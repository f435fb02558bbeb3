"""MGRAN: shapes of both modes x both alignments, gradient flow, weight sharing, background
invariance of the foreground branch, empty regions, fast/paper agreement, the pre-flight check."""
from __future__ import annotations

import json
import math

import pytest
import torch
from torch.nn import functional as F

import reid_ext  # noqa: F401  (registers the models)
from reid_ext.models.mgran import (
    ALIGNMENTS,
    MGRAN,
    MODES,
    REGIONS,
    horizontal_stripes,
    mgran_region_maps,
)
from reid_ext.registry import MODELS

H, W, B, NUM_CLASSES = 64, 32, 3, 5
R = len(REGIONS)


def person_inputs(batch: int = B, seed: int = 0):
    """Images, a binary rectangular 'person' mask and upright COCO-17 keypoints inside it."""
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(batch, 3, H, W, generator=gen)
    mask = torch.zeros(batch, 1, H, W)
    mask[:, :, 4:62, 6:26] = 1.0
    ys = torch.tensor([8, 7, 7, 8, 8, 16, 16, 26, 26, 34, 34, 36, 36, 47, 47, 58, 58.])
    xs = torch.tensor([16, 15, 17, 14, 18, 10, 22, 9, 23, 9, 23, 12, 20, 12, 20, 12, 20.])
    kp = torch.stack([xs, ys, torch.ones(17)], dim=-1).expand(batch, -1, -1).clone()
    return x, mask, kp


def build(mode: str, alignment: str = "region", **kw) -> MGRAN:
    torch.manual_seed(0)
    return MODELS.build("mgran_r18", num_classes=NUM_CLASSES, pretrained=False, mode=mode,
                        alignment=alignment, **kw)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("alignment", ALIGNMENTS)
def test_documented_shapes(mode, alignment):
    model = build(mode, alignment)
    x, mask, kp = person_inputs()
    out = model(x, mask=mask, keypoints=kp)
    assert len(out["logits"]) == R and all(t.shape == (B, NUM_CLASSES) for t in out["logits"])
    assert out["feats"].shape == (B, R * 512) and out["present"].shape == (B, R)
    assert out["present"].all(), "every region of an upright, fully visible person exists"
    model.eval()
    with torch.no_grad():
        emb = model(x, mask=mask, keypoints=kp)
    assert emb.shape == (B, R * 512) and torch.isfinite(emb).all()


def test_region_maps_by_hand():
    x, mask, kp = person_inputs(batch=1)
    maps = mgran_region_maps(mask, kp, (H, W), "region")
    assert maps.shape == (1, R, H, W)
    assert maps[0, 0].sum() == H * W and torch.equal(maps[0, 1], mask[0, 0])
    # every keypoint region lies inside the mask
    assert (maps[0, 2:] <= mask[0]).all()
    # head_shoulder box: head and shoulder keypoints, y in [7, 16], grown by 0.1 * 32 = 3.2
    rows = maps[0, 2].amax(dim=1).nonzero().ravel()
    assert rows.min() == 4 and rows.max() == 19  # 7 - 3.2 = 3.8 -> 4 (mask starts at 4 too)
    # part alignment: thirds of the image, cut by the mask
    stripes = mgran_region_maps(mask, None, (H, W), "part")[0, 2:]
    expected = horizontal_stripes(3, H, W) * mask[0]
    assert torch.equal(stripes, expected)
    assert horizontal_stripes(3, H, W).sum(0).eq(1).all()  # a partition of the rows


@pytest.mark.parametrize("mode", MODES)
def test_gradients_reach_every_branch(mode):
    model = build(mode)
    x, mask, kp = person_inputs()
    out = model(x, mask=mask, keypoints=kp)
    pids = torch.arange(B) % NUM_CLASSES
    for r, logits in enumerate(out["logits"]):
        model.zero_grad()
        F.cross_entropy(logits, pids).backward(retain_graph=True)
        head = model.heads[r].classifier.weight.grad
        trunk = model.trunk.layer1[0].conv1.weight.grad
        assert head is not None and head.abs().sum() > 0, f"no gradient in head {REGIONS[r]}"
        assert trunk is not None and trunk.abs().sum() > 0, f"branch {REGIONS[r]} misses trunk"
        others = [model.heads[o].classifier.weight.grad for o in range(R) if o != r]
        assert all(g is None or g.abs().sum() == 0 for g in others)


def test_paper_passes_share_one_set_of_weights():
    model = build("paper").eval()
    trunk_params = sum(p.numel() for p in model.trunk.parameters())
    head_params = sum(p.numel() for p in model.heads.parameters())
    assert sum(p.numel() for p in model.parameters()) == trunk_params + head_params
    assert len([m for m in model.modules() if m.__class__.__name__ == "ResNetTrunk"]) == 1
    x, mask, kp = person_inputs()
    maps = model.region_maps(x, mask, kp)
    with torch.no_grad():
        feats, _ = model.branch_features(x, maps)
        for r in range(R):  # each branch equals that single trunk run on its attended image
            alone = model.trunk(x * maps[:, r:r + 1]).mean(dim=(2, 3))
            torch.testing.assert_close(feats[:, r], alone, rtol=1e-4, atol=1e-5)


def test_paper_foreground_branch_ignores_background():
    model = build("paper").eval()
    x, mask, kp = person_inputs()
    noisy = torch.where(mask.bool(), x, torch.randn_like(x) * 3)
    assert (noisy - x).abs().max() > 1
    with torch.no_grad():
        a, b = model(x, mask=mask, keypoints=kp), model(noisy, mask=mask, keypoints=kp)
    a, b = a.view(B, R, -1), b.view(B, R, -1)
    for r in range(1, R):  # foreground and the keypoint regions (all inside the mask)
        torch.testing.assert_close(a[:, r], b[:, r], rtol=1e-4, atol=1e-5)
    assert (a[:, 0] - b[:, 0]).abs().max() > 1e-3, "the global branch does see the background"


def test_fast_foreground_branch_sees_background_through_receptive_fields():
    """Documented limit of fast mode: masked pooling is after the backbone."""
    model = build("fast").eval()
    x, mask, kp = person_inputs()
    noisy = torch.where(mask.bool(), x, torch.randn_like(x) * 3)
    with torch.no_grad():
        a = model(x, mask=mask, keypoints=kp).view(B, R, -1)
        b = model(noisy, mask=mask, keypoints=kp).view(B, R, -1)
    assert (a[:, 1] - b[:, 1]).abs().max() > 1e-3


@pytest.mark.parametrize("mode", MODES)
def test_empty_regions_are_zero_flagged_and_finite(mode):
    model = build(mode)
    x, mask, kp = person_inputs()
    kp[0, :, 2] = 0.0  # image 0: no confident keypoint (all keypoint regions empty)
    kp[1, 11:, 2] = 0.0  # image 1: hips, knees, ankles missing -> no lower body
    mask[2] = 0.0  # image 2: empty mask -> only the global region remains
    out = model(x, mask=mask, keypoints=kp)
    expected = torch.tensor([[1, 1, 0, 0, 0], [1, 1, 1, 1, 0], [1, 0, 0, 0, 0]], dtype=torch.bool)
    assert torch.equal(out["present"], expected)
    feats = out["feats"].view(B, R, -1)
    assert torch.isfinite(out["feats"]).all()
    assert torch.all(feats[~expected] == 0) and (feats[expected].abs().sum(-1) > 0).all()
    loss = sum(F.cross_entropy(t, torch.arange(B)) for t in out["logits"])
    assert torch.isfinite(loss)
    loss.backward()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)
    model.eval()
    with torch.no_grad():
        emb = model(x, mask=mask, keypoints=kp).view(B, R, -1)
    assert torch.isfinite(emb).all() and torch.all(emb[~expected] == 0)


@pytest.mark.parametrize("alignment", ALIGNMENTS)
def test_fast_and_paper_agree_on_which_regions_exist(alignment):
    fast, paper = build("fast", alignment), build("paper", alignment)
    gen = torch.Generator().manual_seed(3)
    batch = 8
    x = torch.randn(batch, 3, H, W, generator=gen)
    mask = (torch.rand(batch, 1, H // 8, W // 8, generator=gen) > 0.6).float()
    mask = F.interpolate(mask, size=(H, W))  # blocky partial masks, some nearly empty
    kp = torch.rand(batch, 17, 3, generator=gen) * torch.tensor([W, H, 1.0])
    kp[..., 2] = (kp[..., 2] > 0.5).float()
    mask[0] = 0.0  # no person found
    mask[1, :, H // 2:] = 0.0  # legs cut off
    mask[2, :, :, :] = 0.0
    mask[2, :, 30, 10] = 1.0  # a one-pixel mask: below min_area on the 2x1 grid
    kp[3, :, 2] = 0.0  # no confident keypoint
    present_fast = fast(x, mask=mask, keypoints=kp)["present"]
    present_paper = paper(x, mask=mask, keypoints=kp)["present"]
    assert torch.equal(present_fast, present_paper)
    assert not present_fast.all() and present_fast[:, 0].all()  # the case is not trivial


def test_aux_inputs_change_the_embedding():
    model = build("fast").eval()
    x, mask, kp = person_inputs()
    with torch.no_grad():
        base = model(x, mask=mask, keypoints=kp)
        moved = kp.clone()
        moved[..., 1] = (moved[..., 1] + 10).clamp(max=H - 1)
        assert (model(x, mask=mask, keypoints=moved) - base).abs().max() > 1e-4
        smaller = mask.clone()
        smaller[:, :, 34:] = 0  # rows: the 64x32 input has a 2x1 feature grid
        assert (model(x, mask=smaller, keypoints=kp) - base).abs().max() > 1e-4


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="mode"):
        build("slow")
    with pytest.raises(ValueError, match="alignment"):
        build("fast", "diagonal")
    model = build("fast")
    x, mask, kp = person_inputs()
    with pytest.raises(ValueError, match="aux.mask"):
        model(x, mask=None, keypoints=kp)
    with pytest.raises(ValueError, match="aux.keypoints"):
        model(x, mask=mask, keypoints=None)
    part = build("fast", "part")
    assert part(x, mask=mask)["feats"].shape == (B, R * 512)  # stripes need no keypoints


def test_registered_in_torchreid_with_host_kwargs():
    from reid_ext import host

    model = host.get_host().model_factory()["mgran"](
        num_classes=3, loss="softmax", pretrained=False, use_gpu=False)
    assert isinstance(model, MGRAN) and model.branch_dim == 2048


# -- pre-flight check ---------------------------------------------------------------------------

def test_preflight_names_dataset_place_and_extraction_commands(tmp_path):
    from reid_ext.config import load_config
    from reid_ext.preflight import PreflightError, check_data_ready

    cfg = load_config("configs/mgran_market.yaml", ["data.root", str(tmp_path / "reid-data")])
    with pytest.raises(PreflightError) as err:
        check_data_ready(cfg, config_file="configs/mgran_market.yaml")
    text = str(err.value)
    assert str(tmp_path / "reid-data" / "market1501") in text
    assert "Market-1501-v15.09.15/bounding_box_train" in text
    assert ("python tools/extract_masks.py --source detectron2 --config-file "
            "configs/mgran_market.yaml") in text
    assert ("python tools/extract_keypoints.py --source mmpose --config-file "
            "configs/mgran_market.yaml") in text


def test_preflight_passes_when_dataset_and_caches_exist(tmp_path):
    from reid_ext.config import load_config
    from reid_ext.preflight import PreflightError, check_data_ready

    root = tmp_path / "reid-data"
    for sub in ("bounding_box_train", "query", "bounding_box_test"):
        (root / "market1501" / "Market-1501-v15.09.15" / sub).mkdir(parents=True)
    masks, kps = tmp_path / "masks_detectron2", tmp_path / "keypoints_mmpose"
    opts = ["data.root", str(root), "aux.mask", str(masks), "aux.keypoints", str(kps)]
    cfg = load_config("configs/mgran_market.yaml", opts)
    with pytest.raises(PreflightError) as err:  # dataset there, caches not
        check_data_ready(cfg, config_file="C.yaml")
    assert "Market-1501" not in str(err.value)
    assert f"--out {masks}" in str(err.value) and f"--out {kps}" in str(err.value)
    for d, kind in ((masks, "mask"), (kps, "keypoints")):
        d.mkdir()
        (d / "manifest.json").write_text(json.dumps({"kind": kind}))
    check_data_ready(cfg, config_file="C.yaml")  # raises nothing


def test_preflight_ignores_generated_and_auto_datasets(tmp_path):
    from reid_ext.config import load_config
    from reid_ext.preflight import check_data_ready

    cfg = load_config("configs/mgran_synthetic.yaml", ["data.root", str(tmp_path)])
    check_data_ready(cfg)  # synthetic data is generated on first use; aux maps are "auto"


@pytest.mark.slow
@pytest.mark.parametrize("mode", MODES)
def test_trains_and_evaluates_end_to_end_on_synthetic_maps(tmp_path, mode):
    """configs/mgran_synthetic.yaml's loss terms through the engine, ground-truth maps."""
    from test_engine import tiny_cfg

    from reid_ext.runner import build_engine, engine_run_kwargs

    cfg = tiny_cfg(tmp_path, "model.name", "mgran_r18", "model.kwargs.mode", mode,
                   "aux.mask", "auto", "aux.keypoints", "auto", "data.height", "128",
                   "data.width", "64", "data.transforms", "['random_flip']", "loss.terms",
                   "[{'name': 'softmax', 'weight': 1.0, 'kwargs': {'eps': 0.1}}, "
                   "{'name': 'triplet_hard', 'weight': 1.0, 'kwargs': {'margin': 0.3}}]")
    engine = build_engine(cfg)
    data = next(iter(engine.train_loader))
    summary = engine.forward_backward(data)
    assert math.isfinite(summary["loss"]) and {"softmax", "triplet_hard"} <= set(summary)
    engine.run(**engine_run_kwargs(cfg))
    assert 0.0 <= engine.last_results["synthetic_person"]["mAP"] <= 1.0


def test_train_tool_stops_before_training_without_market(tmp_path, capsys, monkeypatch):
    import importlib.util

    import reid_ext.runner

    monkeypatch.setattr(reid_ext.runner, "build_engine",
                        lambda *a, **k: pytest.fail("built an engine without the dataset"))
    spec = importlib.util.spec_from_file_location("train_tool", "tools/train.py")
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    status = tool.main(["--config-file", "configs/mgran_market.yaml", "data.root",
                        str(tmp_path / "nothing"), "data.save_dir", str(tmp_path / "log")])
    err = capsys.readouterr().err
    assert status == 2
    assert "python tools/extract_masks.py --source detectron2" in err
    assert str(tmp_path / "nothing" / "market1501") in err
    assert not (tmp_path / "log").exists()
