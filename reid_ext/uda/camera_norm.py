"""Camera-guided feature normalisation: ``f' = (f - mu_v) / sigma_v`` per camera ``v``.

Features of one camera share its colour cast, exposure and background, which pulls them
together in embedding space; clustering then follows cameras instead of identities. Fitting a
mean and a per-dimension standard deviation on the target set for each camera and whitening each
camera's features with its own statistics removes that shared offset and scale (Pereira & de
Campos' camera-guided normalisation).

The fitted :class:`CameraStats` are plain tensors (``state_dict``/``from_state_dict``) so they are
saved with the model and reused at inference; a camera that was not in the fitting set falls back
to the global statistics of the fitting set, and every such feature is counted.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import numpy as np
import torch

from reid_ext.evaluation.neighbors import as_tensor


@dataclass
class CameraStats:
    """Per-camera mean/std ``[V, D]`` of the fitting set, plus global fall-back statistics."""

    cameras: torch.Tensor  # [V] int64, sorted camera ids
    mean: torch.Tensor  # [V, D]
    std: torch.Tensor  # [V, D], already clamped to >= eps
    global_mean: torch.Tensor  # [D]
    global_std: torch.Tensor  # [D]
    unseen_count: int = field(default=0)  # features normalised with the global statistics

    def normalize(self, features: np.ndarray | torch.Tensor,
                  camids: np.ndarray | torch.Tensor | list[int]) -> torch.Tensor:
        """``(f - mu_v) / sigma_v`` for each row; unseen cameras use the global statistics."""
        feats = as_tensor(features, "features").float()
        cams = _camid_tensor(camids, feats.shape[0])
        if feats.shape[1] != self.mean.shape[1]:
            raise ValueError(f"features have {feats.shape[1]} dims but the camera statistics "
                             f"were fitted on {self.mean.shape[1]}")
        slot = torch.searchsorted(self.cameras, cams).clamp_(max=len(self.cameras) - 1)
        seen = self.cameras[slot] == cams
        mean = torch.where(seen[:, None], self.mean[slot], self.global_mean)
        std = torch.where(seen[:, None], self.std[slot], self.global_std)
        unseen = int((~seen).sum())
        if unseen:
            missing = sorted(set(cams[~seen].tolist()))
            warnings.warn(f"camera_normalize: {unseen} feature(s) from camera(s) {missing} not "
                          f"seen when fitting; used the global statistics", stacklevel=2)
            self.unseen_count += unseen
        return (feats - mean) / std

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {"cameras": self.cameras, "mean": self.mean, "std": self.std,
                "global_mean": self.global_mean, "global_std": self.global_std}

    @classmethod
    def from_state_dict(cls, state: dict[str, torch.Tensor]) -> CameraStats:
        keys = ("cameras", "mean", "std", "global_mean", "global_std")
        missing = [k for k in keys if k not in state]
        if missing:
            raise KeyError(f"camera statistics lack {missing}; expected keys {keys}")
        return cls(**{k: state[k] for k in keys})


def _camid_tensor(camids: np.ndarray | torch.Tensor | list[int], n: int) -> torch.Tensor:
    cams = torch.as_tensor(np.asarray(camids) if not isinstance(camids, torch.Tensor)
                           else camids.cpu()).long().flatten()
    if cams.shape[0] != n:
        raise ValueError(f"got {cams.shape[0]} camera ids for {n} features")
    return cams


def fit_camera_stats(features: np.ndarray | torch.Tensor,
                     camids: np.ndarray | torch.Tensor | list[int],
                     eps: float = 1e-6) -> CameraStats:
    """Per-camera and global mean and per-dimension (population) std of ``features`` [N, D]."""
    feats = as_tensor(features, "features").float()
    cams = _camid_tensor(camids, feats.shape[0])
    if feats.shape[0] == 0:
        raise ValueError("cannot fit camera statistics on zero features")
    cameras, inverse, counts = torch.unique(cams, return_inverse=True, return_counts=True)
    dim = feats.shape[1]
    total = torch.zeros(len(cameras), dim).index_add_(0, inverse, feats)
    mean = total / counts[:, None]
    centred = feats - mean[inverse]
    var = torch.zeros(len(cameras), dim).index_add_(0, inverse, centred.square()) / counts[:, None]
    return CameraStats(
        cameras=cameras, mean=mean, std=var.sqrt().clamp_(min=eps),
        global_mean=feats.mean(0), global_std=feats.std(0, unbiased=False).clamp_(min=eps),
    )


def camera_normalize(features: np.ndarray | torch.Tensor,
                     camids: np.ndarray | torch.Tensor | list[int],
                     stats: CameraStats | None = None,
                     eps: float = 1e-6) -> tuple[torch.Tensor, CameraStats]:
    """Normalise ``features`` per camera; fit the statistics on them unless ``stats`` is given.

    Returns ``(normalised features, the statistics used)``.
    """
    if stats is None:
        stats = fit_camera_stats(features, camids, eps)
    return stats.normalize(features, camids), stats
