"""Models; importing registers them in MODELS (and, via reid_ext, in torchreid)."""
from reid_ext.models import (
    bignet,  # noqa: F401
    bnneck,  # noqa: F401
    mgran,  # noqa: F401
)
from reid_ext.models.factory import build_model

__all__ = ["build_model"]
