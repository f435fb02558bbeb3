"""torchvision Mask R-CNN / Keypoint R-CNN sources with random weights (none can be fetched)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from reid_ext.preprocess.base import WeightsError
from reid_ext.preprocess.keypoints.keypointrcnn import TorchvisionKeypointSource
from reid_ext.preprocess.masks.maskrcnn import TorchvisionMaskSource

SMALL = {"min_size": 64, "random_weights": True}


def _keep_random_detections(source) -> None:
    """Random logits are all ~1/91, below every score threshold: keep a few detections so
    that the instance path runs (few, so that the heads stay cheap)."""
    source.net.roi_heads.score_thresh = 0.0
    source.net.roi_heads.detections_per_img = 3
    source.score_threshold = 0.0


def _crops(count: int = 2) -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    return [rng.integers(0, 256, (96, 48, 3), dtype=np.uint8) for _ in range(count)]


def test_refuses_to_run_without_weights():
    with pytest.raises(WeightsError, match="--weights"):
        TorchvisionMaskSource()
    with pytest.raises(WeightsError, match="KeypointRCNN_ResNet50_FPN_Weights"):
        TorchvisionKeypointSource(weights="NO_SUCH_WEIGHTS")
    with pytest.raises(WeightsError, match="does not exist"):
        TorchvisionMaskSource(weights="/nonexistent/maskrcnn.pth")


def test_mask_source_random_weights_gives_soft_masks_of_the_crop_size():
    source = TorchvisionMaskSource(**SMALL)
    _keep_random_detections(source)
    masks = source(_crops())
    assert [m.shape for m in masks] == [(96, 48), (96, 48)]
    assert all(m.dtype == np.float32 and 0.0 <= m.min() and m.max() <= 1.0 for m in masks)
    info = source.manifest_info()
    assert info["random_weights"] is True and info["weights"] == "random"
    assert "torchvision" in info["version"]


def test_weights_file_round_trip_gives_the_same_masks(tmp_path):
    torch.manual_seed(1)
    first = TorchvisionMaskSource(**SMALL)
    path = tmp_path / "maskrcnn.pth"
    torch.save(first.net.state_dict(), path)
    second = TorchvisionMaskSource(weights=str(path), min_size=64)
    for source in (first, second):
        _keep_random_detections(source)
    crops = _crops(1)
    np.testing.assert_allclose(first(crops)[0], second(crops)[0], atol=1e-6)
    assert second.weights_sha256 is not None and len(second.weights_sha256) == 64
    assert second.random_weights is False


def test_keypoint_source_random_weights_gives_coco17_in_unit_scores():
    source = TorchvisionKeypointSource(**SMALL)
    _keep_random_detections(source)
    points = source(_crops())
    assert source.skeleton == "coco17"
    for kp in points:
        assert kp.shape == (17, 3) and kp.dtype == np.float32
        assert np.all((kp[:, 2] >= 0) & (kp[:, 2] <= 1))
