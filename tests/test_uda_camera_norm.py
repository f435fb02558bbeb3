"""Camera-guided normalisation: per-camera zero mean / unit std, stored stats, unseen cameras."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from reid_ext.uda.camera_norm import CameraStats, camera_normalize, fit_camera_stats


def _camera_features(seed: int = 0) -> tuple[torch.Tensor, np.ndarray]:
    """Features whose per-camera offset and scale differ strongly (a camera style)."""
    rng = np.random.default_rng(seed)
    cams = rng.integers(0, 4, size=400)
    offset = rng.normal(0, 5, size=(4, 16))
    scale = rng.uniform(0.2, 3.0, size=(4, 16))
    feats = rng.normal(size=(400, 16)) * scale[cams] + offset[cams]
    return torch.tensor(feats, dtype=torch.float32), cams


def test_each_camera_has_zero_mean_and_unit_std() -> None:
    feats, cams = _camera_features()
    out, stats = camera_normalize(feats, cams)
    assert out.shape == feats.shape
    for cam in np.unique(cams):
        part = out[torch.from_numpy(cams == cam)]
        assert part.mean(0).abs().max() < 1e-4
        assert (part.std(0, unbiased=False) - 1).abs().max() < 1e-4
    assert stats.unseen_count == 0
    # before normalising, camera means were far apart
    gap = feats[torch.from_numpy(cams == 0)].mean(0) - feats[torch.from_numpy(cams == 1)].mean(0)
    assert gap.abs().max() > 1.0


def test_stored_stats_reproduce_and_round_trip() -> None:
    feats, cams = _camera_features(1)
    out, stats = camera_normalize(feats, cams)
    again = CameraStats.from_state_dict(stats.state_dict()).normalize(feats, cams)
    torch.testing.assert_close(out, again)
    # stats applied to new features of a seen camera use that camera's own mean/std
    probe = feats[:5] + 0.0
    expect = (probe - stats.mean[cams[:5]]) / stats.std[cams[:5]]
    torch.testing.assert_close(stats.normalize(probe, cams[:5]), expect)


def test_unseen_camera_uses_global_stats_and_is_counted() -> None:
    feats, cams = _camera_features(2)
    stats = fit_camera_stats(feats, cams)
    probe = torch.randn(3, 16)
    with pytest.warns(UserWarning, match=r"camera\(s\) \[7\]"):
        out = stats.normalize(probe, [7, 7, 0])
    expect_global = (probe[:2] - feats.mean(0)) / feats.std(0, unbiased=False)
    torch.testing.assert_close(out[:2], expect_global)
    torch.testing.assert_close(out[2], (probe[2] - stats.mean[0]) / stats.std[0])
    assert stats.unseen_count == 2


def test_constant_camera_does_not_divide_by_zero() -> None:
    feats = torch.ones(6, 3)
    out, _ = camera_normalize(feats, [0, 0, 0, 1, 1, 1])
    assert torch.isfinite(out).all() and out.abs().max() == 0


def test_bad_inputs_are_named() -> None:
    with pytest.raises(ValueError, match="camera ids"):
        fit_camera_stats(torch.zeros(4, 2), [0, 1])
    stats = fit_camera_stats(torch.randn(4, 2), [0, 0, 1, 1])
    with pytest.raises(ValueError, match="dims"):
        stats.normalize(torch.zeros(2, 3), [0, 1])
