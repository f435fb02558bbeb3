"""Unsupervised domain adaptation by multi-step pseudo-label refinement.

camera_norm: camera-guided feature normalisation; cluster: DBSCAN on the sparse k-reciprocal
Jaccard distance (import ``reid_ext.uda.cluster``; it loads scikit-learn); pseudo_dataset: the
pseudo-labelled target set (``uda_pseudo``) for torchreid's data manager; synthetic_domain: a
styled second synthetic domain (``synthetic_person_target``); loop: extract -> normalise ->
cluster -> fine-tune, resumable per step (import ``reid_ext.uda.loop``).
Importing this package registers the two datasets.
"""
from reid_ext.uda import pseudo_dataset, synthetic_domain  # noqa: F401  (registration)
from reid_ext.uda.camera_norm import CameraStats, camera_normalize, fit_camera_stats

__all__ = ["CameraStats", "camera_normalize", "fit_camera_stats"]
