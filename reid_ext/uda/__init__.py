"""Unsupervised domain adaptation by multi-step pseudo-label refinement.

camera_norm: camera-guided feature normalisation; cluster: DBSCAN on the sparse k-reciprocal
Jaccard distance; pseudo_dataset: the pseudo-labelled target set for torchreid's data manager;
loop: extract -> normalise -> cluster -> fine-tune, resumable per step.
"""
from reid_ext.uda.camera_norm import CameraStats, camera_normalize, fit_camera_stats

__all__ = ["CameraStats", "camera_normalize", "fit_camera_stats"]
