"""Models; importing registers them in MODELS (and, via reid_ext, in torchreid)."""
from reid_ext.models import (
    aligned,  # noqa: F401
    bignet,  # noqa: F401
    bnneck,  # noqa: F401
    glad,  # noqa: F401
    spindle,  # noqa: F401
)
from reid_ext.models.factory import build_model

__all__ = ["build_model"]
