"""reid_ext: mask- and pose-guided Re-ID, metric losses and fast evaluation for torchreid.

Importing the package registers its models, datasets and samplers into torchreid, so the
host's ``build_model``, ``ImageDataManager`` and engines know them. Importing twice (or
reloading) registers nothing twice.
"""
from reid_ext import data, losses, models, samplers, uda  # noqa: F401  (registration side effects)
from reid_ext.host import register_into_host
from reid_ext.preprocess import keypoints, masks  # noqa: F401  (mask and keypoint sources)
from reid_ext.registry import (
    DATASETS,
    KEYPOINT_SOURCES,
    LOSSES,
    MASK_SOURCES,
    MODELS,
    SAMPLERS,
)

__version__ = "0.1.0"

register_into_host()

__all__ = [
    "DATASETS",
    "KEYPOINT_SOURCES",
    "LOSSES",
    "MASK_SOURCES",
    "MODELS",
    "SAMPLERS",
    "register_into_host",
    "__version__",
]
