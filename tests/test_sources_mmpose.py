"""mmpose keypoint source against the real library (skips where mmpose is absent).

Random weights (none can be downloaded here): checks the real init/inference path, the
skeleton taken from the model's dataset metadata and the output layout.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
ATRW_CONFIG = REPO / "configs" / "pose" / "td-hm_res50_atrw-256x256.py"


@pytest.fixture(scope="module")
def mmpose_dir():
    from reid_ext.preprocess.base import BackendMissingError
    from reid_ext.preprocess.keypoints.mmpose import _mmpose_apis

    try:
        _mmpose_apis()
    except BackendMissingError as err:
        pytest.skip(f"mmpose absent: {err}")
    import mmpose

    return Path(mmpose.__file__).parent


def test_refuses_without_weights(mmpose_dir):
    from reid_ext.preprocess.base import WeightsError
    from reid_ext.preprocess.keypoints.mmpose import MMPoseKeypointSource

    with pytest.raises(WeightsError, match="--weights"):
        MMPoseKeypointSource(config=str(ATRW_CONFIG))


@pytest.mark.slow
@pytest.mark.parametrize("config, skeleton, count, aspect", [
    ("coco", "coco17", 17, 192 / 256),
    ("atrw", "atrw15", 15, 1.0),
])
def test_packaged_and_atrw_configs_run_with_random_weights(mmpose_dir, config, skeleton, count,
                                                            aspect):
    from reid_ext.preprocess.keypoints.mmpose import MMPoseKeypointSource

    path = (mmpose_dir / ".mim" / "configs" / "body_2d_keypoint" / "topdown_heatmap" / "coco"
            / "td-hm_res50_8xb64-210e_coco-256x192.py") if config == "coco" else ATRW_CONFIG
    source = MMPoseKeypointSource(config=str(path), random_weights=True)
    assert source.skeleton == skeleton
    rng = np.random.default_rng(0)
    crops = [rng.integers(0, 256, (96, 48, 3), dtype=np.uint8) for _ in range(2)]
    # mmpose's box: the whole crop padded by 1.25 and widened to the model's input aspect
    half_w = max(1.25 * 48, 1.25 * 96 * aspect) / 2
    half_h = max(1.25 * 96, 1.25 * 48 / aspect) / 2
    for points in source(crops):
        assert points.shape == (count, 3)
        # decoded back to crop pixels: inside that box around the crop centre (23.5, 47.5),
        # give or take the flip test's one-heatmap-cell shift (a cell: 1/48 or 1/64 of the box)
        assert np.all(np.abs(points[:, 0] - 23.5) <= half_w * 1.05)
        assert np.all(np.abs(points[:, 1] - 47.5) <= half_h * 1.05)
        inside = ((points[:, 0] >= -0.5) & (points[:, 0] <= 47.5)
                  & (points[:, 1] >= -0.5) & (points[:, 1] <= 95.5))
        assert np.all(points[~inside, 2] == 0) and np.all(points[:, 2] <= 1)
    assert source.manifest_info()["random_weights"] is True
