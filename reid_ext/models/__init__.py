"""Models; importing registers them in MODELS (and, via reid_ext, in torchreid)."""
from reid_ext.models import (  # noqa: F401  (registration side effects)
    aligned,
    bignet,
    bnneck,
    bnneck_wrapper,
    glad,
    mgran,
    pose_seg,
    spindle,
)
from reid_ext.models.factory import build_model

__all__ = ["build_model"]
