"""detectron2 Mask R-CNN source against the real library (skips where detectron2 is absent).

CI installs detectron2 from the wheel in ../shared/wheels (see .ci/install_optional.sh).
"""
from __future__ import annotations

import numpy as np
import pytest

from reid_ext.preprocess.base import WeightsError


@pytest.fixture(scope="module")
def detectron2():
    try:
        import detectron2
    except ImportError as err:
        pytest.skip(f"detectron2 absent ({err}); install it from source or the shared wheel")
    return detectron2


def test_refuses_without_weights(detectron2):
    from reid_ext.preprocess.masks.detectron2 import Detectron2MaskSource

    with pytest.raises(WeightsError, match="--weights"):
        Detectron2MaskSource()


@pytest.mark.slow
def test_packaged_config_runs_with_random_weights(detectron2, tmp_path):
    import torch

    from reid_ext.preprocess.masks.detectron2 import Detectron2MaskSource

    source = Detectron2MaskSource(random_weights=True, score_threshold=0.0, min_size=128)
    assert source.config.endswith("mask_rcnn_R_50_FPN_3x.yaml")
    source.model.roi_heads.box_predictor.test_score_thresh = 0.0
    source.model.roi_heads.box_predictor.test_topk_per_image = 3
    rng = np.random.default_rng(0)
    crops = [rng.integers(0, 256, (128, 64, 3), dtype=np.uint8) for _ in range(2)]
    masks = source(crops)
    assert [m.shape for m in masks] == [(128, 64), (128, 64)]
    assert all(set(np.unique(m)) <= {0.0, 1.0} for m in masks)
    info = source.manifest_info()
    assert info["random_weights"] is True and "detectron2" in info["version"]
    # a weights file round trip through detectron2's checkpointer
    path = tmp_path / "model.pth"
    torch.save({"model": source.model.state_dict()}, path)
    again = Detectron2MaskSource(weights=str(path), min_size=128)
    assert again.weights_sha256 is not None and not again.random_weights
