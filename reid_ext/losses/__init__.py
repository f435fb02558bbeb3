"""Loss terms; importing registers them in LOSSES."""
from reid_ext.losses import aligned, center, cosine, host_losses, metric, segmentation  # noqa: F401
