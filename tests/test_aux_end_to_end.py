"""The aux path end to end: masks and keypoints from synthetic_person reach a model that declares
them, in training and in evaluation, and the embedding depends on them."""
from __future__ import annotations

import torch
from test_engine import tiny_cfg
from tiny_models import MaskKeypointPoolNet

from reid_ext.runner import build_engine, engine_run_kwargs


def test_mask_keypoint_model_trains_and_evaluates(tmp_path, capsys):
    cfg = tiny_cfg(tmp_path, "train.max_epoch", "2", "aux.mask", "auto", "aux.keypoints", "auto")
    torch.manual_seed(0)
    engine = build_engine(cfg, model=MaskKeypointPoolNet(num_classes=6))

    batch = next(iter(engine.train_loader))
    assert batch["mask"].shape == (8, 1, 64, 32) and batch["keypoints"].shape == (8, 17, 3)
    assert 0 <= batch["mask"].min() and batch["mask"].max() <= 1
    assert batch["mask"].mean() < 0.9, "ground-truth masks should not be all foreground"

    engine.run(**engine_run_kwargs(cfg))
    result = engine.last_results["synthetic_person"]
    assert 0.0 <= result["mAP"] <= 1.0 and "Rank-1" in capsys.readouterr().out

    engine.model.eval()
    data = next(iter(engine.test_loader["synthetic_person"]["query"]))
    aux = engine.aux_inputs(data)
    with torch.no_grad():
        base = engine.model(data["img"], **aux)
        flipped_mask = engine.model(data["img"], mask=1 - aux["mask"], keypoints=aux["keypoints"])
        same = engine.model(data["img"], **aux)
    assert torch.equal(base, same)
    assert (base - flipped_mask).abs().max() > 1e-3
