"""Models; importing registers them in MODELS (and, via reid_ext, in torchreid)."""
from reid_ext.models import (  # noqa: F401  (registration side effects)
    bignet,
    bnneck,
    bnneck_wrapper,
    mgran,
    pose_seg,
)
from reid_ext.models.factory import build_model

__all__ = ["build_model"]
